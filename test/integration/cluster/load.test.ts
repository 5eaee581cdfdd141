// Many hosts allocating at once over one /22 against a real 3-member etcd: no address twice, about one round trip
// per allocation, the range fills to its exact size. Figures (allocations/s, p50/p99) are printed, not asserted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdCluster } from '../../lab/etcd';
import { PREFIX, Tables, bounds, cidr, heldIn, until } from './setup';

const cluster = EtcdCluster.onHost(`${PREFIX}l`, '127.0.0.1', 23720);
const tables = new Tables(() => ({ endpoints: cluster.endpoints, prefix: `/${PREFIX}/load` }));

beforeAll(async () => {
  await cluster.start();
}, 60_000);
afterAll(async () => {
  await tables.closeAll();
  await cluster.stop();
});

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

describe('cluster table under load', () => {
  it('4 hosts x 190 parallel allocations over a /22, then filling it: 0 duplicates, <= 1.1 round trips each', async () => {
    const subnet = cidr('10.71.0.0/22');
    const { lo, hi } = bounds(subnet);
    const HOSTS = 4;
    const EACH = 190;
    const hosts = Array.from({ length: HOSTS }, (_, i) => tables.open(`load${i}`));
    // As with Docker, every host first joins the network's gateway reservation (which also loads its view: one range
    // read and one watch each); then all allocate at once.
    for (const h of hosts) await h.table.take({ subnet, lo, hi, address: lo, kind: 'gateway', ref: 'pool' });
    for (const h of hosts)
      await until(
        'the gateway reservation seen by every host',
        async () => (await h.table.view(subnet.text)).owners().size === HOSTS,
      );
    const callsBefore = hosts.reduce((sum, h) => sum + h.kv.total, 0);
    const started = process.hrtime.bigint();
    const results = await Promise.all(
      hosts.map((h, i) =>
        Promise.all(
          Array.from({ length: EACH }, (_, j) =>
            h.table.take({ subnet, lo, hi, kind: 'container', ref: `h${i}-${j}` }),
          ),
        ),
      ),
    );
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const calls = hosts.reduce((sum, h) => sum + h.kv.total, 0) - callsBefore;
    const all = results.flat();
    const perAllocation = calls / all.length;
    console.log(
      `burst: ${all.length} allocations from ${HOSTS} hosts in ${seconds.toFixed(2)} s (${Math.round(all.length / seconds)}/s), ${calls} etcd calls, ${perAllocation.toFixed(3)} per allocation`,
    );
    expect(new Set(all).size).toBe(HOSTS * EACH);
    expect(perAllocation).toBeLessThanOrEqual(1.1);

    // Fill the rest: every host asks until the cluster says the range is full.
    const fill = await Promise.all(
      hosts.map(async (h, i) => {
        const got: bigint[] = [];
        for (let j = 0; j < 2000; j++) {
          try {
            got.push(await h.table.take({ subnet, lo, hi, kind: 'container', ref: `fill${i}-${j}` }));
          } catch (err) {
            expect(String(err)).toMatch(/no free address in subnet 10\.71\.0\.0\/22/);
            return got;
          }
        }
        throw new Error('the range never filled');
      }),
    );
    const everything = [...all, ...fill.flat()];
    expect(new Set(everything).size).toBe(everything.length);
    expect(everything.length).toBe(Number(hi - lo)); // all but the gateway
    const held = await heldIn(hosts[0].kv, subnet);
    expect(held.size).toBe(everything.length + 1);
    expect(held.get('10.71.0.1')!.length).toBe(HOSTS);
    for (const [address, claims] of held) if (address !== '10.71.0.1') expect(claims.length).toBe(1);
  }, 300_000);

  it('uneven demand: 10 hosts asking 5 to 300 addresses each at once over a /22: 0 duplicates, <= 1.1 round trips each', async () => {
    const subnet = cidr('10.71.4.0/22');
    const { lo, hi } = bounds(subnet);
    const DEMAND = [300, 150, 120, 90, 60, 40, 30, 20, 10, 5];
    const hosts = DEMAND.map((_, i) => tables.open(`uneven${i}`));
    for (const h of hosts) await h.table.take({ subnet, lo, hi, address: lo, kind: 'gateway', ref: 'pool' });
    for (const h of hosts)
      await until(
        'the gateway reservation seen by every host',
        async () => (await h.table.view(subnet.text)).owners().size === DEMAND.length,
      );
    const callsBefore = hosts.reduce((sum, h) => sum + h.kv.total, 0);
    const started = process.hrtime.bigint();
    const results = await Promise.all(
      hosts.map((h, i) =>
        Promise.all(
          Array.from({ length: DEMAND[i] }, (_, j) =>
            h.table.take({ subnet, lo, hi, kind: 'container', ref: `u${i}-${j}` }),
          ),
        ),
      ),
    );
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const all = results.flat();
    const calls = hosts.reduce((sum, h) => sum + h.kv.total, 0) - callsBefore;
    console.log(
      `uneven burst: ${all.length} allocations from ${DEMAND.length} hosts in ${seconds.toFixed(2)} s (${Math.round(all.length / seconds)}/s), ${(calls / all.length).toFixed(3)} etcd calls per allocation`,
    );
    expect(new Set(all).size).toBe(all.length);
    expect((await heldIn(hosts[0].kv, subnet)).size).toBe(all.length + 1);
    expect(calls / all.length).toBeLessThanOrEqual(1.1);
  }, 300_000);

  it('20 hosts x 50 parallel allocations over a /22: 0 duplicates, <= 1.1 round trips each', async () => {
    const subnet = cidr('10.71.12.0/22');
    const { lo, hi } = bounds(subnet);
    const HOSTS = 20;
    const EACH = 50;
    const hosts = Array.from({ length: HOSTS }, (_, i) => tables.open(`many${String(i).padStart(2, '0')}`));
    for (const h of hosts) await h.table.take({ subnet, lo, hi, address: lo, kind: 'gateway', ref: 'pool' });
    for (const h of hosts)
      await until(
        'the gateway reservation seen by every host',
        async () => (await h.table.view(subnet.text)).owners().size === HOSTS,
      );
    const callsBefore = hosts.reduce((sum, h) => sum + h.kv.total, 0);
    const started = process.hrtime.bigint();
    const results = await Promise.all(
      hosts.map((h, i) =>
        Promise.all(
          Array.from({ length: EACH }, (_, j) =>
            h.table.take({ subnet, lo, hi, kind: 'container', ref: `m${i}-${j}` }),
          ),
        ),
      ),
    );
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const all = results.flat();
    const calls = hosts.reduce((sum, h) => sum + h.kv.total, 0) - callsBefore;
    console.log(
      `20-host burst: ${all.length} allocations in ${seconds.toFixed(2)} s (${Math.round(all.length / seconds)}/s), ${(calls / all.length).toFixed(3)} etcd calls per allocation`,
    );
    expect(new Set(all).size).toBe(HOSTS * EACH);
    expect((await heldIn(hosts[0].kv, subnet)).size).toBe(HOSTS * EACH + 1);
    expect(calls / all.length).toBeLessThanOrEqual(1.1);
  }, 300_000);

  it('one allocation at a time against the 3-member cluster: p50/p99 (figures)', async () => {
    const subnet = cidr('10.71.8.0/22');
    const { lo, hi } = bounds(subnet);
    const h = tables.open('latency');
    await h.table.view(subnet.text);
    const times: number[] = [];
    const got: bigint[] = [];
    const callsBefore = h.kv.total;
    for (let i = 0; i < 400; i++) {
      const t0 = process.hrtime.bigint();
      got.push(await h.table.take({ subnet, lo, hi, kind: 'container', ref: `l${i}` }));
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const releaseTimes: number[] = [];
    for (let i = 0; i < 100; i++) {
      const t0 = process.hrtime.bigint();
      expect(await h.table.release(subnet, got[i], `l${i}`)).toBe(true);
      releaseTimes.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    // What a take is made of: the etcd transaction alone, same cluster, same run.
    const txnTimes: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t0 = process.hrtime.bigint();
      await h.kv.inner.create(`/${PREFIX}/load-raw/${i}`, 'x');
      txnTimes.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    txnTimes.sort((x, y) => x - y);
    times.sort((x, y) => x - y);
    releaseTimes.sort((x, y) => x - y);
    console.log(
      `one take: p50 ${percentile(times, 50).toFixed(2)} ms, p99 ${percentile(times, 99).toFixed(2)} ms; one release: p50 ${percentile(releaseTimes, 50).toFixed(2)} ms, p99 ${percentile(releaseTimes, 99).toFixed(2)} ms; ${(h.kv.total - callsBefore) / 500} calls per operation; the etcd transaction alone: p50 ${percentile(txnTimes, 50).toFixed(2)} ms, p99 ${percentile(txnTimes, 99).toFixed(2)} ms`,
    );
    expect(h.kv.total - callsBefore).toBe(500);
    expect((await heldIn(h.kv, subnet)).size).toBe(300);
  }, 120_000);
});
