// Which address a dynamic take tries: chosen locally, so that hosts allocating at once rarely pick the same one.
// The hosts with claims in the subnet (each holds at least the shared gateway) split the range into one slot each,
// in the order of their ids. A host fills its own slot upward from its start (skipping what others took there before
// the slots were known), then overflows into the other slots from their tops downward (the slot below its own first,
// skipping slots the view shows much fuller than the freest): each slot's owner fills it from the bottom, so an
// overflowing host meets it only when that slot is nearly full, and hosts overflowing at once start in different
// slots.

/** What a picker needs to know of the subnet: whether an address is held or being taken, and all of them in order. */
export interface Occupancy {
  taken(value: bigint): boolean;
  /** Held or busy addresses in [lo, hi], sorted. */
  sorted(lo: bigint, hi: bigint): bigint[];
  /** How many addresses are held or busy (bounds a scan over a run of taken ones). */
  count(): number;
}

/** A stretch of addresses walked from `from` toward `to` (downward when from > to). */
export interface Segment {
  from: bigint;
  to: bigint;
}

export function randomBelow(n: bigint): bigint {
  // 64 random bits: uniform enough for spreading over any range.
  const high = BigInt(Math.floor(Math.random() * 2 ** 32));
  const low = BigInt(Math.floor(Math.random() * 2 ** 32));
  return ((high << 32n) | low) % n;
}

/** The walk of `self` over [lo, hi] shared with `owners` (self included or not): own slot up, then the others down. */
export function segmentsFor(owners: Iterable<string>, self: string, lo: bigint, hi: bigint): Segment[] {
  const all = [...new Set([...owners, self])].sort();
  const n = BigInt(all.length);
  const size = hi - lo + 1n;
  const rank = BigInt(all.indexOf(self));
  const slot = (i: bigint) => ({ start: lo + (size * i) / n, end: lo + (size * (i + 1n)) / n - 1n });
  const segments: Segment[] = [];
  const own = slot(rank);
  if (own.end >= own.start) segments.push({ from: own.start, to: own.end });
  for (let k = 1n; k < n; k++) {
    const other = slot((rank - k + n) % n);
    if (other.end >= other.start) segments.push({ from: other.end, to: other.start });
  }
  return segments;
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

/**
 * The next address of `segment` from `at` on in its direction. With `skipTaken` (entering a segment, or anywhere in
 * this host's own slot) taken addresses are skipped, at most as many as are taken. Otherwise a taken one ends the run:
 * in another host's slot, beyond it lies that host's run, whose growing end is where it takes next. In its own slot
 * a host skips, since what it meets there is mostly left from before the slots were known (takes made before the
 * hosts saw each other); an overflowing host's run, grown down from the slot's top, ends the slot for it anyway.
 */
function nextInSegment(segment: Segment, at: bigint, skipTaken: boolean, occupancy: Occupancy): bigint | undefined {
  const up = segment.from <= segment.to;
  const bound = skipTaken ? occupancy.count() + 1 : 1;
  let value = at;
  for (let steps = 0; steps < bound; steps++) {
    if (up ? value > segment.to : value < segment.to) return undefined;
    if (!occupancy.taken(value)) return value;
    value = up ? value + 1n : value - 1n;
  }
  return undefined;
}

/** The instances with claims in the subnet, and a version that changes whenever that set does. */
export interface Owners {
  version: number;
  ids(): Iterable<string>;
}

interface Walk {
  ownersVersion: number;
  /** Segments not yet left, in preference order; the first is the current one. */
  segments: Segment[];
  at: bigint;
  /** Nothing taken yet in the current segment. */
  entering: boolean;
  /** Still in this host's own slot. */
  home: boolean;
}

/** How many addresses of `segment` `sorted` holds. */
function heldIn(sorted: bigint[], segment: Segment): number {
  const [low, high] = segment.from <= segment.to ? [segment.from, segment.to] : [segment.to, segment.from];
  return upperBound(sorted, high) - upperBound(sorted, low - 1n);
}

export class Picker {
  /** Where each range's walk stands. */
  private readonly walks = new Map<string, Walk>();
  /** Ranges whose last pick came from outside this host's own slot. */
  private readonly strayed = new Set<string>();

  /**
   * The next candidate in [lo, hi], or undefined when every address there is held. `owners` gives the instances
   * with claims in the subnet, read when a walk (re)starts: at the first pick, and whenever its version changes (a
   * host that joins or leaves moves every slot; walking the old ones would run into other hosts' takes).
   */
  pick(lane: string, lo: bigint, hi: bigint, owners: Owners, self: string, occupancy: Occupancy): bigint | undefined {
    let walk = this.walks.get(lane);
    if (!walk || walk.ownersVersion !== owners.version) {
      const segments = segmentsFor(owners.ids(), self, lo, hi);
      walk = { segments, at: segments[0]?.from ?? lo, entering: true, home: true, ownersVersion: owners.version };
      this.walks.set(lane, walk);
    }
    while (walk.segments.length > 0) {
      const segment = walk.segments[0];
      const found = nextInSegment(segment, walk.at, walk.entering || walk.home, occupancy);
      if (found !== undefined) {
        walk.at = segment.from <= segment.to ? found + 1n : found - 1n;
        walk.entering = false;
        if (walk.home) this.strayed.delete(lane);
        else this.strayed.add(lane);
        return found;
      }
      this.leave(walk, occupancy.sorted(lo, hi));
    }
    // Every segment left (others' addresses or races cut them short): whatever is free, from a random point; the
    // next pick starts a new walk.
    this.walks.delete(lane);
    this.strayed.add(lane);
    return firstFree(occupancy.sorted(lo, hi), lo, hi, lo + randomBelow(hi - lo + 1n));
  }

  /**
   * The next `n` candidates `pick` would give if each were taken, in order; changes nothing. What the probes check
   * ahead of need (a candidate that is then lost to another host only cost a probe).
   */
  upcoming(lane: string, lo: bigint, hi: bigint, owners: Owners, self: string, occupancy: Occupancy, n: number) {
    const walk = this.walks.get(lane);
    const strayed = this.strayed.has(lane);
    if (walk) this.walks.set(lane, { ...walk, segments: [...walk.segments] });
    const picked: bigint[] = [];
    const seen = new Set<bigint>();
    const overlay: Occupancy = {
      taken: (value) => seen.has(value) || occupancy.taken(value),
      count: () => occupancy.count() + seen.size,
      sorted: (a, b) =>
        [...occupancy.sorted(a, b), ...picked.filter((v) => v >= a && v <= b)].sort((x, y) => (x < y ? -1 : 1)),
    };
    try {
      for (let i = 0; i < n; i++) {
        const value = this.pick(lane, lo, hi, owners, self, overlay);
        if (value === undefined || seen.has(value)) break;
        picked.push(value);
        seen.add(value);
      }
    } finally {
      if (walk) this.walks.set(lane, walk);
      else this.walks.delete(lane);
      if (strayed) this.strayed.add(lane);
      else this.strayed.delete(lane);
    }
    return picked;
  }

  /** Whether the last pick in this range came from outside this host's own slot, where other hosts' takes are met. */
  away(lane: string): boolean {
    return this.strayed.has(lane);
  }

  /** Another host just took the address this walk tried: it is working here, so move to another segment. */
  lost(lane: string, lo: bigint, hi: bigint, occupancy: Occupancy): void {
    const walk = this.walks.get(lane);
    if (walk) this.leave(walk, occupancy.sorted(lo, hi));
  }

  /**
   * Leaves the current segment for the next one in this host's order that the view shows at least half as free as
   * the freest: hosts overflowing at once go to different segments, yet none into one nearly full.
   */
  private leave(walk: Walk, sorted: bigint[]): void {
    walk.segments.shift();
    walk.home = false;
    if (walk.segments.length === 0) return;
    const free = walk.segments.map((segment) => {
      const size = (segment.from <= segment.to ? segment.to - segment.from : segment.from - segment.to) + 1n;
      return size - BigInt(heldIn(sorted, segment));
    });
    const most = free.reduce((a, b) => (a > b ? a : b));
    const best = free.findIndex((f) => f * 2n >= most);
    const [chosen] = walk.segments.splice(best, 1);
    walk.segments.unshift(chosen);
    walk.at = chosen.from;
    walk.entering = true;
  }
}
