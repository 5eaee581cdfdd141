// Durable whole-file writes: the new content in a temporary file, synced, renamed over the old one, and the
// directory synced, so a crash leaves the old file or the new one, never a part of either.
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { syncDurations } from './sync-durations';

/** Makes a rename, creation or unlink in `dir` durable (synchronously: start-up and migration only). */
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
    const buffer = Buffer.from(text);
    let written = 0;
    while (written < buffer.length) written += writeSync(fd, buffer, written, buffer.length - written);
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
  renameSync(temp, path);
  syncDirSync(dirname(path));
}
