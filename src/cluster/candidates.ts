// Which address a dynamic take tries: chosen locally, so that hosts allocating at once rarely pick the same one.
// Each host fills a run of consecutive addresses upward from its own starting point: the hosts with claims in the
// subnet (each holds at least the shared gateway) split the range evenly, in the order of their ids. A run ends where it meets
// anything held: past that lies another host's run, whose growing end is exactly where that host takes next. A new
// run starts near the middle of a free gap found at random (bigger gaps are likelier), as far as possible from the
// growing ends around it.

/** What a picker needs to know of the subnet: whether an address is held or being taken, and all of them in order. */
export interface Occupancy {
  taken(value: bigint): boolean;
  /** Held or busy addresses in [lo, hi], sorted. */
  sorted(lo: bigint, hi: bigint): bigint[];
}

/** Random gaps tried before a new run falls back to a scan from a random point. */
const GAP_TRIES = 4;

export function randomBelow(n: bigint): bigint {
  // 64 random bits are plenty for any range a subnet can have in practice, and uniform enough for spreading.
  const high = BigInt(Math.floor(Math.random() * 2 ** 32));
  const low = BigInt(Math.floor(Math.random() * 2 ** 32));
  return ((high << 32n) | low) % n;
}

/** The index of the first element of `sorted` greater than `value`. */
function upperBound(sorted: bigint[], value: bigint): number {
  let a = 0;
  let b = sorted.length;
  while (a < b) {
    const mid = (a + b) >> 1;
    if (sorted[mid] <= value) a = mid + 1;
    else b = mid;
  }
  return a;
}

/** Near the middle of the free gap of [lo, hi] around `point` (held addresses in `sorted`); undefined if `point` is held. */
export function gapMiddle(sorted: bigint[], lo: bigint, hi: bigint, point: bigint): bigint | undefined {
  const i = upperBound(sorted, point);
  if (i > 0 && sorted[i - 1] === point) return undefined;
  const start = i > 0 ? sorted[i - 1] + 1n : lo;
  const end = i < sorted.length ? sorted[i] - 1n : hi;
  const width = end - start + 1n;
  // Within the middle half, at random: two hosts jumping into one gap at once seldom pick the same address.
  return start + width / 4n + randomBelow(width / 2n + 1n);
}

/** Where `self`'s first run in [lo, lo + size) starts, among the instances `owners` (self included or not). */
export function spreadStart(owners: Iterable<string>, self: string, lo: bigint, size: bigint): bigint {
  const all = [...new Set([...owners, self])].sort();
  return lo + (size * BigInt(all.indexOf(self))) / BigInt(all.length);
}

/** The first address of [lo, hi] from `point` on (wrapping) that is not in `sorted`; undefined when all are. */
export function firstFree(sorted: bigint[], lo: bigint, hi: bigint, point: bigint): bigint | undefined {
  if (BigInt(sorted.length) >= hi - lo + 1n) return undefined;
  let value = point < lo || point > hi ? lo : point;
  let i = upperBound(sorted, value - 1n);
  // Each step passes one element of `sorted`: at most its length of them before a hole.
  for (let steps = 0; steps <= sorted.length; steps++) {
    if (i >= sorted.length || sorted[i] !== value) return value;
    i++;
    value++;
    if (value > hi) {
      value = lo;
      i = 0;
    }
  }
  return undefined;
}

export class Picker {
  /** Where each range's current run continues. */
  private readonly cursors = new Map<string, bigint>();

  /**
   * The next candidate in [lo, hi], or undefined when every address there is held. `start` gives where this host's
   * first run begins.
   */
  pick(lane: string, lo: bigint, hi: bigint, start: () => bigint, occupancy: Occupancy): bigint | undefined {
    const cursor = this.cursors.get(lane);
    let candidate: bigint | undefined;
    if (cursor === undefined) candidate = firstFree(occupancy.sorted(lo, hi), lo, hi, start());
    else if (cursor >= lo && cursor <= hi && !occupancy.taken(cursor)) candidate = cursor;
    else candidate = this.newRun(lo, hi, occupancy);
    if (candidate !== undefined) this.cursors.set(lane, candidate + 1n);
    return candidate;
  }

  /** Forgets the run of `lane`: its next address was just taken by another host. */
  lost(lane: string): void {
    this.cursors.set(lane, -1n); // below any range: the next pick starts a new run
  }

  private newRun(lo: bigint, hi: bigint, occupancy: Occupancy): bigint | undefined {
    const size = hi - lo + 1n;
    const sorted = occupancy.sorted(lo, hi);
    if (BigInt(sorted.length) >= size) return undefined;
    for (let i = 0; i < GAP_TRIES; i++) {
      const middle = gapMiddle(sorted, lo, hi, lo + randomBelow(size));
      if (middle !== undefined) return middle;
    }
    // Nearly full: the first free address after a random point.
    return firstFree(sorted, lo, hi, lo + randomBelow(size));
  }
}
