// The instance a state dir belongs to: a random id kept in it, whose device group (kernel/marks.ts) marks its links
// and which owns its addresses in the cluster table.
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { instanceGroup } from '../kernel/marks';
import type { StateFiles } from './migrate';

/**
 * The instance file is the id on one line, as operators copy it (`gc --cluster --forget-instance ID`): format 1,
 * recorded in format.json. A file of another form would get another name, read beside this one.
 */
export const INSTANCE_FILE: StateFiles = {
  kind: 'instance',
  version: 1,
  files: (stateDir) => [join(stateDir, 'instance')].filter((path) => existsSync(path)),
  versionOf: () => 1,
  migrate: () => undefined,
};

/**
 * The id of the instance whose state is `stateDir`. The plugin creates it on its first start; readers (gc, status,
 * doctor) never do, and get undefined for a state that has none: nothing there is theirs.
 */
export function instanceId(stateDir: string, create = false): string | undefined {
  const path = join(stateDir, 'instance');
  try {
    return readFileSync(path, 'utf8').trim();
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
  return id;
}

/** The device group of the instance whose state is `stateDir` (see instanceId). */
export function stateGroup(stateDir: string, create = false): number | undefined {
  const id = instanceId(stateDir, create);
  return id === undefined ? undefined : instanceGroup(id);
}
