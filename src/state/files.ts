// Durable whole-file writes: the new content in a temporary file, synced, renamed over the old one, and the
// directory synced, so a crash leaves the old file or the new one, never a part of either.
import { closeSync, fsync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { checkIoFault } from './faults';
import { syncDurations } from './sync-durations';

const fsyncFd = promisify(fsync);

/** Makes a rename, creation or unlink in `dir` durable. */
export async function syncDir(dir: string): Promise<void> {
  // Opened and closed at once (a directory opens in microseconds): only the sync waits for the thread pool.
  const fd = openSync(dir, 'r');
  try {
    checkIoFault('sync', dir);
    await syncDurations.time(() => fsyncFd(fd));
  } finally {
    closeSync(fd);
  }
}

/**
 * Directory syncs shared by the changes made close together in one directory (group commit): a change made while no
 * sync runs starts one; changes made while one runs share the next, which starts when it ends. A sync covers every
 * change made in the directory before it began, so each caller waits for the first sync that began after its change.
 */
export class SharedDirSync {
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(readonly dir: string) {}

  /** Resolves once a sync of the directory begun after this call has finished. */
  sync(): Promise<void> {
    if (this.next) return this.next;
    if (!this.running) return this.start();
    const after = this.running.then(
      () => undefined,
      () => undefined,
    );
    this.next = after.then(() => {
      this.next = undefined;
      return this.start();
    });
    return this.next;
  }

  private start(): Promise<void> {
    const run = syncDir(this.dir).finally(() => {
      if (this.running === run) this.running = undefined;
    });
    this.running = run;
    return run;
  }
}

/**
 * Writes `text` to `temp` and syncs it: the write synchronously into the page cache (cheaper than the thread pool's
 * round trips), only the fsync waits. On failure the temporary file is left; a reader ignores it.
 */
export async function writeSynced(temp: string, text: string): Promise<void> {
  const fd = openSync(temp, 'w', 0o600);
  try {
    checkIoFault('write', temp);
    writeAllSync(fd, temp, Buffer.from(text));
    checkIoFault('sync', temp);
    await syncDurations.time(() => fsyncFd(fd));
  } finally {
    closeSync(fd);
  }
}

function writeAllSync(fd: number, path: string, buffer: Buffer): void {
  let written = 0;
  while (written < buffer.length) {
    const n = writeSync(fd, buffer, written, buffer.length - written);
    if (n === 0) throw new Error(`short write to ${path} (${written} of ${buffer.length} bytes)`);
    written += n;
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
    writeAllSync(fd, temp, Buffer.from(text));
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
