// kill -9 in the middle of parallel allocations and releases: every address a child process answered before it died
// must still be allocated when the state is loaded again, and the state must load.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IpamService } from '../../src/ipam/service';

const root = join(__dirname, '../..');

// The child runs the built service (npm test builds dist/ first), as the daemon would.
const CHILD = `
const { IpamService } = require(${JSON.stringify(join(root, 'dist/ipam/service.js'))});
const quiet = { info() {}, warn() {}, error() {}, debug() {} };
const [stateDir, subnet, workers] = process.argv.slice(2);
const ipam = new IpamService(stateDir, quiet);
// Acknowledgements go straight to the pipe: process.stdout buffers writes to a pipe in memory, and SIGKILL loses them.
const { writeSync } = require('node:fs');
const say = (line) => {
  for (;;) {
    try { return void writeSync(1, line + '\\n'); }
    catch (err) { if (err.code !== 'EAGAIN') throw err; Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1); }
  }
};
async function main() {
  const { poolId } = await ipam.requestPool({ pool: subnet, options: null, v6: subnet.includes(':') });
  say('pool ' + poolId);
  let n = 0;
  const worker = async () => {
    for (;;) {
      const address = (await ipam.requestAddress(poolId, '', {})).split('/')[0];
      say('+ ' + address);
      if (++n % 3 === 0) {
        say('~ ' + address); // a release starts: its outcome is unknown if we die now
        await ipam.releaseAddress(poolId, address);
        say('- ' + address);
      }
    }
  };
  await Promise.all(Array.from({ length: Number(workers) }, worker));
}
main().catch((err) => { say('error ' + err.message); process.exit(1); });
`;

let work: string;
let childJs: string;

beforeAll(() => {
  // The parent checks with src/, the child runs dist/: a build older than the source would compare two different
  // IPAM implementations.
  const stale = readdirSync(join(root, 'src/ipam'))
    .filter((f) => f.endsWith('.ts'))
    .filter(
      (f) =>
        statSync(join(root, 'src/ipam', f)).mtimeMs >
        statSync(join(root, 'dist/ipam', f.replace(/\.ts$/, '.js'))).mtimeMs,
    );
  if (stale.length > 0)
    throw new Error(`dist/ipam is older than src/ipam (${stale.join(', ')}): run 'npm run build' first`);
  work = mkdtempSync(join(tmpdir(), 'tsmacvlan-ipam-crash-'));
  childJs = join(work, 'child.js');
  writeFileSync(childJs, CHILD);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Runs the child until it has acknowledged `acks` changes, then SIGKILLs it. Returns the lines it wrote. */
function runAndKill(stateDir: string, subnet: string, acks: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, [childJs, stateDir, subnet, '8'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const lines: string[] = [];
    let buffer = '';
    let killed = false;
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const parts = buffer.split('\n');
      buffer = parts.pop()!;
      lines.push(...parts);
      if (!killed && lines.length >= acks) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`child ended by itself (${code}): ${lines.slice(-3).join(' | ')}`));
      else resolve(lines);
    });
  });
}

/** Addresses whose last acknowledged event is an allocation with no release started after it. */
function mustBeAllocated(lines: string[]): Set<string> {
  const held = new Set<string>();
  for (const line of lines) {
    const [event, address] = line.split(' ');
    if (event === '+') held.add(address);
    if (event === '~') held.delete(address);
  }
  return held;
}

describe('IPAM state survives kill -9', () => {
  it.each([
    ['10.91.0.0/16', 3000],
    ['fd00:91::/64', 3000],
  ])('%s: every acknowledged allocation is there after the crash', async (subnet, acks) => {
    const stateDir = join(work, subnet.replace(/[/:]/g, '_'));
    const log = pino({ level: 'silent' });
    let total = 0;
    for (let round = 0; round < 3; round++) {
      const lines = await runAndKill(stateDir, subnet, acks);
      expect(lines.find((l) => l.startsWith('error'))).toBeUndefined();
      const poolId = lines[0].split(' ')[1];
      const held = mustBeAllocated(lines);
      expect(held.size).toBeGreaterThan(acks / 3);

      const ipam = new IpamService(stateDir, log);
      try {
        const pool = ipam.listPools().find((p) => p.poolId === poolId);
        expect(pool?.refs).toBe(round + 1); // each run acquired the pool once more
        for (const address of held) {
          await expect(ipam.requestAddress(poolId, address, {}), address).rejects.toThrow(/already in use/);
        }
        // Beyond what was acknowledged, at most the requests in flight (8 workers) may have reached the disk.
        expect(pool!.allocated).toBeGreaterThanOrEqual(total + held.size);
        expect(pool!.allocated).toBeLessThanOrEqual(total + held.size + 16);
        total = pool!.allocated;
      } finally {
        await ipam.close();
      }
      expect(readdirSync(join(stateDir, 'ipam')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    }
  });
});
