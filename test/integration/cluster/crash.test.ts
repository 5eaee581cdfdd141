// Crash safety of the cluster table, proven by injection: a process holding the table is killed (SIGKILL) at every
// step of every operation, restarted, and etcd is checked: creates rolled back, deletes rolled forward, nothing
// doubled, nothing leaked; the user's retry succeeds, and everything can be released down to the peer's claims.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKv } from '../../../src/cluster/etcd';
import { EtcdCluster } from '../../lab/etcd';
import { PREFIX, cidr, heldIn } from './setup';

const CHILD = join(__dirname, 'table-child.cjs');
const SUBNET = '10.73.0.0/24';
const cluster = EtcdCluster.onHost(`${PREFIX}c`, '127.0.0.1', 23740);
let kv: EtcdKv;

beforeAll(async () => {
  await cluster.start();
  kv = new EtcdKv({ endpoints: cluster.endpoints, prefix: `/${PREFIX}/crash` });
}, 60_000);
afterAll(async () => {
  await kv?.close();
  await cluster.stop();
});

type Op =
  | { op: 'take'; kind: 'container' | 'gateway' | 'aux'; ref: string; address?: string }
  | { op: 'release'; address: string; ref: string }
  | { op: 'releasePool'; ref: string };

interface Run {
  signal: NodeJS.Signals | null;
  code: number | null;
  out: string;
  err: string;
}

/** Runs the table in a child process (killed by its PID if it hangs); `crashAt` arms one crash point. */
function child(prefix: string, stateDir: string, instance: string, ops: Op[], crashAt?: string): Promise<Run> {
  const args = JSON.stringify({ endpoints: cluster.endpoints, prefix, stateDir, instance, subnet: SUBNET, ops });
  const env = { ...process.env, TSMACVLAN_CRASH_AT: crashAt ?? '' };
  const proc = spawn(process.execPath, [CHILD, args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (err += d));
  const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
  return new Promise((resolve) =>
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ signal, code, out, err });
    }),
  );
}

async function clean(prefix: string, dir: string, instance: string, ops: Op[]): Promise<unknown[]> {
  const run = await child(prefix, dir, instance, ops);
  if (run.code !== 0) throw new Error(`child failed (${run.code ?? run.signal}): ${run.err}`);
  return JSON.parse(run.out) as unknown[];
}

/** etcd's state for the subnet as address → "owner:ref" list: what every check compares. */
async function state(prefix: string): Promise<Record<string, string[]>> {
  const view = new EtcdKv({ endpoints: cluster.endpoints, prefix });
  try {
    const held = await heldIn(view, cidr(SUBNET));
    return Object.fromEntries(
      [...held].map(([address, claims]) => [address, claims.map((c) => `${c.owner}:${c.ref}`)]),
    );
  } finally {
    await view.close();
  }
}

const GW = '10.73.0.1';
const peerGateway: Op = { op: 'take', kind: 'gateway', ref: 'pool', address: GW };
const ownGateway: Op = peerGateway;
const staticTake: Op = { op: 'take', kind: 'container', ref: 'web', address: '10.73.0.77' };
const dynamicTake: Op = { op: 'take', kind: 'container', ref: 'db' };
// One pool id ('pool') on both instances, as one network's on two hosts: the pool's release takes only this one's.
const poolClaims: Op[] = [
  ownGateway,
  { op: 'take', kind: 'container', ref: 'pool', address: '10.73.0.80' },
  { op: 'take', kind: 'container', ref: 'pool' },
  staticTake,
];
const peerPoolClaim: Op = { op: 'take', kind: 'container', ref: 'pool', address: '10.73.0.90' };

interface Case {
  name: string;
  /** Run first by the instance under test ("me") and by another ("peer"), both without crashing. */
  mine: Op[];
  peer: Op[];
  step: Op;
  points: [string, 'undone' | 'done'][];
}

const TAKE_POINTS: [string, 'undone' | 'done'][] = [
  ['cluster-intent-saved', 'undone'],
  ['cluster-committed', 'undone'],
  ['cluster-answered', 'done'],
];
const RELEASE_POINTS: [string, 'undone' | 'done'][] = [
  ['cluster-release-saved', 'done'],
  ['cluster-release-applied', 'done'],
];
const POOL_RELEASE_POINTS: [string, 'undone' | 'done'][] = [
  ['cluster-pool-release-saved', 'done'],
  // The first of its claims released, the others not yet.
  ['cluster-pool-claim-released', 'done'],
  ['cluster-release-applied', 'done'],
];

const CASES: Case[] = [
  { name: 'take (dynamic)', mine: [], peer: [peerGateway], step: dynamicTake, points: TAKE_POINTS },
  { name: 'take (given address)', mine: [], peer: [peerGateway], step: staticTake, points: TAKE_POINTS },
  { name: 'take (shared gateway)', mine: [], peer: [peerGateway], step: ownGateway, points: TAKE_POINTS },
  {
    name: 'release (container)',
    mine: [staticTake],
    peer: [peerGateway],
    step: { op: 'release', address: '10.73.0.77', ref: 'web' },
    points: RELEASE_POINTS,
  },
  {
    name: 'release (shared gateway)',
    mine: [ownGateway],
    peer: [peerGateway],
    step: { op: 'release', address: GW, ref: 'pool' },
    points: RELEASE_POINTS,
  },
  {
    name: 'release of a pool (its last ReleasePool)',
    mine: poolClaims,
    peer: [peerGateway, peerPoolClaim],
    step: { op: 'releasePool', ref: 'pool' },
    points: POOL_RELEASE_POINTS,
  },
];

/** The state once `step` is done, from the state before it (a dynamic take's address is read from `after`). */
function withStep(
  before: Record<string, string[]>,
  step: Op,
  after: Record<string, string[]>,
): Record<string, string[]> {
  const next = structuredClone(before);
  if (step.op === 'take') {
    const address = step.address ?? Object.keys(after).find((a) => after[a].includes(`me:${step.ref}`))!;
    next[address] = [...(next[address] ?? []), `me:${step.ref}`];
  } else {
    for (const address of step.op === 'release' ? [step.address] : Object.keys(next)) {
      next[address] = next[address].filter((c) => c !== `me:${step.ref}`);
      if (next[address].length === 0) delete next[address];
    }
  }
  return next;
}

let walked = 0;
let run = 0;

describe('cluster table: crash at every step', () => {
  const cases = CASES.flatMap((c) => c.points.map(([point, outcome]) => ({ ...c, point, outcome })));
  it.each(cases)(
    '$name, killed at $point: $outcome after the restart',
    async ({ mine, peer, step, point, outcome }) => {
      const prefix = `/${PREFIX}/crash${run++}`;
      const dir = mkdtempSync(join(tmpdir(), `${PREFIX}-crash-`));
      const peerDir = mkdtempSync(join(tmpdir(), `${PREFIX}-crash-`));
      try {
        await clean(prefix, peerDir, 'peer', peer);
        const peerOnly = await state(prefix);
        await clean(prefix, dir, 'me', mine);
        const before = await state(prefix);

        const crashed = await child(prefix, dir, 'me', [step], point);
        expect(crashed.signal, `the child never reached ${point}: ${crashed.err}${crashed.out}`).toBe('SIGKILL');
        walked++;
        // Restarted with nothing to do: the table rolls back and applies what the killed one left.
        await clean(prefix, dir, 'me', []);
        const after = await state(prefix);
        expect(after).toEqual(outcome === 'done' ? withStep(before, step, after) : before);

        // The user's retry succeeds where the operation was undone; nothing is doubled either way.
        if (outcome === 'undone') await clean(prefix, dir, 'me', [step]);
        const final = await state(prefix);
        expect(final).toEqual(withStep(before, step, final));
        for (const claims of Object.values(final)) expect(new Set(claims).size).toBe(claims.length);

        // And everything of this instance can be released, down to the peer's claims alone.
        const releases: Op[] = Object.entries(final).flatMap(([address, claims]) =>
          claims.filter((c) => c.startsWith('me:')).map((c) => ({ op: 'release' as const, address, ref: c.slice(3) })),
        );
        await clean(prefix, dir, 'me', releases);
        expect(await state(prefix)).toEqual(peerOnly);
      } finally {
        rmSync(dir, { recursive: true, force: true });
        rmSync(peerDir, { recursive: true, force: true });
      }
    },
  );

  it('a crash while rolling back at the start is rolled back by the next start', async () => {
    const prefix = `/${PREFIX}/crash${run++}`;
    const dir = mkdtempSync(join(tmpdir(), `${PREFIX}-crash-`));
    try {
      await clean(prefix, dir, 'peer', [peerGateway]);
      const mineDir = join(dir, 'me');
      expect((await child(prefix, mineDir, 'me', [dynamicTake], 'cluster-committed')).signal).toBe('SIGKILL');
      expect(Object.keys(await state(prefix)).length).toBe(2);
      expect((await child(prefix, mineDir, 'me', [], 'cluster-release-applied')).signal).toBe('SIGKILL');
      walked++;
      await clean(prefix, mineDir, 'me', []);
      expect(await state(prefix)).toEqual({ [GW]: ['peer:pool'] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('walks every crash point the cluster source declares', () => {
    const declared = new Set<string>();
    const dir = join(__dirname, '../../../src/cluster');
    for (const file of readdirSync(dir)) {
      for (const m of readFileSync(join(dir, file), 'utf8').matchAll(/crashPoint\('([^']+)'\)/g)) declared.add(m[1]);
    }
    expect(declared.size).toBeGreaterThan(0);
    expect([...declared].filter((p) => !cases.some((c) => c.point === p))).toEqual([]);
  });

  afterAll(() => console.log(`cluster crash points walked: ${walked}`));
});
