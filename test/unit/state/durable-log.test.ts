import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { DurableLog, type LogSteps, UnmarkedError, readLogLines } from '../../../src/state/durable-log';
import { setIoFault } from '../../../src/state/faults';

const silent = pino({ level: 'silent' });
const dirs: string[] = [];
afterEach(() => {
  setIoFault(undefined);
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A log whose memory is a list of lines under a header; `live` is what a rewrite writes. */
function logOver(options: { slack?: number; steps?: LogSteps; lines?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tsmv-log-'));
  dirs.push(dir);
  const path = join(dir, 'test.log');
  const memory = { live: ['h'] as string[] | undefined };
  if (options.lines !== undefined) writeFileSync(path, 'h\n');
  const log = new DurableLog({
    path,
    name: 'test log',
    source: { snapshot: () => memory.live, liveLines: () => memory.live?.length ?? 0 },
    log: silent,
    slack: options.slack ?? 1000,
    lines: options.lines,
    steps: options.steps,
  });
  const file = () => readFileSync(path, 'utf8');
  return { dir, path, memory, log, file };
}

describe('the durable log', () => {
  it('creates its file whole from memory, then appends; lines queued during a sync share the next one', async () => {
    const { memory, log, file } = logOver();
    memory.live = ['h', 'first'];
    await log.append('first');
    expect(file()).toBe('h\nfirst\n'); // no file yet: written whole from memory
    expect(log.snapshots).toBe(1);
    const lines = Array.from({ length: 500 }, (_, i) => `l${i}`);
    memory.live!.push(...lines);
    await Promise.all(lines.map((line) => log.append(line)));
    expect(file()).toBe(`h\nfirst\n${lines.map((l) => `${l}\n`).join('')}`);
    // Group commit: the first append waits for its sync alone, the 499 queued behind it share the next.
    expect(log.syncs - 1).toBeLessThanOrEqual(2);
    expect(log.written).toBe(500);
    await log.close();
  });

  it('writes answer marks after the sync, without one of their own, then applies them and resolves', async () => {
    const calls: string[] = [];
    const { memory, log, file } = logOver({
      lines: 1,
      steps: { saved: () => calls.push('saved'), answered: () => calls.push('answered') },
    });
    memory.live = ['h', 'take'];
    await log.append('take', { answered: { line: 'ok', apply: () => calls.push('apply') } });
    expect(file()).toBe('h\ntake\nok\n');
    expect(calls).toEqual(['saved', 'apply', 'answered']);
    expect(log.syncs).toBe(1);
    await log.close();
  });

  it('writes a line at once with writeNow (a kill from then on finds it) and resolves after a sync', async () => {
    const { log, file } = logOver({ lines: 1 });
    const synced = log.writeNow('intent');
    expect(file()).toBe('h\nintent\n');
    expect(log.syncs).toBe(0);
    await synced;
    expect(log.syncs).toBe(1);
    log.mark('done'); // no sync of its own
    expect(file()).toBe('h\nintent\ndone\n');
    expect(log.syncs).toBe(1);
    await log.close();
  });

  it('rewrites itself from memory when it outgrows twice its live lines by the slack, and removes itself when memory is empty', async () => {
    const { path, memory, log, file } = logOver({ lines: 1, slack: 4 });
    for (let i = 0; i < 5; i++) await log.append(`x${i}`); // memory keeps only the header
    expect(file()).toBe('h\nx0\nx1\nx2\nx3\nx4\n'); // 6 lines: not yet more than 2 x 1 + 4
    await log.append('x5');
    expect(file()).toBe('h\n'); // rewritten, instead of appended to
    expect(log.snapshots).toBe(1);
    memory.live = undefined;
    await log.append('gone', { rewrite: true });
    expect(readdirSync(join(path, '..'))).toEqual([]);
    await log.close();
  });

  it('keeps the marks written while a rewrite runs: the new file gets them before it replaces the old one', async () => {
    let log!: DurableLog;
    const setup = logOver({ lines: 1, steps: { rewriteWritten: () => log.mark('late') } });
    log = setup.log;
    setup.memory.live = ['h', 'snap'];
    await log.append('snap', { rewrite: true });
    expect(setup.file()).toBe('h\nsnap\nlate\n');
    log.mark('after');
    expect(setup.file()).toBe('h\nsnap\nlate\nafter\n');
    await log.close();
  });

  it('a write that fails part-way is cut back; the batch is saved by a rewrite from memory', async () => {
    const { memory, log, file } = logOver({ lines: 1 });
    memory.live = ['h', 'a'];
    await log.append('a');
    // The mark fails after writing half of itself: the file is as it was, the caller hears of it.
    setIoFault('ENOSPC:write:test.log', 1);
    expect(() => log.mark('a-long-mark-line')).toThrow(/ENOSPC/);
    expect(file()).toBe('h\na\n');
    // An append that fails part-way is replaced by a rewrite (of the temp file, which the fault spares).
    memory.live.push('b');
    setIoFault('ENOSPC:write:test.log', 1);
    await log.append('b');
    expect(file()).toBe('h\na\nb\n');
    expect(log.snapshots).toBe(1); // the rewrite that replaced the failed append
    setIoFault(undefined);
    await log.append('c');
    expect(file()).toBe('h\na\nb\nc\n');
    await log.close();
  });

  it('when the rewrite fails too, undoes the batch in reverse and rejects it; the next change retries the rewrite', async () => {
    const { memory, log, file } = logOver({ lines: 1 });
    setIoFault('EIO:write,sync:test.log');
    const undone: string[] = [];
    memory.live = ['h', 'a', 'b'];
    const a = log.append('a', { undo: () => undone.push('a') });
    const b = log.append('b', { undo: () => undone.push('b') });
    await expect(a).rejects.toThrow(/^EIO: injected i\/o error/);
    await expect(b).rejects.toMatchObject({ code: 'EIO' });
    expect(undone).toEqual(['b', 'a']);
    expect(file()).toBe('h\n');
    setIoFault(undefined);
    memory.live = ['h', 'c'];
    await log.append('c');
    expect(file()).toBe('h\nc\n');
    await log.close();
  });

  it('a change saved whose answer mark cannot be written is rejected with UnmarkedError, and stays unanswered', async () => {
    let batches = 0;
    const setup = logOver({
      lines: 1,
      steps: { saved: () => ++batches === 2 && setIoFault('EIO:write:test.log', 1) },
    });
    const log = setup.log;
    setup.memory.live = ['h', 'first', 'release', 'take'];
    let applied = false;
    const first = log.append('first'); // the loop is busy with it: the next two share the second batch
    const plain = log.append('release');
    const answered = log.append('take', { answered: { line: 'ok', apply: () => (applied = true) } });
    await first;
    await expect(answered).rejects.toBeInstanceOf(UnmarkedError);
    await expect(plain).resolves.toBeUndefined();
    expect(applied).toBe(false);
    expect(setup.file()).toBe('h\nfirst\nrelease\ntake\n');
    await log.close();
  });

  it('is read back without a torn last line', () => {
    const { path } = logOver();
    writeFileSync(path, 'h\na\n{"torn');
    expect(readLogLines(path, 'test log', silent)).toEqual(['h', 'a']);
    writeFileSync(path, 'h\na\n');
    expect(readLogLines(path, 'test log', silent)).toEqual(['h', 'a']);
  });
});
