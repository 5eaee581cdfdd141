// The soak's schedule (test/chaos/schedule.ts): a seed replays the same faults, and the CI's 2-minute soak has every
// kind of fault the nemesis injects, the costly ones more than once.
import { expect, it } from 'vitest';
import { CI_SEED, planFaults, type FaultKind } from '../chaos/schedule';

const KINDS: FaultKind[] = [
  'plugin-kill',
  'dockerd-restart',
  'etcd-stop-one',
  'etcd-data-loss',
  'etcd-stop-majority',
  'etcd-stop-leader',
  'partition-etcd',
  'partition-hosts',
  'isolate',
  'disk-full',
];

it('a seed gives the same schedule every time, another seed another one', () => {
  expect(planFaults(CI_SEED, 120_000, 3, 7_000)).toEqual(planFaults(CI_SEED, 120_000, 3, 7_000));
  expect(planFaults(CI_SEED + 1, 120_000, 3, 7_000)).not.toEqual(planFaults(CI_SEED, 120_000, 3, 7_000));
});

it("the CI seed's 2 minutes have every kind, 2 dockerd crashes and a member's data loss at least, all healed early", () => {
  const plan = planFaults(CI_SEED, 120_000, 3, 7_000);
  const count = (kind: FaultKind) => plan.filter((f) => f.kind === kind).length;
  for (const kind of KINDS) expect(count(kind), kind).toBeGreaterThan(0);
  expect(count('dockerd-restart')).toBeGreaterThanOrEqual(2);
  expect(count('etcd-data-loss')).toBeGreaterThanOrEqual(1);
  for (const f of plan) {
    expect(f.at).toBeLessThan(110_000);
    expect(f.target).toBeLessThan(3);
  }
});
