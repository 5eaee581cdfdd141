// Durable whole-file writes: the new content in a temporary file, synced, renamed over the old one, and the
// directory synced, so a crash leaves the old file or the new one, never a part of either.
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { checkIoFault } from './faults';
import { syncDurations } from './sync-durations';

/** Makes a rename, creation or unlink in `dir` durable. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    checkIoFault('sync', dir);
    await syncDurations.time(() => handle.sync());
  } finally {
    await handle.close();
  }
}

/** syncDir, synchronously: for start-up, migration, and rewrites that must not let anything in meanwhile. */
export function syncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    syncDurations.timeSync(() => fsyncSync(fd));
  } finally {
    closeSync(fd);
  }
}

/** Writes `text` to `temp` and syncs it (the first half of replaceFileSync). */
export function writeSyncedSync(temp: string, text: string): void {
  const fd = openSync(temp, 'w', 0o600);
  try {
    checkIoFault('write', temp);
    const buffer = Buffer.from(text);
    let written = 0;
    while (written < buffer.length) written += writeSync(fd, buffer, written, buffer.length - written);
    checkIoFault('sync', temp);
    syncDurations.timeSync(() => fsyncSync(fd));
  } finally {
    closeSync(fd);
  }
}

/** Replaces `path` with `text` durably: temp file, sync, rename, directory sync. `beforeRename` runs in between. */
export function replaceFileSync(path: string, text: string, beforeRename?: () => void): void {
  const temp = `${path}.tmp`;
  writeSyncedSync(temp, text);
  beforeRename?.();
  checkIoFault('rename', path);
  renameSync(temp, path);
  syncDirSync(dirname(path));
}
