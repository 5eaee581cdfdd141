// The nemesis's plan: a seeded, printed list of faults, so that a failed soak can be run again with the same faults
// in the same order at the same moments (`npm run chaos -- --seed S`).

/** A small seeded PRNG (mulberry32): the same seed gives the same schedule on every machine. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type FaultKind =
  | 'plugin-kill'
  | 'dockerd-restart'
  | 'etcd-stop-one'
  | 'etcd-data-loss'
  | 'etcd-stop-majority'
  | 'etcd-stop-leader'
  | 'partition-etcd'
  | 'partition-hosts'
  | 'isolate'
  | 'disk-full';

/**
 * Relative weights: plugin kills are the cheapest and the most telling; a dockerd restart costs its containers; a
 * member's data loss costs a snapshot's transfer to the new member.
 */
const WEIGHTS: [FaultKind, number][] = [
  ['plugin-kill', 22],
  ['dockerd-restart', 8],
  ['etcd-stop-one', 12],
  ['etcd-stop-majority', 12],
  ['etcd-stop-leader', 10],
  ['etcd-data-loss', 6],
  ['partition-etcd', 12],
  ['partition-hosts', 8],
  ['isolate', 6],
  ['disk-full', 10],
];

/**
 * The seed of the CI's 2-minute soak (test/e2e/chaos.test.ts): its schedule has every kind, 3 dockerd crashes and 2
 * etcd member data losses (test/unit/chaos-schedule.test.ts). A kind added or reweighted changes every seed's schedule.
 */
export const CI_SEED = 124;

export interface PlannedFault {
  /** ms after the soak begins. */
  at: number;
  kind: FaultKind;
  /** Host index (0-based) for host faults; member index for etcd-stop-one and etcd-data-loss. */
  target: number;
  /** How long it lasts once in place, in ms. */
  hold: number;
}

/**
 * Faults over `durationMs`: arrivals at random (exponential gaps of mean `meanGapMs`), each held 1-8 s, so that they
 * overlap. None starts in the last 10 s: the soak ends with every fault healed.
 */
export function planFaults(seed: number, durationMs: number, hosts: number, meanGapMs: number): PlannedFault[] {
  const rand = prng(seed);
  const total = WEIGHTS.reduce((sum, [, w]) => sum + w, 0);
  const plan: PlannedFault[] = [];
  for (let at = 3_000 + rand() * meanGapMs; at < durationMs - 10_000; at += -Math.log(1 - rand()) * meanGapMs) {
    let pick = rand() * total;
    const kind = WEIGHTS.find(([, w]) => (pick -= w) < 0)![0];
    const target = Math.floor(rand() * (kind === 'etcd-stop-one' || kind === 'etcd-data-loss' ? 3 : hosts));
    plan.push({ at: Math.round(at), kind, target, hold: Math.round(1_000 + rand() * 7_000) });
  }
  return plan;
}

/** The schedule as lines for the log. */
export function describePlan(plan: PlannedFault[]): string {
  return plan.map((f) => `  +${(f.at / 1000).toFixed(1)}s ${f.kind} ${f.target} for ${f.hold} ms`).join('\n');
}
