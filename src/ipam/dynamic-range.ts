// The order in which the pools sharing one --ip-range (or the whole subnet) hand out dynamic addresses.
import { PluginError } from '../errors';
import { type Cidr, usableBounds } from '../ip/address';

/** The addresses in use, as far as the order needs to know. */
type Taken = { has(value: bigint): boolean };

/** Releases in a lane with more never-used addresses than this left are not queued: the cursor will not get back to them for ages; a sweep finds them if it ever does. */
const QUEUE_LIMIT = 1n << 24n;

/** The addresses dynamic takes come from: the subnet's usable ones, within the --ip-range when there is one. */
export function rangeBounds(subnet: Cidr, range: Cidr | undefined): { lo: bigint; hi: bigint } {
  let { lo, hi } = usableBounds(subnet);
  if (range) {
    if (range.base > lo) lo = range.base;
    if (range.last < hi) hi = range.last;
  }
  return { lo, hi };
}

/** A FIFO of bigints with O(1) amortised shift. */
export class Fifo {
  private items: bigint[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(value: bigint): void {
    this.items.push(value);
  }

  peek(): bigint | undefined {
    return this.head < this.items.length ? this.items[this.head] : undefined;
  }

  shift(): bigint | undefined {
    if (this.head >= this.items.length) return undefined;
    const value = this.items[this.head++];
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return value;
  }

  /** Keeps the first occurrence of each value that passes `keep`, in order. */
  compact(keep: (value: bigint) => boolean): void {
    const seen = new Set<bigint>();
    const out: bigint[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      const value = this.items[i];
      if (seen.has(value) || !keep(value)) continue;
      seen.add(value);
      out.push(value);
    }
    this.items = out;
    this.head = 0;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }

  values(): bigint[] {
    return this.items.slice(this.head);
  }
}

/**
 * Where dynamic addresses of the pools sharing one --ip-range (or the whole subnet) come from: first a cursor
 * through addresses never handed out, then released addresses in the order they were released. Invariant: every
 * free address of the range is at or after the cursor, in the FIFO, or (when `sweepNeeded`) found by a sweep.
 */
export class DynamicRange {
  cursor: bigint;
  readonly fifo = new Fifo();
  private fifoLimit = 1024;
  /** Next address of a sweep over the whole lane, when one is under way. */
  sweep: bigint | undefined;
  sweepNeeded = false;
  users = 0;
  /** Addresses of the lane in use, whoever holds them: its fill, for the metrics and status (kept by took and freed). */
  inUse = 0;

  constructor(
    readonly key: string,
    readonly lo: bigint,
    readonly hi: bigint,
    readonly label: string,
  ) {
    this.cursor = lo;
  }

  get size(): bigint {
    return this.hi - this.lo + 1n;
  }

  next(taken: Taken): bigint | undefined {
    while (this.cursor <= this.hi) {
      const value = this.cursor++;
      if (!taken.has(value)) return value;
    }
    for (let value = this.fifo.shift(); value !== undefined; value = this.fifo.shift()) {
      if (!taken.has(value)) return value;
    }
    if (this.sweepNeeded && this.sweep === undefined) {
      this.sweep = this.lo;
      this.sweepNeeded = false;
    }
    if (this.sweep !== undefined) {
      while (this.sweep <= this.hi) {
        const value = this.sweep++;
        if (!taken.has(value)) return value;
      }
      this.sweep = undefined;
    }
    return undefined;
  }

  /**
   * The first `n` addresses successive calls of `next` would return if nothing else changed, in that order; changes
   * nothing. What the probes check ahead of need (src/ipam/probe-ahead.ts).
   */
  peek(taken: Taken, n: number): bigint[] {
    const out: bigint[] = [];
    for (let value = this.cursor; value <= this.hi && out.length < n; value++) if (!taken.has(value)) out.push(value);
    if (out.length >= n) return out;
    // A released address may sit in the FIFO twice (compaction drops the copies); `next` skips the second as taken.
    const seen = new Set(out);
    for (const value of this.fifo.values()) {
      if (out.length >= n) return out;
      if (!taken.has(value) && !seen.has(value)) (out.push(value), seen.add(value));
    }
    const sweepFrom = this.sweep ?? (this.sweepNeeded ? this.lo : undefined);
    if (sweepFrom === undefined) return out;
    for (let value = sweepFrom; value <= this.hi && out.length < n; value++)
      if (!taken.has(value) && !seen.has(value)) out.push(value);
    return out;
  }

  /** Whether `next` would change the lane when it finds nothing (so that failure is worth a journal line). */
  get searchMoves(): boolean {
    return this.cursor <= this.hi || this.fifo.length > 0 || this.sweepNeeded || this.sweep !== undefined;
  }

  /** Replays `next` having found nothing: it ran the cursor, the FIFO and any sweep to their ends. */
  replayExhausted(): void {
    this.cursor = this.hi + 1n;
    this.fifo.clear();
    this.sweep = undefined;
    this.sweepNeeded = false;
  }

  /** Replays `next` having returned `value` (called before `value` is marked taken). */
  replayNext(value: bigint, taken: Taken): void {
    if (value < this.lo || value > this.hi) return;
    if (this.cursor <= this.hi && value >= this.cursor) {
      this.cursor = value + 1n;
      return;
    }
    this.cursor = this.hi + 1n;
    for (let head = this.fifo.peek(); head !== undefined && taken.has(head); head = this.fifo.peek()) this.fifo.shift();
    if (this.fifo.peek() === value) {
      this.fifo.shift();
    } else if (this.fifo.length === 0 && (this.sweep !== undefined || this.sweepNeeded)) {
      this.sweep = value + 1n;
      this.sweepNeeded = false;
    }
  }

  /** An address of the subnet was taken. */
  took(value: bigint): void {
    if (value >= this.lo && value <= this.hi) this.inUse++;
  }

  /** An address of the subnet became free. */
  freed(value: bigint, taken: Taken): void {
    if (value < this.lo || value > this.hi) return;
    this.inUse--;
    if (value >= this.cursor) return;
    if (this.hi - this.cursor + 1n > QUEUE_LIMIT) {
      this.sweepNeeded = true;
      return;
    }
    this.fifo.push(value);
    if (this.fifo.length > this.fifoLimit) this.compactFifo(taken);
  }

  compactFifo(taken: Taken): void {
    this.fifo.compact((value) => !taken.has(value));
    this.fifoLimit = 2 * this.fifo.length + 1024;
  }
}

/** No free address left in a pool's dynamic range. `line`, when set, records how the search moved the range (to be journaled). */
export class ExhaustedError extends PluginError {
  constructor(
    message: string,
    readonly line: string | undefined,
  ) {
    super(message);
  }
}
