// Disk layer: one JSON file per object, replaced atomically and synced before the caller answers Docker. Each carries
// its format (record-format.ts); readers bring older ones up to date in memory.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { checkIoFault } from './faults';
import { replaceFileSync, syncDir } from './files';
import { syncDurations } from './sync-durations';
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

/** A directory of records keyed by a file-name-safe id. */
export class RecordStore<T> {
  private made = false;

  constructor(
    readonly dir: string,
    private readonly kind: RecordKind,
  ) {}

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

  async put(id: string, record: T): Promise<void> {
    // Made on first write, so reading the state (gc --dry-run, status) never writes.
    if (!this.made) mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.made = true;
    const path = join(this.dir, `${id}.json`);
    const temp = `${path}.tmp`;
    const handle = await open(temp, 'w', 0o600);
    try {
      checkIoFault('write', temp);
      await handle.writeFile(recordText(this.kind.format, record as object));
      checkIoFault('sync', temp);
      await syncDurations.time(() => handle.sync());
    } finally {
      await handle.close();
    }
    checkIoFault('rename', path);
    await rename(temp, path);
    await syncDir(this.dir);
  }

  /**
   * Removes the `.json.tmp` files of writes a crash cut short (they never happened, readers ignore them) and returns
   * their names. Only for the start-up repair, before anything writes: an unfinished write of a live put is one too.
   */
  async removeUnfinishedWrites(): Promise<string[]> {
    const left = filesEndingIn(this.dir, '.json.tmp', []);
    for (const file of left) await unlink(join(this.dir, file));
    if (left.length) await syncDir(this.dir);
    return left;
  }

  async remove(id: string): Promise<void> {
    try {
      await unlink(join(this.dir, `${id}.json`));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    await syncDir(this.dir);
  }
}
