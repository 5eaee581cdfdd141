import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isJsonObject, RecordStore } from '../../../src/state/record-store';

const check = (value: unknown) => (isJsonObject(value) ? undefined : 'not an object');
const kind = { format: { name: 'test record', version: 1, upgrades: {} }, check };

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
});
