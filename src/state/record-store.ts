// Disk layer: one JSON file per object, replaced atomically and synced before the caller answers Docker.
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/** Makes a rename or unlink in `dir` durable. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A directory of records keyed by a file-name-safe id. */
export class RecordStore<T> {
  private made = false;

  constructor(readonly dir: string) {}

  /** Reads every record; a leftover temp file from a crash mid-write is ignored (its rename never happened). */
  loadAll(): Map<string, T> {
    const records = new Map<string, T>();
    if (!existsSync(this.dir)) return records;
    for (const file of readdirSync(this.dir)) {
      if (!file.endsWith('.json')) continue;
      const text = readFileSync(join(this.dir, file), 'utf8');
      try {
        records.set(file.slice(0, -'.json'.length), JSON.parse(text) as T);
      } catch (err) {
        throw new Error(
          `state file ${join(this.dir, file)} is not valid JSON (${(err as Error).message}); fix or remove it`,
        );
      }
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
      await handle.writeFile(JSON.stringify(record));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
    await syncDir(this.dir);
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
