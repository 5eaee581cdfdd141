import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { setIoFault } from '../../../src/state/faults';
import { SharedDirSync } from '../../../src/state/files';
import { isJsonObject, RecordStore } from '../../../src/state/record-store';
import { syncDurations } from '../../../src/state/sync-durations';

const check = (value: unknown) => (isJsonObject(value) ? undefined : 'not an object');
const kind = { format: { name: 'test record', version: 1, upgrades: {} }, check };

const dirs: string[] = [];
afterEach(() => {
  setIoFault(undefined);
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
const newDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'records-'));
  dirs.push(dir);
  return dir;
};

describe('record store', () => {
  it('removes the temporary file a write cut short by a crash left, and keeps the records', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'records-'));
    try {
      const store = new RecordStore<{ n: number }>(dir, kind);
      await store.put('a', { n: 1 });
      writeFileSync(join(dir, 'b.json.tmp'), '{"n":'); // killed between open and rename
      expect(await store.removeUnfinishedWrites()).toEqual(['b.json.tmp']);
      expect(readdirSync(dir)).toEqual(['a.json']);
      expect([...store.loadAll()]).toEqual([['a', { n: 1 }]]);
      expect(await store.removeUnfinishedWrites()).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('finds nothing to remove in a directory not made yet', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'records-'));
    try {
      expect(await new RecordStore(join(dir, 'none'), kind).removeUnfinishedWrites()).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('writes records made at the same time side by side, each whole and readable', async () => {
    const store = new RecordStore<{ n: number }>(newDir(), kind);
    const before = syncDurations.count;
    await Promise.all(Array.from({ length: 50 }, (_, n) => store.put(`r${n}`, { n })));
    // One sync per file, and the directory's syncs shared (one each would make 100).
    expect(syncDurations.count - before).toBeGreaterThan(50);
    expect(syncDurations.count - before).toBeLessThanOrEqual(60);
    await Promise.all(Array.from({ length: 25 }, (_, n) => store.remove(`r${2 * n}`)));
    const expected = Array.from({ length: 25 }, (_, n) => [`r${2 * n + 1}`, { n: 2 * n + 1 }]);
    expect([...store.loadAll()].sort()).toEqual(expected.sort());
    expect(readdirSync(store.dir).filter((f) => !f.endsWith('.json'))).toEqual([]);
  });

  it('leaves a write cut short before its rename as a temporary file only: no record, removed at the next start', async () => {
    const store = new RecordStore<{ n: number }>(newDir(), kind);
    await store.put('a', { n: 1 });
    const crash = new Error('killed before the rename');
    await expect(
      store.put('a', { n: 2 }, () => {
        throw crash;
      }),
    ).rejects.toBe(crash);
    expect([...store.loadAll()]).toEqual([['a', { n: 1 }]]);
    expect(await store.removeUnfinishedWrites()).toEqual(['a.json.tmp']);
  });

  it('fails a write whose rename fails, keeping the record it was to replace', async () => {
    const store = new RecordStore<{ n: number }>(newDir(), kind);
    await store.put('a', { n: 1 });
    setIoFault('EIO:rename:a.json', 1);
    await expect(store.put('a', { n: 2 })).rejects.toThrow(/EIO: injected i\/o error, rename/);
    expect([...store.loadAll()]).toEqual([['a', { n: 1 }]]);
  });
});

describe('shared directory sync', () => {
  it('lets the changes made while a sync runs share the next one, which begins after them', async () => {
    const shared = new SharedDirSync(newDir());
    const before = syncDurations.count;
    const first = shared.sync(); // starts at once
    const during = [shared.sync(), shared.sync(), shared.sync()]; // made while it runs: the next one, shared
    await Promise.all([first, ...during]);
    expect(syncDurations.count - before).toBe(2);
    await shared.sync(); // none runs: one of its own
    expect(syncDurations.count - before).toBe(3);
  });

  it('fails every change that shares a failed sync, and syncs again for the next', async () => {
    const dir = newDir();
    const shared = new SharedDirSync(dir);
    setIoFault(`EIO:sync:${dir}`, 1);
    const [a, b] = [shared.sync(), shared.sync()];
    await expect(a).rejects.toThrow(/EIO/);
    await expect(b).resolves.toBeUndefined(); // b waited for the sync after the failed one
    await expect(shared.sync()).resolves.toBeUndefined();
  });
});
