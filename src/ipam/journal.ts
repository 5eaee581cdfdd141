// Append-only journal of one subnet: one JSON line per change, fdatasync'd before the change is answered; changes that
// arrive while a sync is under way share the next one (group commit). Compacted into a snapshot (temp file, sync,
// rename, sync dir) when it grows past twice the live state, and after a failed write.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { type FileHandle, open, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import pino, { type Logger } from 'pino';
import { crashPoint } from '../state/crash';
import { replaceFileSync } from '../state/files';
import type { StateFiles } from '../state/migrate';
import { filesEndingIn, syncDir } from '../state/record-store';
import { syncDurations } from '../state/sync-durations';
import { parseCidr } from '../ip/address';
import { Subnet } from './subnet';
import { JOURNAL_FORMAT, type JournalRecord } from './journal-records';

/** Lines a journal may exceed twice its live state by before it is compacted. */
const SLACK = 64;

export interface JournalSource {
  /** The current state as lines, or undefined when nothing is left to keep (the file is removed). */
  snapshot(): string[] | undefined;
  /** How many lines a snapshot would have now. */
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
  /** Rewrite the file from memory instead of appending (a subnet became empty: the file goes). */
  snapshot?: boolean;
  answered?: AnswerMark;
}

interface Entry extends AppendOptions {
  line: string;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export function syncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    syncDurations.timeSync(() => fsyncSync(fd));
  } finally {
    closeSync(fd);
  }
}

/** Reads a journal: its records in order. A last line without its newline is a write that never completed: ignored. */
export function readJournal(path: string, log: Logger): JournalRecord[] {
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  const torn = lines.pop();
  if (torn)
    log.warn(
      { path, bytes: torn.length },
      'ignoring an incomplete last line of the IPAM journal (a write cut short by a crash)',
    );
  const records: JournalRecord[] = [];
  lines.forEach((line, i) => {
    if (line === '') return;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (err) {
      throw new Error(
        `IPAM state file ${path} line ${i + 1} is not valid JSON (${(err as Error).message}); fix or remove the line`,
      );
    }
    if (record === null || typeof record !== 'object' || Array.isArray(record)) {
      throw new Error(`IPAM state file ${path} line ${i + 1} is not a JSON object; fix or remove the line`);
    }
    records.push(record as JournalRecord);
  });
  return records;
}

/** Replaces `path` with `lines` durably, synchronously (start-up only); removes it when `lines` is undefined. */
export function writeSnapshotSync(path: string, lines: string[] | undefined): void {
  if (!lines) {
    try {
      unlinkSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  } else {
    const temp = `${path}.tmp`;
    const fd = openSync(temp, 'w', 0o600);
    try {
      writeSync(fd, `${lines.join('\n')}\n`);
      syncDurations.timeSync(() => fsyncSync(fd));
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  }
  syncDirSync(dirname(path));
}

export class Journal {
  private handle: FileHandle | undefined;
  private pending: Entry[] = [];
  private needSnapshot = false;
  private running: Promise<void> | undefined;
  /** Syncs done, lines appended and snapshots written, for the logs, the tests and the bench. */
  syncs = 0;
  written = 0;
  snapshots = 0;

  constructor(
    readonly path: string,
    private readonly source: JournalSource,
    private readonly log: Logger,
    /** Whether the file exists, and how many lines it has. */
    private exists: boolean,
    private lines: number,
  ) {}

  /**
   * Queues `line` (a change already applied in memory) and resolves once it is on disk, and its answer mark too when
   * given. On failure `undo` (if given) is called before the promise rejects, and the next write rewrites the file
   * from memory.
   */
  append(line: string, options: AppendOptions = {}): Promise<void> {
    if (options.snapshot) this.needSnapshot = true;
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ line, ...options, resolve, reject });
      this.running ??= this.run();
    });
  }

  /** Resolves when everything queued so far is on disk (or failed). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async close(): Promise<void> {
    await this.idle();
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }

  private async run(): Promise<void> {
    try {
      // Only pending entries drive the loop: after a failure, the next change retries the rewrite.
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0);
        let failure: unknown;
        try {
          const adding = batch.length + batch.filter((entry) => entry.answered).length;
          const due = this.needSnapshot || !this.exists || this.lines + adding > 2 * this.source.liveLines() + SLACK;
          if (due) await this.snapshot(batch);
          else await this.appendLines(batch);
        } catch (err) {
          // Memory holds the batch's changes: a snapshot saves them, and replaces whatever part of the append reached the file.
          this.needSnapshot = true;
          this.log.warn({ path: this.path, err }, 'IPAM journal write failed; rewriting the file from memory');
          try {
            await this.snapshot(batch);
          } catch (again) {
            this.needSnapshot = true;
            failure = again;
          }
        }
        if (failure === undefined) {
          crashPoint('ipam-saved');
          await this.markAnswered(batch);
        } else {
          this.log.error({ path: this.path, err: failure }, 'IPAM state could not be saved');
          for (let i = batch.length - 1; i >= 0; i--) batch[i].undo?.();
          for (const entry of batch) entry.reject(failure);
        }
      }
    } finally {
      this.running = undefined;
    }
  }

  /**
   * Marks the batch's changes answered, then resolves it. The marks need not be synced: a process crash keeps what
   * was written, and after a power cut Docker asks for everything anew. If they cannot be written, the changes stay
   * held, unanswered, until the next start rolls them back; the callers get an error, so Docker never uses them.
   */
  private async markAnswered(batch: Entry[]): Promise<void> {
    const marks = batch.filter((entry) => entry.answered);
    if (marks.length > 0) {
      try {
        this.handle ??= await open(this.path, 'a', 0o600);
        const buffer = Buffer.from(marks.map((entry) => `${entry.answered!.line}\n`).join(''));
        // A few bytes into the page cache: synchronous, which costs less than a trip through the thread pool.
        const bytesWritten = writeSync(this.handle.fd, buffer, 0, buffer.length);
        if (bytesWritten !== buffer.length)
          throw new Error(`short write to ${this.path} (${bytesWritten} of ${buffer.length} bytes)`);
        this.lines += marks.length;
        this.written += marks.length;
      } catch (err) {
        this.needSnapshot = true;
        this.log.error(
          { path: this.path, err },
          'IPAM state saved, but its answer could not be marked; it is rolled back at the next start',
        );
        const unmarked = new UnmarkedError((err as Error).message);
        for (const entry of batch) entry.answered ? entry.reject(unmarked) : entry.resolve();
        return;
      }
      for (const entry of marks) entry.answered!.apply();
      crashPoint('ipam-answered');
    }
    for (const entry of batch) entry.resolve();
  }

  private async appendLines(batch: Entry[]): Promise<void> {
    this.handle ??= await open(this.path, 'a', 0o600);
    const text = batch.map((entry) => `${entry.line}\n`).join('');
    const buffer = Buffer.from(text);
    const { bytesWritten } = await this.handle.write(buffer, 0, buffer.length);
    if (bytesWritten !== buffer.length)
      throw new Error(`short write to ${this.path} (${bytesWritten} of ${buffer.length} bytes)`);
    const handle = this.handle;
    await syncDurations.time(() => handle.datasync());
    this.syncs++;
    this.written += batch.length;
    this.lines += batch.length;
  }

  /** Rewrites the file from memory. Entries still pending are covered too: they join `batch`. */
  private async snapshot(batch: Entry[]): Promise<void> {
    // Synchronously, before any await: the snapshot holds exactly the changes of `batch` and of what was pending.
    batch.push(...this.pending.splice(0));
    const lines = this.source.snapshot();
    this.needSnapshot = false; // (set again if this fails, or by a change queued meanwhile that asks for one)
    const old = this.handle;
    this.handle = undefined;
    await old?.close().catch(() => undefined);
    if (!lines) {
      try {
        await unlink(this.path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      await syncDir(dirname(this.path));
      this.exists = false;
      this.lines = 0;
    } else {
      const temp = `${this.path}.tmp`;
      const handle = await open(temp, 'w', 0o600);
      try {
        await handle.writeFile(`${lines.join('\n')}\n`);
        await syncDurations.time(() => handle.datasync());
      } finally {
        await handle.close();
      }
      crashPoint('ipam-snapshot-written');
      await rename(temp, this.path);
      await syncDir(dirname(this.path));
      this.exists = true;
      this.lines = lines.length;
    }
    this.syncs++;
    this.snapshots++;
  }
}

/**
 * Replays one subnet's journal into memory, as it was saved (unanswered changes included). Read-only; undefined when
 * the file holds no complete line. Throws an Error naming the file and the record that does not fit.
 */
export function readSubnet(path: string, log: Logger): Subnet | undefined {
  const records = readJournal(path, log);
  if (records.length === 0) return undefined;
  const header = records[0];
  if (!header || header.t !== 'subnet' || typeof header.subnet !== 'string') {
    throw new Error(`IPAM state file ${path} does not start with a subnet header; fix or remove it`);
  }
  const parsed = parseCidr(header.subnet);
  if (!parsed.ok)
    throw new Error(`IPAM state file ${path} names an invalid subnet '${header.subnet}'; fix or remove it`);
  const subnet = new Subnet(parsed.cidr);
  records.forEach((record, i) => {
    try {
      subnet.apply(record);
    } catch (err) {
      throw new Error(
        `IPAM state file ${path}, record ${i + 1} (${JSON.stringify(record).slice(0, 200)}): ${(err as Error).message}; fix or remove it`,
      );
    }
  });
  return subnet;
}

/** The IPAM journals of a state dir, for the start-up migration and the readers (see state/migrate.ts). */
export const IPAM_JOURNAL_FILES: StateFiles = {
  kind: 'ipam-journal',
  version: JOURNAL_FORMAT,
  files: (stateDir) => filesEndingIn(join(stateDir, 'ipam'), '.jnl', []).map((file) => join(stateDir, 'ipam', file)),
  versionOf(path) {
    const [header] = readJournal(path, SILENT);
    if (!header) return JOURNAL_FORMAT; // holds nothing: the plugin removes it at start
    return typeof header.format === 'number' ? header.format : 1;
  },
  /** A replay in the old format and a snapshot in the new one (a journal that holds nothing goes). */
  migrate(path, beforeRename) {
    const subnet = readSubnet(path, SILENT);
    if (subnet && !subnet.empty) replaceFileSync(path, `${subnet.snapshot().join('\n')}\n`, beforeRename);
    else writeSnapshotSync(path, undefined);
  },
};

const SILENT = pino({ level: 'silent' });
