// The cluster table's local log: what this instance is doing to etcd, durable before it matters. A take's intent is
// written before its etcd transaction is sent, fdatasync'd while etcd commits it, and marked answered just before
// the answer; a release is fdatasync'd before it
// is answered and marked done once etcd has it. After a crash, takes never answered are rolled back and releases not
// done are applied again. Lines arriving while a sync is under way share the next one (group commit).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { DurableLog, readLogLines } from '../state/durable-log';
import { replaceFileSync } from '../state/files';
import type { StateFiles } from '../state/migrate';
import { newerFormatMessage } from '../state/record-format';

/**
 * Lines the log may exceed twice its live entries by before it is rewritten. A rewrite holds the loop for two syncs
 * (2-3 ms on a VM disk) and each take adds two lines: 64 put that on one take in 32; 1024 on one in ~500, in a file
 * of ~50 kB at most.
 */
const SLACK = 1024;

/**
 * The log's format, in its first line (`{"t":"intents","format":3}`). 1: tsmacvlan 0.1.0, no such line. 2: the line;
 * the records are those of 1. 3: a release may wait until `after` (a release due: see ClusterTable.releaseDue); the
 * records of 2 are records of 3.
 */
export const INTENTS_FORMAT = 3;
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
  /** Not before this time (ms since the epoch): a release due, which Docker's own release may make unneeded. */
  after?: number;
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
  const lines = readLogLines(path, 'cluster intent log', log);
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

/** The intent log of a running table, on the one durable log (state/durable-log.ts), its lines typed. */
export class IntentLog {
  private readonly log: DurableLog;

  constructor(
    readonly path: string,
    /** The live entries as lines, for a rewrite. */
    live: () => IntentLine[],
    /** How many there are (cheaper than `live`: asked before every batch). */
    liveCount: () => number,
    log: Logger,
    /** Lines in the file now (its header included); undefined when there is none yet. */
    lines: number | undefined,
  ) {
    this.log = new DurableLog({
      path,
      name: 'cluster intent log',
      source: {
        snapshot: () => [HEADER, ...live().map((line) => JSON.stringify(line))],
        liveLines: () => 1 + liveCount(),
      },
      log,
      slack: SLACK,
      lines,
    });
  }

  get syncs(): number {
    return this.log.syncs;
  }

  /** Resolves once `line` is on disk (fdatasync'd), or covered by a rewrite of the live entries. */
  durable(line: IntentLine): Promise<void> {
    return this.log.append(JSON.stringify(line));
  }

  /**
   * Appends `line` now, as mark does, and resolves once it is on disk: a process killed from now on finds it, and the
   * sync can run while the caller does something else (a take's intent, synced while etcd commits the take).
   */
  writtenNow(line: IntentLine): Promise<void> {
    return this.log.writeNow(JSON.stringify(line));
  }

  /**
   * Appends `line` without a sync: a process crash keeps it (the page cache survives), and what a power cut loses
   * only makes the next start redo a rollback or a release, which match by token and so cannot undo anything else.
   */
  mark(line: IntentLine): void {
    this.log.mark(JSON.stringify(line));
  }

  async close(): Promise<void> {
    await this.log.close();
  }
}
