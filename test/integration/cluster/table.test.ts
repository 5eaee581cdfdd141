// The cluster table against a real 3-member etcd on the loopback of the suite's private namespace: sharing, owners,
// races and round trips.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { clusterSummary, readViews } from '../../../src/cluster/admin';
import { type ClusterKv, ClusterUnavailableError } from '../../../src/cluster/etcd';
import { formatIp } from '../../../src/ip/address';
import { EtcdCluster } from '../../lab/etcd';
import { PREFIX, Tables, bounds, cidr, heldIn, until } from './setup';

const cluster = EtcdCluster.onHost(`${PREFIX}t`, '127.0.0.1', 23710);
let run = 0;
const tables = new Tables(() => ({ endpoints: cluster.endpoints, prefix: `/${PREFIX}/table${run}` }));

beforeAll(async () => {
  await cluster.start();
}, 60_000);
afterEach(async () => {
  await tables.closeAll();
  run++;
});
afterAll(async () => {
  await tables.closeAll();
  await cluster.stop();
});

describe('cluster table', () => {
  it('takes distinct addresses for two hosts, records owner and ref, and releases only its own', async () => {
    const subnet = cidr('10.70.0.0/24');
    const { lo, hi } = bounds(subnet);
    const a = tables.open('hostA');
    const b = tables.open('hostB');
    const x = await a.table.take({ subnet, lo, hi, kind: 'container', ref: 'ep-a' });
    const y = await b.table.take({ subnet, lo, hi, kind: 'container', ref: 'ep-b' });
    expect(x).not.toBe(y);
    const held = await heldIn(a.kv, subnet);
    expect(held.size).toBe(2);
    const ofA = [...held.values()].find((claims) => claims[0].owner === 'hostA')!;
    expect(ofA).toMatchObject([{ owner: 'hostA', kind: 'container', ref: 'ep-a' }]);

    // B cannot release A's address, even naming A's ref; A can.
    expect(await b.table.release(subnet, x, 'ep-a')).toBe(false);
    expect((await heldIn(a.kv, subnet)).size).toBe(2);
    expect(await a.table.release(subnet, x, 'ep-a')).toBe(true);
    const after = await heldIn(a.kv, subnet);
    expect(after.size).toBe(1);
    expect([...after.values()][0][0].owner).toBe('hostB');
  });

  it('refuses a given address another host holds, naming the holder', async () => {
    const subnet = cidr('10.70.1.0/24');
    const { lo, hi } = bounds(subnet);
    const a = tables.open('hostA');
    const b = tables.open('hostB');
    await a.table.take({ subnet, lo, hi, address: subnet.base + 77n, kind: 'container', ref: 'web' });
    await expect(
      b.table.take({ subnet, lo, hi, address: subnet.base + 77n, kind: 'container', ref: 'db' }),
    ).rejects.toThrow(
      /10\.70\.1\.77 of subnet 10\.70\.1\.0\/24 is in use across the cluster \(held by web on instance hostA\)/,
    );
  });

  it('shares gateway and aux reservations between hosts; the last release frees them; never given to a container', async () => {
    const subnet = cidr('10.70.2.0/29');
    const { lo, hi } = bounds(subnet);
    const gw = subnet.base + 1n;
    const aux = subnet.base + 2n;
    const a = tables.open('hostA');
    const b = tables.open('hostB');
    for (const t of [a, b]) {
      await t.table.take({ subnet, lo, hi, address: gw, kind: 'gateway', ref: 'pool' });
      await t.table.take({ subnet, lo, hi, address: aux, kind: 'aux', ref: 'pool' });
    }
    // A second network on A over the same pool: its own reference.
    await a.table.take({ subnet, lo, hi, address: gw, kind: 'gateway', ref: 'pool' });
    expect((await heldIn(a.kv, subnet)).get('10.70.2.1')!.map((c) => c.owner)).toEqual(['hostA', 'hostB', 'hostA']);
    await expect(a.table.take({ subnet, lo, hi, address: gw, kind: 'container', ref: 'c' })).rejects.toThrow(
      /reserved as gateway by instance hostA, hostB/,
    );
    // Dynamic takes fill the rest of the /29 and never get .1 or .2.
    const got: bigint[] = [];
    for (let i = 0; i < 4; i++) got.push(await b.table.take({ subnet, lo, hi, kind: 'container', ref: `c${i}` }));
    expect(got.sort()).toEqual([3n, 4n, 5n, 6n].map((n) => subnet.base + n));
    await expect(a.table.take({ subnet, lo, hi, kind: 'container', ref: 'c9' })).rejects.toThrow(
      /no free address in subnet 10\.70\.2\.0\/29 \(addresses 10\.70\.2\.1 to 10\.70\.2\.6\) across the cluster: all 6 are held/,
    );
    expect(await a.table.release(subnet, gw, 'pool')).toBe(true);
    expect(await b.table.release(subnet, gw, 'pool')).toBe(true);
    expect((await heldIn(a.kv, subnet)).get('10.70.2.1')!.map((c) => c.owner)).toEqual(['hostA']);
    expect(await a.table.release(subnet, gw, 'pool')).toBe(true);
    expect(await a.table.release(subnet, gw, 'pool')).toBe(false);
    expect((await heldIn(a.kv, subnet)).has('10.70.2.1')).toBe(false);
    expect((await heldIn(a.kv, subnet)).get('10.70.2.2')!.length).toBe(2);
  });

  it('forgets a gone instance on request only: dry run lists, the real run frees, shared claims of others stay', async () => {
    const subnet = cidr('10.70.4.0/24');
    const { lo, hi } = bounds(subnet);
    const a = tables.open('hostA');
    const b = tables.open('hostB');
    for (const t of [a, b]) await t.table.take({ subnet, lo, hi, address: lo, kind: 'gateway', ref: 'pool' });
    const mine = [];
    for (let i = 0; i < 3; i++) mine.push(await a.table.take({ subnet, lo, hi, kind: 'container', ref: `ep${i}` }));
    await b.table.take({ subnet, lo, hi, kind: 'container', ref: 'epB' });

    const summary = clusterSummary(await readViews(b.kv)).find((s) => s.subnet === subnet.text)!;
    expect(summary).toMatchObject({ size: 254n, used: 5, free: 249n });
    expect(summary.owners).toEqual({
      hostA: { container: 3, gateway: 1, aux: 0 },
      hostB: { container: 1, gateway: 1, aux: 0 },
    });

    const listed = await b.table.forgetInstance('hostA', true);
    expect(listed.map((f) => `${f.kind}:${f.ref}`).sort()).toEqual([
      'container:ep0',
      'container:ep1',
      'container:ep2',
      'gateway:pool',
    ]);
    expect((await heldIn(b.kv, subnet)).size).toBe(5);
    expect(await b.table.forgetInstance('hostA', false)).toEqual(listed);
    const held = await heldIn(b.kv, subnet);
    expect([...held.values()].flat().map((c) => `${c.owner}:${c.ref}`)).toEqual(
      expect.arrayContaining(['hostB:pool', 'hostB:epB']),
    );
    expect(held.size).toBe(2);
    expect(held.get('10.70.4.1')!.map((c) => c.owner)).toEqual(['hostB']);
    for (const address of mine) expect(held.has(formatIp(false, address))).toBe(false);
    expect(await b.table.forgetInstance('hostA', false)).toEqual([]);
    await expect(b.table.forgetInstance('hostB', true)).rejects.toThrow(/instance hostB is this host/);
    // The freed addresses are free for everyone again (B's view saw the deletes).
    await until('B sees the freed addresses', async () => (await b.table.summary(subnet, lo, hi)).used === 2);
  });

  it('two hosts racing for the last address: exactly one wins, every round', async () => {
    const subnet = cidr('10.70.3.0/24');
    const last = subnet.base + 200n;
    const request = { subnet, lo: last, hi: last, kind: 'container' as const };
    const a = tables.open('hostA');
    const b = tables.open('hostB');
    const views = [await a.table.view(subnet.text), await b.table.view(subnet.text)];
    const ROUNDS = 2000;
    const wins = { hostA: 0, hostB: 0 };
    let raced = 0;
    for (let round = 0; round < ROUNDS; round++) {
      // Both views see the address free, so both really send a transaction.
      await until('views see the address free', () => views.every((v) => !v.held.has(last)));
      const before = a.kv.counts.create + b.kv.counts.create;
      const results = await Promise.allSettled([
        a.table.take({ ...request, ref: `a${round}` }),
        b.table.take({ ...request, ref: `b${round}` }),
      ]);
      raced += a.kv.counts.create + b.kv.counts.create - before === 2 ? 1 : 0;
      const won = results.map((r) => r.status === 'fulfilled');
      expect(won.filter(Boolean).length).toBe(1);
      const loser = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(String(loser.reason)).toMatch(/no free address|other hosts took/);
      const winner = won[0] ? a : b;
      wins[won[0] ? 'hostA' : 'hostB']++;
      expect(await winner.table.release(subnet, last, won[0] ? `a${round}` : `b${round}`)).toBe(true);
    }
    console.log(
      `last-address race: ${ROUNDS} rounds, both sent a transaction in ${raced}, wins ${JSON.stringify(wins)}`,
    );
    // In the other rounds the loser's view had already seen the winner's commit: it refused without asking etcd.
    expect(raced).toBeGreaterThan(ROUNDS * 0.9);
    expect(wins.hostA + wins.hostB).toBe(ROUNDS);
    expect((await heldIn(a.kv, subnet)).size).toBe(0);
  }, 300_000);
});

// A release Docker asked for names an address and a pool, not a claim: when etcd's answer to it is lost (it committed,
// the client timed out), it stays queued and is applied again. It must never remove a claim this host made of the
// same address afterwards, for a new container: that container would run on an address another host can take.
/**
 * The next replace fails as a call whose deadline passed would, and commits in etcd a moment later (a stopped member
 * resumed: the request was there all along); the ones after fail without reaching etcd until `heal` is called.
 */
function loseAnswers(kv: ClusterKv): { heal: () => void } {
  const replace = kv.replace.bind(kv);
  let state: 'lose' | 'down' | 'healed' = 'lose';
  kv.replace = async (...args) => {
    if (state === 'healed') return replace(...args);
    if (state === 'lose') setTimeout(() => void replace(...args), 200);
    state = 'down';
    throw new ClusterUnavailableError('etcd did not answer within the deadline (injected)');
  };
  return { heal: () => (state = 'healed') };
}

describe('a release whose answer from etcd was lost', () => {
  it('is applied again without touching a claim the same host made of the address since', async () => {
    const subnet = cidr('10.70.9.0/24');
    const only = subnet.base + 40n; // a one-address range: the next take can only be this address again
    const range = { subnet, lo: only, hi: only, kind: 'container' as const, ref: 'pool-1' };
    const a = tables.open('hostA');
    expect(await a.table.take(range)).toBe(only);

    const etcd = loseAnswers(a.kv.inner);
    // Durable and queued: Docker is told yes, the queue applies it again once etcd answers.
    expect(await a.table.release(subnet, only, 'pool-1')).toBe(true);
    expect(a.table.pendingReleases).toBe(1);
    await until(
      'the watch to show the address free',
      async () => (await a.table.holdings(subnet, only, only)).length === 0,
    );

    // etcd answers again, and a new container of the same pool asks before the queue's next try.
    etcd.heal();
    expect(await a.table.take(range)).toBe(only);
    const claim = (await heldIn(a.kv, subnet)).get(formatIp(false, only))!;
    expect(claim).toHaveLength(1);
    await a.table.drained();
    await new Promise((resolve) => setTimeout(resolve, 1500)); // past the queue's retry pause
    expect((await heldIn(a.kv, subnet)).get(formatIp(false, only))).toEqual(claim);
    expect(a.table.pendingReleases).toBe(0);
  });
});
