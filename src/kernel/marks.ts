// Which plugin instance made a link. Two instances may share a host (a test instance beside a real one, a managed
// plugin beside a service: every managed plugin listens on tsmacvlan.sock, so the driver name cannot tell them apart),
// so "ours" must mean this instance's, or one instance's start-up clean-up would delete the links another is about
// to hand to Docker. An instance is its state: a random id kept in the state dir. The mark is a kernel device group
// (IFLA_GROUP) derived from that id: the kernel sets it in the same request that creates the link, so no link of
// ours ever exists unmarked, even for an instant before a crash.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The device group for an instance id: FNV-1a of the id, kept to 31 bits so that `ip link show group <n>` takes it,
 * and never 0 (the default group every other link is in).
 */
export function instanceGroup(id: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(id)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash & 0x7fffffff || 1;
}

/**
 * The device group of the instance whose state is `stateDir`. The plugin creates the id on its first start;
 * readers (gc, status, doctor) never do, and get undefined for a state that has none: nothing there is theirs.
 */
export function stateGroup(stateDir: string, create = false): number | undefined {
  const path = join(stateDir, 'instance');
  try {
    return instanceGroup(readFileSync(path, 'utf8').trim());
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !create) return undefined;
  }
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const id = randomBytes(16).toString('hex');
  const fd = openSync(path, 'wx', 0o600); // never two ids: a racing second start fails here instead
  try {
    writeSync(fd, `${id}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return instanceGroup(id);
}

/** Docker's name for the driver behind a socket: its file name without `.sock`. */
export function driverName(socketPath: string): string {
  return socketPath.replace(/^.*\//, '').replace(/\.sock$/, '');
}
