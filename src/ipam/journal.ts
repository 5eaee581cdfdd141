// Append-only journal of one subnet: one JSON line per change, fdatasync'd before the change is answered, on the
// one durable log (state/durable-log.ts): changes that arrive while a sync is under way share the next one, answers
// are marked without a sync, and the file is rewritten as a snapshot when it grows past twice the live state, and
// after a failed write.
import { readdirSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import pino, { type Logger } from 'pino';
import { crashPoint } from '../state/crash';
import { DurableLog, type LogSource, readLogLines } from '../state/durable-log';
import { replaceFileSync, syncDirSync } from '../state/files';
import type { StateFiles } from '../state/migrate';
import { filesEndingIn } from '../state/record-store';
import { type Cidr, overlaps, parseCidr } from '../ip/address';
import { Subnet } from './subnet';
import { JOURNAL_FORMAT, type JournalRecord } from './journal-records';

/** Lines a journal may exceed twice its live state by before it is rewritten. */
const SLACK = 64;

/**
 * The durable log of one subnet's journal (see state/durable-log.ts); `lines` is undefined when it has no file yet.
 * Its crash points are the IPAM's: saved, snapshot written, answered.
 */
export function openJournal(path: string, source: LogSource, log: Logger, lines: number | undefined): DurableLog {
  return new DurableLog({
    path,
    name: 'IPAM journal',
    source,
    log,
    slack: SLACK,
    lines,
    steps: {
      saved: () => crashPoint('ipam-saved'),
      rewriteWritten: () => crashPoint('ipam-snapshot-written'),
      answered: () => crashPoint('ipam-answered'),
    },
  });
}

/** Reads a journal: its records in order. A last line without its newline is a write that never completed: ignored. */
export function readJournal(path: string, log: Logger): JournalRecord[] {
  const records: JournalRecord[] = [];
  readLogLines(path, 'IPAM journal', log).forEach((line, i) => {
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
  if (lines) return replaceFileSync(path, `${lines.join('\n')}\n`);
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  syncDirSync(dirname(path));
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

/** The journal file of `subnet`. */
export function journalName(subnet: Cidr): string {
  return `${subnet.text.replace('/', '_')}.jnl`;
}

/**
 * The subnets the journals of `dir` hold, at start: a compaction cut short is dropped (the journal it was replacing is
 * intact), changes saved but never answered are rolled back, an empty journal is removed, and each other one is
 * compacted to its snapshot (`lines` long), which drops its history and a torn last line. Files that contradict each
 * other (overlapping subnets, a pool in two) stop the start.
 */
export function loadJournals(dir: string, log: Logger): { subnet: Subnet; lines: number }[] {
  const files = readdirSync(dir).sort();
  for (const file of files) if (file.endsWith('.jnl.tmp')) unlinkSync(join(dir, file));
  const loaded: { subnet: Subnet; lines: number }[] = [];
  const pools = new Set<string>();
  for (const file of files.filter((f) => f.endsWith('.jnl'))) {
    const path = join(dir, file);
    const subnet = readSubnet(path, log);
    if (!subnet) {
      log.warn({ path }, 'removing an IPAM state file with no complete line: it holds nothing');
      writeSnapshotSync(path, undefined);
      continue;
    }
    for (const what of subnet.rollBackUnanswered()) {
      log.warn(
        { path, undone: what },
        'rolled back an IPAM change saved but never answered (tsmacvlan stopped before answering; Docker did not get it)',
      );
    }
    if (journalName(subnet.cidr) !== file)
      throw new Error(
        `IPAM state file ${path} holds subnet ${subnet.cidr.text}; it should be named ${journalName(subnet.cidr)}`,
      );
    for (const { subnet: other } of loaded) {
      if (overlaps(other.cidr, subnet.cidr))
        throw new Error(
          `IPAM state files for subnets ${other.cidr.text} and ${subnet.cidr.text} overlap; remove one of them`,
        );
    }
    if (subnet.empty) {
      writeSnapshotSync(path, undefined);
      continue;
    }
    for (const pool of subnet.pools.keys()) {
      if (pools.has(pool)) throw new Error(`pool ${pool} appears in two IPAM state files`);
      pools.add(pool);
    }
    const lines = subnet.snapshot();
    writeSnapshotSync(path, lines);
    loaded.push({ subnet, lines: lines.length });
    log.info({ subnet: subnet.cidr.text, pools: subnet.pools.size, addresses: subnet.taken.size }, 'loaded IPAM state');
  }
  return loaded;
}
