import { mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { IntentLog, type IntentLine, readIntents, replay, rewriteIntents } from '../../../src/cluster/intents';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function temp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tmvE-unit-'));
  dirs.push(dir);
  return join(dir, 'cluster-intents.log');
}

describe('intent replay', () => {
  it('keeps takes never answered (to roll back) and releases never done (to apply)', () => {
    const lines: IntentLine[] = [
      { t: 'take', at: 'a', subnet: 's' },
      { t: 'answered', at: 'a' },
      { t: 'take', at: 'b', subnet: 's' },
      { t: 'take', at: 'c', subnet: 's' },
      { t: 'dropped', at: 'c' },
      { t: 'release', id: 'r1', subnet: 's', address: '10.0.0.5', ref: 'x' },
      { t: 'release', id: 'r2', subnet: 's', address: '10.0.0.6', ref: 'y' },
      { t: 'released', id: 'r1' },
      // A take whose outcome was unknown, rolled back by its token: done.
      { t: 'take', at: 'd', subnet: 's' },
      { t: 'released', id: 'd' },
    ];
    const { takes, releases } = replay(lines);
    expect([...takes]).toEqual([['b', 's']]);
    expect([...releases.values()]).toEqual([{ id: 'r2', subnet: 's', address: '10.0.0.6', ref: 'y' }]);
  });
});

describe('intent log file', () => {
  it('ignores a torn last line and names the line that is not a record', () => {
    const path = temp();
    writeFileSync(path, '{"t":"take","at":"a","subnet":"s"}\n{"t":"answ');
    expect(readIntents(path, pino({ level: 'silent' }))).toEqual([{ t: 'take', at: 'a', subnet: 's' }]);
    writeFileSync(path, '{"t":"take","at":"a","subnet":"s"}\n[1]\n');
    expect(() => readIntents(path, pino({ level: 'silent' }))).toThrow(
      `cluster intent log ${path} line 2 is not an intent record; fix or remove the line`,
    );
  });

  it('writes a line at once with writtenNow (a kill from then on finds it) and resolves after a sync', async () => {
    const path = temp();
    rewriteIntents(path, []);
    const log = new IntentLog(
      path,
      () => [],
      () => 0,
      pino({ level: 'silent' }),
      1,
    );
    const line: IntentLine = { t: 'take', at: 'now', subnet: 's' };
    const synced = log.writtenNow(line);
    expect(readIntents(path, pino({ level: 'silent' }))).toEqual([line]);
    expect(log.syncs).toBe(0);
    await synced;
    expect(log.syncs).toBe(1);
    await log.close();
  });

  it('makes lines durable with shared syncs, marks without one, and rewrites itself from its live lines', async () => {
    const path = temp();
    rewriteIntents(path, []);
    const takes: IntentLine[] = Array.from({ length: 600 }, (_, i) => ({ t: 'take', at: `t${i}`, subnet: 's' }));
    let live: IntentLine[] = [...takes];
    const log = new IntentLog(
      path,
      () => live,
      () => live.length,
      pino({ level: 'silent' }),
      1,
    );
    await Promise.all(takes.map((line) => log.durable(line)));
    // Group commit: far fewer syncs than lines; 600 lines with 600 live is no reason to rewrite.
    expect(log.syncs).toBeLessThan(600);
    expect(readFileSync(path, 'utf8').split('\n').length).toBe(602); // the header, 600 lines, the last newline
    for (let i = 0; i < 599; i++) log.mark({ t: 'answered', at: `t${i}` });
    const last: IntentLine = { t: 'take', at: 'last', subnet: 's' };
    live = [takes[599], last];
    await log.durable(last);
    await log.close();
    // 1200 lines > 2 x 2 live + 1024: rewritten from memory at that sync.
    expect(readIntents(path, pino({ level: 'silent' }))).toEqual(live);
  });

  it('after a failed write, rewrites the file from memory before appending again', async () => {
    const path = temp();
    mkdirSync(path); // the log's path is a directory: every write fails
    let live: IntentLine[] = [];
    const log = new IntentLog(
      path,
      () => live,
      () => live.length,
      pino({ level: 'silent' }),
      undefined,
    );
    const lost: IntentLine = { t: 'take', at: 'lost', subnet: 's' };
    live = [lost];
    await expect(log.durable(lost)).rejects.toThrow(/EISDIR/);
    rmdirSync(path);
    // Memory is what counts: the failed take is gone from it, a release and the next take are in it.
    const kept: IntentLine = { t: 'release', id: 'r', subnet: 's', address: '10.0.0.9', ref: 'x' };
    const next: IntentLine = { t: 'take', at: 'next', subnet: 's' };
    live = [kept, next];
    await log.durable(next);
    await log.close();
    expect(readIntents(path, pino({ level: 'silent' }))).toEqual([kept, next]);
  });
});
