// One durable log: an append-only file of lines whose whole content the owner can also rebuild from memory (the
// IPAM journal, the cluster intent log). Lines queued while a sync is under way share the next one (group commit).
// Marks are written at once and never synced by themselves (a process crash keeps the page cache; what a power cut
// loses, the owner's format must tolerate). When the file outgrows twice its live lines by `slack`, or after a failed
// write, it is rewritten from memory (temp file, sync, rename, directory sync) instead of appended to. Every write is
// synchronous (into the page cache: cheaper than the thread pool) and cut back on failure, so the file never holds a
// part of a line followed by another; only the syncs wait.
import {
  closeSync,
  fdatasync,
  ftruncateSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { checkIoFault, ioFault } from './faults';
import { replaceFileSync, syncDir, syncDirSync } from './files';
import { syncDurations } from './sync-durations';

const datasync = promisify(fdatasync);

/** What the owner keeps in memory: the file's whole content, to rewrite it. */
export interface LogSource {
  /** The lines a rewrite writes (header first), rebuilding what memory holds; undefined: nothing to keep, the file goes. */
  snapshot(): string[] | undefined;
  /** How many lines a snapshot would have now (cheap: it is asked before every batch). */
  liveLines(): number;
}

/** A change Docker will be answered with: once the change is durable, `line` is written and `apply` run, then the caller answers. */
export interface AnswerMark {
  line: string;
  apply: () => void;
}

/** The change is on disk but its answer mark is not: it stays held, unanswered, until the next start releases it. */
export class UnmarkedError extends Error {}

export interface AppendOptions {
  /** Called when the change could not be saved, before the promise rejects. */
  undo?: () => void;
  /** Rewrite the file from memory instead of appending (e.g. nothing is left to keep: the file goes). */
  rewrite?: boolean;
  answered?: AnswerMark;
}

/** Called at the steps of a write (the owners' crash points). */
export interface LogSteps {
  /** A batch is durable, its answer marks not yet written. */
  saved?: () => void;
  /** A rewrite's temporary file is synced, not yet renamed. */
  rewriteWritten?: () => void;
  /** A batch's answer marks are written, its callers not yet resolved. */
  answered?: () => void;
}

export interface DurableLogOptions {
  path: string;
  /** What the file is, for messages: 'IPAM journal'. */
  name: string;
  source: LogSource;
  log: Logger;
  /** Lines the file may exceed twice its live lines by before it is rewritten. */
  slack: number;
  /** Lines in the file now; undefined when there is no file yet (the first write creates it whole). */
  lines: number | undefined;
  steps?: LogSteps;
}

interface Entry extends AppendOptions {
  /** The lines to append with their newlines; '' for a line written already that only waits for a sync. */
  text: string;
  resolve: () => void;
  reject: (err: unknown) => void;
}

const newlines = (text: string) => text.split('\n').length - 1;

/** The complete lines of a log file, in order; a last line without its newline is a write a crash cut short: dropped. */
export function readLogLines(path: string, name: string, log: Logger): string[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  const torn = lines.pop();
  if (torn)
    log.warn(
      { path, bytes: torn.length },
      `ignoring an incomplete last line of the ${name} (a write cut short by a crash)`,
    );
  return lines;
}

export class DurableLog {
  readonly path: string;
  private readonly name: string;
  private readonly source: LogSource;
  private readonly log: Logger;
  private readonly slack: number;
  private readonly steps: LogSteps;
  /** The file as written so far: whether it exists, its lines and bytes. */
  private exists: boolean;
  private lines: number;
  private size: number;
  private fd: number | undefined;
  /** The fd a sync is running on: closed only once the sync is done (its number could be reused meanwhile). */
  private syncing: { fd: number; close: boolean } | undefined;
  private pending: Entry[] = [];
  private running: Promise<void> | undefined;
  /** The next batch rewrites the file (asked for, or after a failure: memory may hold what the file does not). */
  private rewriteDue = false;
  /** A failed write could not be cut back: nothing is appended before a rewrite. */
  private dirty = false;
  /** While a rewrite runs: the marks written meanwhile to the old file, which the new one gets too. */
  private late: string[] | undefined;
  /** Syncs done, lines written and rewrites made, for the logs, the tests and the bench. */
  syncs = 0;
  written = 0;
  snapshots = 0;

  constructor(options: DurableLogOptions) {
    ({ path: this.path, name: this.name, source: this.source, log: this.log, slack: this.slack } = options);
    this.steps = options.steps ?? {};
    this.exists = options.lines !== undefined;
    this.lines = options.lines ?? 0;
    this.size = this.exists ? statSync(this.path).size : 0;
  }

  /**
   * Queues `line` (a change already applied in memory) and resolves once it is on disk, and its answer mark too when
   * given. On failure `undo` (if given) is called before the promise rejects, and the next write rewrites the file
   * from memory.
   */
  append(line: string, options: AppendOptions = {}): Promise<void> {
    if (options.rewrite) this.rewriteDue = true;
    return this.queue({ text: `${line}\n`, ...options });
  }

  /**
   * Writes `line` now, as mark does, and resolves once it is synced: a process killed from now on finds it, and the
   * sync runs while the caller does something else (a cluster take's intent, synced while etcd commits the take).
   */
  writeNow(line: string): Promise<void> {
    this.mark(line);
    return this.queue({ text: '' });
  }

  /**
   * Writes `line` now, without a sync of its own (a later batch's sync or a rewrite covers it). Throws when it cannot
   * be written; the file is then as it was.
   */
  mark(line: string): void {
    this.writeLines(`${line}\n`);
  }

  /** Resolves when everything queued so far is on disk (or failed). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async close(): Promise<void> {
    await this.idle();
    this.closeFd();
  }

  private queue(entry: Omit<Entry, 'resolve' | 'reject'>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ ...entry, resolve, reject });
      this.running ??= this.run();
    });
  }

  private async run(): Promise<void> {
    try {
      // Only pending entries drive the loop: after a failure, the next change retries the rewrite.
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0);
        let failure: unknown;
        try {
          const adding = batch.reduce((n, e) => n + newlines(e.text) + (e.answered ? 1 : 0), 0);
          const due = this.rewriteDue || this.dirty || !this.exists;
          if (due || this.lines + adding > 2 * this.source.liveLines() + this.slack) await this.rewrite(batch);
          else await this.appendBatch(batch);
        } catch (err) {
          // Memory holds the batch's changes: a rewrite saves them, and replaces whatever the append did.
          this.log.warn({ path: this.path, err }, `${this.name} write failed; rewriting the file from memory`);
          try {
            await this.rewrite(batch);
          } catch (again) {
            this.rewriteDue = true;
            failure = again;
          }
        }
        if (failure === undefined) {
          this.steps.saved?.();
          this.markAnswered(batch);
        } else {
          this.log.error({ path: this.path, err: failure }, `${this.name} could not be saved`);
          for (let i = batch.length - 1; i >= 0; i--) batch[i].undo?.();
          for (const entry of batch) entry.reject(failure);
        }
        // Callers just answered often have their next change ready: let them queue it, to share the next sync.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      this.running = undefined;
    }
  }

  private async appendBatch(batch: Entry[]): Promise<void> {
    const text = batch.map((entry) => entry.text).join('');
    if (text) this.writeLines(text);
    if (this.fd === undefined) this.fd = openSync(this.path, 'a', 0o600); // lines written by a rewrite since
    const syncing = (this.syncing = { fd: this.fd, close: false });
    try {
      checkIoFault('sync', this.path);
      await syncDurations.time(() => datasync(syncing.fd));
    } finally {
      this.syncing = undefined;
      if (syncing.close) closeSync(syncing.fd);
    }
    this.syncs++;
  }

  /**
   * Marks the batch's changes answered, then resolves it. If the marks cannot be written, the changes stay held,
   * unanswered, until the next start rolls them back; their callers get an UnmarkedError, so Docker never uses them.
   */
  private markAnswered(batch: Entry[]): void {
    const marks = batch.filter((entry) => entry.answered);
    if (marks.length > 0) {
      try {
        this.writeLines(marks.map((entry) => `${entry.answered!.line}\n`).join(''));
      } catch (err) {
        this.rewriteDue = true;
        this.log.error(
          { path: this.path, err },
          `${this.name}: a change was saved but its answer could not be marked; it is rolled back at the next start`,
        );
        const unmarked = new UnmarkedError((err as Error).message);
        for (const entry of batch)
          if (entry.answered) entry.reject(unmarked);
          else entry.resolve();
        return;
      }
      for (const entry of marks) entry.answered!.apply();
      this.steps.answered?.();
    }
    for (const entry of batch) entry.resolve();
  }

  /** Appends whole lines now; on failure cuts the file back to where it was and throws. */
  private writeLines(text: string): void {
    if (this.dirty || !this.exists) {
      if (this.late) throw new Error(`${this.path} is being rewritten after a failed write; retry`);
      this.rewriteSync();
      if (!this.exists) return; // nothing left to keep: the lines' subject is gone with it
    }
    this.fd ??= openSync(this.path, 'a', 0o600);
    const buffer = Buffer.from(text);
    try {
      const injected = ioFault('write', this.path);
      if (injected) {
        writeSync(this.fd, buffer, 0, buffer.length >> 1); // a part of it first, as a disk that fills up
        throw injected;
      }
      const written = writeSync(this.fd, buffer, 0, buffer.length);
      if (written !== buffer.length)
        throw new Error(`short write to ${this.path} (${written} of ${buffer.length} bytes)`);
    } catch (err) {
      this.cutBack();
      throw err;
    }
    this.size += buffer.length;
    const count = newlines(text);
    this.lines += count;
    this.written += count;
    this.late?.push(text);
  }

  /** Removes what a failed write left of itself; if even that fails, the file is rewritten before anything else. */
  private cutBack(): void {
    try {
      ftruncateSync(this.fd!, this.size);
    } catch (err) {
      this.dirty = true;
      this.log.error({ path: this.path, err }, `${this.name}: a failed write could not be cut back`);
    }
  }

  private closeFd(): void {
    const fd = this.fd;
    this.fd = undefined;
    if (fd === undefined) return;
    if (this.syncing?.fd === fd) this.syncing.close = true;
    else closeSync(fd);
  }

  /** Rewrites the file from memory. Entries still pending are covered too: they join `batch`. */
  private async rewrite(batch: Entry[]): Promise<void> {
    // Synchronously, before any await: the snapshot holds exactly the changes of `batch` and of what was pending.
    batch.push(...this.pending.splice(0));
    const lines = this.source.snapshot();
    this.rewriteDue = false; // (set again if this fails, or by a change queued meanwhile that asks for one)
    if (!lines) {
      this.removeFile();
      await syncDir(dirname(this.path));
    } else {
      const text = `${lines.join('\n')}\n`;
      const temp = `${this.path}.tmp`;
      this.late = [];
      try {
        const handle = await open(temp, 'w', 0o600);
        try {
          checkIoFault('write', temp);
          await handle.writeFile(text);
          checkIoFault('sync', temp);
          await syncDurations.time(() => handle.datasync());
        } finally {
          await handle.close();
        }
        this.steps.rewriteWritten?.();
        // Marks written to the old file meanwhile go into the new one too, in the same synchronous step as the
        // rename: no mark can fall between the two files.
        const late = this.late.join('');
        if (late) this.appendTo(temp, late);
        checkIoFault('rename', this.path);
        renameSync(temp, this.path);
        this.replaced(lines.length + newlines(late), Buffer.byteLength(text) + Buffer.byteLength(late));
      } catch (err) {
        await unlink(temp).catch(() => undefined);
        throw err;
      } finally {
        this.late = undefined;
      }
      await syncDir(dirname(this.path));
    }
    this.syncs++;
    this.snapshots++;
  }

  /** The rewrite of `rewrite`, synchronously, for a mark that finds the file needing one. */
  private rewriteSync(): void {
    const lines = this.source.snapshot();
    this.rewriteDue = false;
    if (!lines) {
      this.removeFile();
      syncDirSync(dirname(this.path));
    } else {
      const text = `${lines.join('\n')}\n`;
      try {
        replaceFileSync(this.path, text);
      } catch (err) {
        this.rewriteDue = true;
        throw err;
      }
      this.replaced(lines.length, Buffer.byteLength(text));
    }
    this.syncs++;
    this.snapshots++;
  }

  private replaced(lines: number, size: number): void {
    this.closeFd();
    this.exists = true;
    this.dirty = false;
    this.lines = lines;
    this.size = size;
  }

  private removeFile(): void {
    this.closeFd();
    try {
      // Synchronous, like every write: no mark can find the file half gone.
      unlinkSync(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    this.exists = false;
    this.dirty = false;
    this.lines = 0;
    this.size = 0;
  }

  private appendTo(path: string, text: string): void {
    const fd = openSync(path, 'a', 0o600);
    try {
      const buffer = Buffer.from(text);
      if (writeSync(fd, buffer, 0, buffer.length) !== buffer.length) throw new Error(`short write to ${path}`);
    } finally {
      closeSync(fd);
    }
  }
}
