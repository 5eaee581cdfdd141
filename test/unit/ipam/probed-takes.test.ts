// A verdict that an address is held makes it a device's only while it is fresh: under churn the holder may have been
// a container that has gone since (another host's, or this host's), and a device holding keeps the address from every
// container until its recheck. A free verdict is trusted for FRESH_MS, as before.
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { HELD_FRESH_MS, type ProbingHost, ProbedTakes } from '../../../src/ipam/probed-takes';
import { type Cidr, parseCidr } from '../../../src/ip/address';
import type { Neighbourhood, Verdict } from '../../../src/probe/neighbourhood';
import type { Pool } from '../../../src/ipam/subnet-model';

const parsed = parseCidr('10.9.0.0/24');
if (!parsed.ok) throw new Error(parsed.why);
const cidr: Cidr = parsed.cidr;
const MAC = '02:00:00:00:00:99';

/** A neighbourhood whose verdicts are kept with their time; a check answers `answer` and counts itself. */
function standIn(now: () => number, answer: Verdict) {
  const kept = new Map<bigint, { verdict: Verdict; at: number }>();
  const checks: bigint[] = [];
  const neighbourhood = {
    onAttach: () => undefined,
    knows: () => true,
    underWay: () => false,
    forget: (_: Cidr, value: bigint) => kept.delete(value),
    forgetGiven: () => undefined,
    recent: (_: Cidr, value: bigint, maxAgeMs: number) => {
      const k = kept.get(value);
      return k && now() - k.at <= maxAgeMs ? k.verdict : undefined;
    },
    check: async (_: Cidr, value: bigint) => {
      checks.push(value);
      kept.set(value, { verdict: answer, at: now() });
      return answer;
    },
  };
  return { neighbourhood: neighbourhood as unknown as Neighbourhood, kept, checks, recent: neighbourhood.recent };
}

const host: ProbingHost = {
  subnets: () => [],
  pools: () => [],
  poolsOf: () => [],
  table: undefined,
  upcoming: async () => [],
  record: () => undefined,
  free: async () => undefined,
};
const subnet = { cidr, text: (value: bigint) => `10.9.0.${value}` };
const pool = { id: 'tsmacvlan-cluster:10.9.0.0/24', options: {}, subnet, lane: { key: 'all' } } as unknown as Pool;

describe('probe before use: how long a verdict is trusted', () => {
  it('a held verdict older than HELD_FRESH_MS is asked again before the address becomes a device claim', async () => {
    const t = 1_000_000;
    const lan = standIn(() => t, { held: false });
    const takes = new ProbedTakes(lan.neighbourhood, pino({ level: 'silent' }), host, () => t);
    try {
      const vet = takes.vetter(pool)!;
      lan.kept.set(5n, { verdict: { held: true, mac: MAC, by: 'lan' }, at: t - HELD_FRESH_MS - 1 });
      expect(await vet(5n)).toBeUndefined(); // the holder left: free now
      expect(lan.checks).toEqual([5n]);

      lan.kept.set(6n, { verdict: { held: true, mac: MAC, by: 'lan' }, at: t - HELD_FRESH_MS + 100 });
      expect(await vet(6n)).toBe(MAC); // fresh: trusted, not asked again
      lan.kept.set(7n, { verdict: { held: false }, at: t - 20_000 });
      expect(await vet(7n)).toBeUndefined(); // a free verdict 20 s old: trusted
      expect(lan.checks).toEqual([5n]);
    } finally {
      takes.close();
    }
  });

  it('a free verdict is spent by the take it allowed: once the address is released it is probed again', async () => {
    const t = 1_000_000;
    const lan = standIn(() => t, { held: true, mac: MAC, by: 'lan' });
    const takes = new ProbedTakes(lan.neighbourhood, pino({ level: 'silent' }), host, () => t);
    try {
      const vet = takes.vetter(pool)!;
      lan.kept.set(8n, { verdict: { held: false }, at: t - 5_000 });
      expect(await vet(8n)).toBeUndefined(); // free 5 s ago: taken
      takes.taken(pool, 8n);
      takes.released(pool, 8n); // its container removed, maybe still answering
      expect(await vet(8n)).toBe(MAC); // asked again, not the verdict from before the take
      expect(lan.checks).toEqual([8n]);
      lan.kept.set(9n, { verdict: { held: false }, at: t - 5_000 });
      takes.released(pool, 9n);
      expect(lan.recent(cidr, 9n, 30_000)).toBeUndefined();
    } finally {
      takes.close();
    }
  });
});
