// Disk layer: one JSON file per object, replaced atomically and synced before the caller answers Docker. Each carries
// its format (record-format.ts); readers bring older ones up to date in memory.
import { mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { checkIoFault } from './faults';
import { replaceFileSync, SharedDirSync, writeSynced } from './files';
import type { StateFiles } from './migrate';
import {
  formatOf,
  isNewerFormatMessage,
  NewerFormatError,
  recordText,
  type RecordFormat,
  upgradeRecord,
} from './record-format';

/** A state file that could not be read, or is not a record, and why. */
export interface Unreadable {
  file: string;
  error: string;
}

/** What is wrong with a parsed value as a record of some kind; undefined when it is one. */
export type RecordCheck = (value: unknown) => string | undefined;

/** A kind of record: its format (and upgrades), and the check of a record in that format. */
export interface RecordKind {
  format: RecordFormat;
  check: RecordCheck;
}

/** A JSON value that is an object (not null, not an array): what a record must be. */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The names in `dir` ending in `suffix`, sorted; none when it does not exist, and an entry in `unreadable` when it cannot be read. */
export function filesEndingIn(dir: string, suffix: string, unreadable: Unreadable[]): string[] {
  try {
    return readdirSync(dir)
      .filter((file) => file.endsWith(suffix))
      .sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') unreadable.push({ file: dir, error: (err as Error).message });
    return [];
  }
}

/** A record file read and brought up to the current format in memory, or what is wrong with it. */
function readRecordFile(path: string, kind: RecordKind): { value: unknown } | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    return { error: err instanceof SyntaxError ? `not valid JSON (${err.message})` : (err as Error).message };
  }
  if (!isJsonObject(value)) return { error: 'not a record: not a JSON object' };
  try {
    const upgraded = upgradeRecord(kind.format, value);
    if (typeof upgraded === 'string') return { error: `not a record: ${upgraded}` };
    const problem = kind.check(upgraded);
    return problem ? { error: `not a record: ${problem}` } : { value: upgraded };
  } catch (err) {
    if (err instanceof NewerFormatError) return { error: err.message };
    throw err;
  }
}

/**
 * Reads `<dir>/*.json` as RecordStore writes them, for the daemon and the operator commands alike, each record in
 * the current format (older ones upgraded in memory, never on disk). A file that is not JSON, that the kind's check
 * says is not a record, or that is in a newer format goes to `unreadable`. A leftover `.json.tmp` is a write that
 * never happened: ignored.
 */
export function readRecords<T>(dir: string, kind: RecordKind, unreadable: Unreadable[]): Map<string, T> {
  const records = new Map<string, T>();
  for (const file of filesEndingIn(dir, '.json', unreadable)) {
    const path = join(dir, file);
    const read = readRecordFile(path, kind);
    if ('error' in read) unreadable.push({ file: path, error: read.error });
    else records.set(file.slice(0, -'.json'.length), read.value as T);
  }
  return records;
}

/** The record files of `kind` in `<stateDir>/<subdir>`, for the start-up migration (see migrate.ts). */
export function recordFiles(name: string, subdir: string, kind: RecordKind): StateFiles {
  return {
    kind: name,
    version: kind.format.version,
    files: (stateDir) => filesEndingIn(join(stateDir, subdir), '.json', []).map((file) => join(stateDir, subdir, file)),
    versionOf(path) {
      const value: unknown = JSON.parse(readFileSync(path, 'utf8'));
      const found = isJsonObject(value) ? formatOf(value) : 'not a JSON object';
      if (typeof found === 'string') throw new Error(`state file ${path}: not a record: ${found}; fix or remove it`);
      return found;
    },
    migrate(path, beforeRename) {
      const read = readRecordFile(path, kind);
      if ('error' in read) throw new Error(`state file ${path}: ${read.error}`);
      replaceFileSync(path, recordText(kind.format, read.value as object), beforeRename);
    },
  };
}

/**
 * A directory of records keyed by a file-name-safe id. Each write is the file's own (temporary file, fsync, rename);
 * the directory's sync that makes the rename durable is shared by the records written at the same time (SharedDirSync),
 * and the syncs of the files run side by side: a burst of endpoints costs one file sync each and a few directory syncs.
 */
export class RecordStore<T> {
  private made = false;
  private readonly dirSync: SharedDirSync;

  constructor(
    readonly dir: string,
    private readonly kind: RecordKind,
  ) {
    this.dirSync = new SharedDirSync(dir);
  }

  /** Reads every record (see readRecords); the first file that is not a record stops the plugin, saying which. */
  loadAll(): Map<string, T> {
    const unreadable: Unreadable[] = [];
    const records = readRecords<T>(this.dir, this.kind, unreadable);
    if (unreadable.length) {
      const [{ file, error }] = unreadable;
      throw new Error(`state file ${file}: ${error}${isNewerFormatMessage(error) ? '' : '; fix or remove it'}`);
    }
    return records;
  }

  /**
   * Writes the record durably: resolved, it is on disk for good. `beforeRename` runs once its content is synced in the
   * temporary file, before the rename makes it the record (a crash point: the write that never happened).
   * Writes of one id must not overlap: they share its temporary file.
   */
  async put(id: string, record: T, beforeRename?: () => void): Promise<void> {
    // Made on first write, so reading the state (gc --dry-run, status) never writes.
    if (!this.made) mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.made = true;
    const path = join(this.dir, `${id}.json`);
    const temp = `${path}.tmp`;
    await writeSynced(temp, recordText(this.kind.format, record as object));
    beforeRename?.();
    checkIoFault('rename', path);
    renameSync(temp, path);
    await this.dirSync.sync();
  }

  /**
   * Removes the `.json.tmp` files of writes a crash cut short (they never happened, readers ignore them) and returns
   * their names. Only for the start-up repair, before anything writes: an unfinished write of a live put is one too.
   */
  async removeUnfinishedWrites(): Promise<string[]> {
    const left = filesEndingIn(this.dir, '.json.tmp', []);
    for (const file of left) unlinkSync(join(this.dir, file));
    if (left.length) await this.dirSync.sync();
    return left;
  }

  async remove(id: string): Promise<void> {
    try {
      unlinkSync(join(this.dir, `${id}.json`));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    await this.dirSync.sync();
  }
}
