// The cluster table's local log: what this instance is doing to etcd, durable before it matters. A take's intent is
// written before its etcd transaction is sent, fdatasync'd while etcd commits it, and marked answered just before
// the answer; a release is fdatasync'd before it
// is answered and marked done once etcd has it. After a crash, takes never answered are rolled back and releases not
// done are applied again. Lines arriving while a sync is under way share the next one (group commit).
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { replaceFileSync } from '../state/files';
import type { StateFiles } from '../state/migrate';
import { newerFormatMessage } from '../state/record-format';
import { syncDurations } from '../state/sync-durations';

/**
 * Lines the log may exceed twice its live entries by before it is rewritten. A rewrite holds the loop for two syncs
 * (2-3 ms on a VM disk) and each take adds two lines: 64 put that on one take in 32; 1024 on one in ~500, in a file
 * of ~50 kB at most.
 */
const SLACK = 1024;

/**
 * The log's format, in its first line (`{"t":"intents","format":2}`). 1: tsmacvlan 0.1.0, no such line. 2: the line;
 * the records are those of 1.
 */
export const INTENTS_FORMAT = 2;
const HEADER = `{"t":"intents","format":${INTENTS_FORMAT}}`;

export type IntentLine =
  | { t: 'take'; at: string; subnet: string }
  | { t: 'answered'; at: string }
  | { t: 'dropped'; at: string }
  | ({ t: 'release' } & Release)
  | { t: 'released'; id: string };

/**
 * A release of claims of this instance: the claim with token `at` (a rollback: wherever it is), one claim with `ref`
 * on `address` (a release Docker asked for), or every claim with ref `pool` in the subnet (the pool's last
 * ReleasePool: what Docker never released, e.g. after a crash lost its ReleaseAddress).
 */
export interface Release {
  id: string;
  subnet: string;
  at?: string;
  address?: string;
  ref?: string;
  pool?: string;
}

/** What the log says is unfinished: takes not answered (token → subnet, to roll back) and releases not done. */
export interface Unfinished {
  takes: Map<string, string>;
  releases: Map<string, Release>;
}

export function replay(lines: IntentLine[]): Unfinished {
  const takes = new Map<string, string>();
  const releases = new Map<string, Release>();
  for (const line of lines) {
    if (line.t === 'take') takes.set(line.at, line.subnet);
    else if (line.t === 'release') {
      const { t: _, ...release } = line;
      releases.set(line.id, release);
    } else if (line.t === 'released') {
      releases.delete(line.id);
      takes.delete(line.id);
    } else takes.delete(line.at);
  }
  return { takes, releases };
}

/** The format of the log whose first line is `first` (1 when it is no header). Throws for a newer format. */
function formatOfFirstLine(path: string, first: string | undefined): number {
  if (!first?.startsWith('{"t":"intents"')) return 1;
  const header = JSON.parse(first) as { format?: unknown };
  const format = header.format;
  if (typeof format !== 'number' || !Number.isSafeInteger(format) || format < 2)
    throw new Error(`cluster intent log ${path} has a header without a format; fix or remove the line`);
  if (format > INTENTS_FORMAT)
    throw new Error(newerFormatMessage(`cluster intent log ${path}`, format, INTENTS_FORMAT));
  return format;
}

/** Reads the log (either format); a last line without its newline is a write cut short by a crash, and ignored. */
export function readIntents(path: string, log: Logger): IntentLine[] {
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, 'utf8').split('\n');
  const torn = lines.pop();
  if (torn) log.warn({ path, bytes: torn.length }, 'ignoring an incomplete last line of the cluster intent log');
  const skip = formatOfFirstLine(path, lines[0]) > 1 ? 1 : 0;
  return lines.slice(skip).flatMap((line, i) => {
    if (line === '') return [];
    try {
      const parsed = JSON.parse(line) as IntentLine;
      if (typeof parsed.t === 'string' && ('at' in parsed || 'id' in parsed)) return [parsed];
    } catch {
      // reported below
    }
    throw new Error(`cluster intent log ${path} line ${i + 1 + skip} is not an intent record; fix or remove the line`);
  });
}

/** Replaces the log with its header and `lines`, durably (start-up and compaction). */
export function rewriteIntents(path: string, lines: IntentLine[], beforeRename?: () => void): void {
  replaceFileSync(path, `${HEADER}\n${lines.map((line) => `${JSON.stringify(line)}\n`).join('')}`, beforeRename);
}

/** The intent log of a state dir, for the start-up migration and the readers (see state/migrate.ts). */
export const CLUSTER_INTENT_FILES: StateFiles = {
  kind: 'cluster-intents',
  version: INTENTS_FORMAT,
  files: (stateDir) => [join(stateDir, 'cluster', 'cluster-intents.log')].filter((path) => existsSync(path)),
  versionOf: (path) => formatOfFirstLine(path, readFileSync(path, 'utf8').split('\n', 1)[0]),
  migrate: (path, beforeRename) => rewriteIntents(path, readIntents(path, pino({ level: 'silent' })), beforeRename),
};

interface Waiting {
  text: string;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class IntentLog {
  private handle: FileHandle | undefined;
  private waiting: Waiting[] = [];
  private running: Promise<void> | undefined;
  private lines: number;
  /** A write failed part-way: the file is rewritten from memory before anything is appended to it again. */
  private dirty = false;
  syncs = 0;

  constructor(
    readonly path: string,
    /** The live entries as lines, for a rewrite. */
    private readonly live: () => IntentLine[],
    lines: number,
  ) {
    this.lines = lines;
  }

  /** Resolves once `line` is on disk (fdatasync'd). */
  durable(line: IntentLine): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ text: `${JSON.stringify(line)}\n`, resolve, reject });
      this.running ??= this.run();
    });
  }

  /**
   * Appends `line` now, as mark does, and resolves once it is on disk: a process killed from now on finds it, and the
   * sync can run while the caller does something else (a take's intent, synced while etcd commits the take).
   */
  writtenNow(line: IntentLine): Promise<void> {
    this.mark(line);
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ text: '', resolve, reject });
      this.running ??= this.run();
    });
  }

  /**
   * Appends `line` without a sync: a process crash keeps it (the page cache survives), and what a power cut loses
   * only makes the next start redo a rollback or a release, which match by token and so cannot undo anything else.
   */
  mark(line: IntentLine): void {
    const text = `${JSON.stringify(line)}\n`;
    try {
      if (this.dirty) this.rewrite();
      if (this.handle) writeSync(this.handle.fd, text);
      else {
        const fd = openSync(this.path, 'a', 0o600);
        try {
          writeSync(fd, text);
        } finally {
          closeSync(fd);
        }
      }
    } catch (err) {
      this.dirty = true;
      throw err;
    }
    this.lines++;
  }

  private async run(): Promise<void> {
    try {
      while (this.waiting.length > 0) {
        const batch = this.waiting.splice(0);
        try {
          if (this.dirty) this.rewrite();
          this.handle ??= await open(this.path, 'a', 0o600);
          const buffer = Buffer.from(batch.map((w) => w.text).join(''));
          const { bytesWritten } = await this.handle.write(buffer, 0, buffer.length);
          if (bytesWritten !== buffer.length)
            throw new Error(`short write (${bytesWritten} of ${buffer.length} bytes)`);
          const handle = this.handle;
          await syncDurations.time(() => handle.datasync());
          this.syncs++;
          this.lines += batch.filter((w) => w.text !== '').length;
          this.compactIfDue();
          for (const w of batch) w.resolve();
        } catch (err) {
          // A partial append may be on disk: the next write first replaces the file with what memory holds.
          this.dirty = true;
          await this.reopen();
          for (const w of batch) w.reject(err);
        }
      }
    } finally {
      this.running = undefined;
    }
  }

  private compactIfDue(): void {
    if (this.lines > 2 * this.live().length + SLACK) this.rewrite();
  }

  /** Replaces the file with the live lines (synchronously: nothing is appended meanwhile). */
  private rewrite(): void {
    const live = this.live();
    rewriteIntents(this.path, live);
    this.lines = live.length;
    this.dirty = false;
    void this.reopen();
  }

  private async reopen(): Promise<void> {
    const old = this.handle;
    this.handle = undefined;
    await old?.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    while (this.running) await this.running;
    await this.reopen();
  }
}
