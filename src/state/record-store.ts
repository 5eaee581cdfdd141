// Disk layer: one JSON file per object, replaced atomically and synced before the caller answers Docker.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDurations } from './sync-durations';

/** Makes a rename or unlink in `dir` durable. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await syncDurations.time(() => handle.sync());
  } finally {
    await handle.close();
  }
}

/** A state file that could not be read, or is not a record, and why. */
export interface Unreadable {
  file: string;
  error: string;
}

/** What is wrong with a parsed value as a record of some kind; undefined when it is one. */
export type RecordCheck = (value: unknown) => string | undefined;

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

/**
 * Reads `<dir>/*.json` as RecordStore writes them, for the daemon and the operator commands alike. A file that is not
 * JSON, or that `problemOf` says is not a record, goes to `unreadable`. A leftover `.json.tmp` is a write that never happened: ignored.
 */
export function readRecords<T>(dir: string, problemOf: RecordCheck, unreadable: Unreadable[]): Map<string, T> {
  const records = new Map<string, T>();
  for (const file of filesEndingIn(dir, '.json', unreadable)) {
    const path = join(dir, file);
    let value: unknown;
    try {
      value = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      unreadable.push({
        file: path,
        error: err instanceof SyntaxError ? `not valid JSON (${err.message})` : (err as Error).message,
      });
      continue;
    }
    const problem = problemOf(value);
    if (problem) unreadable.push({ file: path, error: `not a record: ${problem}` });
    else records.set(file.slice(0, -'.json'.length), value as T);
  }
  return records;
}

/** A directory of records keyed by a file-name-safe id. */
export class RecordStore<T> {
  private made = false;

  constructor(
    readonly dir: string,
    private readonly check: RecordCheck,
  ) {}

  /** Reads every record (see readRecords); the first file that is not a record stops the plugin, saying which. */
  loadAll(): Map<string, T> {
    const unreadable: Unreadable[] = [];
    const records = readRecords<T>(this.dir, this.check, unreadable);
    if (unreadable.length)
      throw new Error(`state file ${unreadable[0].file}: ${unreadable[0].error}; fix or remove it`);
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
      await handle.writeFile(JSON.stringify(record));
      await syncDurations.time(() => handle.sync());
    } finally {
      await handle.close();
    }
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
