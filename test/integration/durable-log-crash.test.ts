// The one durable log under kill -9: a child process appends in parallel (group commit), marks answers from inside
// and outside the write loop, and rewrites often; killed at each step of the log in turn and at random moments,
// every value it acknowledged is in the file, every answer it acknowledged too, and the file replays whole (a torn
// last line at most, which the reader drops). Each run continues on what the last one left.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLogLines } from '../../src/state/durable-log';

const root = join(__dirname, '../..');
const CHILD = join(__dirname, 'durable-log-child.cjs');
let work: string;

beforeAll(() => {
  // The child runs dist/, the test reads with src/: a build older than the source would test something else.
  const src = statSync(join(root, 'src/state/durable-log.ts')).mtimeMs;
  if (src > statSync(join(root, 'dist/state/durable-log.js')).mtimeMs)
    throw new Error("dist/state/durable-log.js is older than its source: run 'npm run build' first");
  work = mkdtempSync(join(tmpdir(), 'tsmv-log-crash-'));
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Runs the child until it dies (by its own crash point, or killed here after `acks` lines); returns its lines. */
function run(path: string, options: { step?: string; n?: number; acks?: number }): Promise<string[]> {
  const args = [CHILD, path, '8', options.step ?? '', String(options.n ?? 0)];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let buffer = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const parts = buffer.split('\n');
      buffer = parts.pop()!;
      lines.push(...parts);
      if (options.acks !== undefined && lines.length >= options.acks) child.kill('SIGKILL');
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal !== 'SIGKILL') reject(new Error(`child ended by itself (${code}): ${lines.slice(-3).join(' | ')}`));
      else resolve(lines);
    });
  });
}

/** The file replayed as the child does: value -> answered; throws on a line that is not whole JSON. */
function replay(path: string): Map<number, boolean> {
  const state = new Map<number, boolean>();
  for (const line of readLogLines(path, 'test log', pino({ level: 'silent' }))) {
    const record = JSON.parse(line) as { v?: number; a?: number; s?: [number, boolean][] };
    if (record.v !== undefined) state.set(record.v, state.get(record.v) ?? false);
    else if (record.a !== undefined) state.set(record.a, true);
    else for (const [v, a] of record.s!) state.set(v, state.get(v) || a);
  }
  return state;
}

/** What the child acknowledged is in the file: each value it said durable, each answer it said marked. */
function expectKept(path: string, lines: string[]): void {
  expect(lines.find((l) => l.startsWith('error'))).toBeUndefined();
  const state = replay(path);
  for (const line of lines) {
    const [what, v] = line.split(' ');
    if (what === 'v') expect(state.has(Number(v)), line).toBe(true);
    if (what === 'a') expect(state.get(Number(v)), line).toBe(true);
  }
}

describe('the durable log under kill -9', () => {
  const path = () => join(work, 'walk.log');

  it.each([
    ['saved', 3],
    ['saved', 40],
    ['answered', 5],
    ['answered', 60],
    ['rewriteWritten', 1],
    ['rewriteWritten', 4],
  ])('killed at its step %s (the %i-th time): every acknowledged value and answer is there', async (step, n) => {
    const lines = await run(path(), { step, n });
    expect(lines.length, 'the child never got going').toBeGreaterThan(1);
    expectKept(path(), lines);
  });

  it('killed at random moments, again and again, on what each run left: nothing acknowledged is lost', async () => {
    const file = join(work, 'random.log');
    let values = 0;
    for (let round = 0; round < 5; round++) {
      const lines = await run(file, { acks: 200 + Math.floor(Math.random() * 2000) });
      expectKept(file, lines);
      const state = replay(file);
      expect(state.size).toBeGreaterThanOrEqual(values); // nothing of an earlier run went either
      values = state.size;
    }
  });
});
