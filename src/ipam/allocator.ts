// The in-memory model of one subnet: its pools, its dynamic lanes and every address in use. No I/O here: each
// change returns the journal line that records it, and replaying those lines rebuilds the same state.
import { PluginError } from '../errors';
import { type Cidr, contains, formatIp, parseCidr, parseIp, usableBounds } from './address';

export type TakeKind = 'gateway' | 'aux' | 'static' | 'dynamic';

const KIND_CODE: Record<TakeKind, string> = { gateway: 'g', aux: 'x', static: 's', dynamic: 'd' };
const CODE_KIND: Record<string, TakeKind> = { g: 'gateway', x: 'aux', s: 'static', d: 'dynamic' };

/** Releases in a lane with more never-used addresses than this left are not queued: the cursor will not get back to them for ages; a sweep finds them if it ever does. */
const QUEUE_LIMIT = 1n << 24n;

/** Who holds an address. Gateways may be shared by several pools (networks on one LAN share its router); nothing else is shared. */
export type Holder = { kind: 'aux' | 'static' | 'dynamic'; pool: Pool } | { kind: 'gateway'; by: Map<Pool, number> };

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
 * free address of the lane is at or after the cursor, in the FIFO, or (when `sweepNeeded`) found by a sweep.
 */
export class Lane {
  cursor: bigint;
  readonly fifo = new Fifo();
  private fifoLimit = 1024;
  /** Next address of a sweep over the whole lane, when one is under way. */
  sweep: bigint | undefined;
  sweepNeeded = false;
  users = 0;

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

  next(taken: Map<bigint, Holder>): bigint | undefined {
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
  replayNext(value: bigint, taken: Map<bigint, Holder>): void {
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

  /** An address of the subnet became free. */
  freed(value: bigint, taken: Map<bigint, Holder>): void {
    if (value < this.lo || value > this.hi || value >= this.cursor) return;
    if (this.hi - this.cursor + 1n > QUEUE_LIMIT) {
      this.sweepNeeded = true;
      return;
    }
    this.fifo.push(value);
    if (this.fifo.length > this.fifoLimit) this.compactFifo(taken);
  }

  compactFifo(taken: Map<bigint, Holder>): void {
    this.fifo.compact((value) => !taken.has(value));
    this.fifoLimit = 2 * this.fifo.length + 1024;
  }
}

/** No free address left in a lane. `line`, when set, records how the search moved the lane (to be journaled). */
export class ExhaustedError extends PluginError {
  constructor(
    message: string,
    readonly line: string | undefined,
  ) {
    super(message);
  }
}

export class Pool {
  refs = 0;
  /** References whose RequestPool was saved but not yet answered: a crash now means Docker never got them. */
  unanswered = 0;
  /** Addresses this pool holds (a gateway counts once however many times it was requested). */
  allocated = 0;
  readonly holders: { aux: Holder; static: Holder; dynamic: Holder };

  constructor(
    readonly subnet: Subnet,
    /** Short number of the pool inside its subnet's journal. */
    readonly no: number,
    readonly id: string,
    readonly range: Cidr | undefined,
    readonly options: Record<string, string>,
    readonly lane: Lane,
  ) {
    this.holders = {
      aux: { kind: 'aux', pool: this },
      static: { kind: 'static', pool: this },
      dynamic: { kind: 'dynamic', pool: this },
    };
  }
}

export interface PoolSpec {
  id: string;
  range?: Cidr;
  options: Record<string, string>;
}

function sameOptions(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return (
    keys.length === Object.keys(b).length &&
    keys.every((k) => Object.prototype.hasOwnProperty.call(b, k) && a[k] === b[k])
  );
}

/** Journal lines carry JSON objects; this is what one looks like after JSON.parse. */
export type JournalRecord = Record<string, unknown>;

function str(record: JournalRecord, key: string): string {
  const value = record[key];
  if (typeof value !== 'string') throw new Error(`field '${key}' is not a string`);
  return value;
}

function int(record: JournalRecord, key: string): number {
  const value = record[key];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    throw new Error(`field '${key}' is not a non-negative integer`);
  return value;
}

function offset(value: unknown, key: string): bigint {
  if (typeof value !== 'string' || !/^[0-9]{1,40}$/.test(value))
    throw new Error(`field '${key}' is not a decimal offset`);
  return BigInt(value);
}

function unansweredKey(value: bigint, pool: Pool): string {
  return `${pool.no}/${value}`;
}

export class Subnet {
  readonly lo: bigint;
  readonly hi: bigint;
  readonly pools = new Map<string, Pool>();
  private readonly poolsByNo = new Map<number, Pool>();
  readonly lanes = new Map<string, Lane>();
  readonly taken = new Map<bigint, Holder>();
  /** Takes saved but not yet answered, keyed by pool number and address: a crash now means Docker never got them. */
  private readonly unanswered = new Map<string, { value: bigint; pool: Pool; count: number }>();
  private nextNo = 1;
  /** Replay: lines applied so far, and how many lines the snapshot at the head of the file has (the rest are changes). */
  private replayed = 0;
  private snapshotLines = Infinity;

  constructor(readonly cidr: Cidr) {
    ({ lo: this.lo, hi: this.hi } = usableBounds(cidr));
  }

  get v6(): boolean {
    return this.cidr.v6;
  }

  get empty(): boolean {
    return this.pools.size === 0;
  }

  text(value: bigint): string {
    return formatIp(this.cidr.v6, value);
  }

  /**
   * The size of a snapshot of this subnet, in lines (a queued released address counts as one: it is written too).
   * Compaction is due when the journal is much longer, so its cost is spread over the lines appended since the last.
   */
  get liveLines(): number {
    let queued = 0;
    for (const lane of this.lanes.values()) queued += lane.fifo.length;
    return 1 + this.pools.size + this.lanes.size + this.taken.size + queued;
  }

  // ---- pools ----

  acquirePool(spec: PoolSpec): { pool: Pool; line: string } {
    let pool = this.pools.get(spec.id);
    if (pool) {
      if (!sameOptions(pool.options, spec.options)) {
        throw new PluginError(
          `pool ${spec.id} is in use with other --ipam-opt values (${JSON.stringify(pool.options)}); use the same options or another subnet`,
        );
      }
    } else {
      pool = this.createPool(this.nextNo, spec);
    }
    pool.refs++;
    pool.unanswered++;
    const line = JSON.stringify({
      t: 'acquire',
      p: pool.no,
      id: pool.id,
      range: pool.range?.text ?? null,
      options: pool.options,
    });
    return { pool, line };
  }

  private createPool(no: number, spec: PoolSpec): Pool {
    const key = spec.range?.text ?? '';
    let lane = this.lanes.get(key);
    if (!lane) {
      let { lo, hi } = this;
      if (spec.range) {
        if (spec.range.base > lo) lo = spec.range.base;
        if (spec.range.last < hi) hi = spec.range.last;
      }
      const label = spec.range ? `range ${spec.range.text} of subnet ${this.cidr.text}` : `subnet ${this.cidr.text}`;
      lane = new Lane(key, lo, hi, label);
      this.lanes.set(key, lane);
    }
    lane.users++;
    const pool = new Pool(this, no, spec.id, spec.range, spec.options, lane);
    this.pools.set(pool.id, pool);
    this.poolsByNo.set(no, pool);
    if (no >= this.nextNo) this.nextNo = no + 1;
    return pool;
  }

  /** Drops one reference; the last one frees every address the pool still holds. */
  releasePool(pool: Pool): { line: string; dropped: boolean } {
    const line = `{"t":"release","p":${pool.no}}`;
    pool.refs--;
    if (pool.unanswered > pool.refs) pool.unanswered = pool.refs;
    if (pool.refs > 0) return { line, dropped: false };
    for (const [value, holder] of this.taken) {
      if (holder.kind === 'gateway' ? holder.by.has(pool) : holder.pool === pool) this.release(value, pool, true);
    }
    this.pools.delete(pool.id);
    this.poolsByNo.delete(pool.no);
    if (--pool.lane.users === 0) this.lanes.delete(pool.lane.key);
    return { line, dropped: true };
  }

  /** Undoes an acquirePool whose journal write failed. */
  undoAcquire(pool: Pool): void {
    this.answeredAcquire(pool); // no longer waiting for an answer: it is gone
    if (this.pools.get(pool.id) === pool) this.releasePool(pool);
  }

  // ---- addresses ----

  describe(holder: Holder): string {
    if (holder.kind === 'gateway')
      return `it is the gateway of pool ${[...holder.by.keys()].map((p) => p.id).join(', ')}`;
    if (holder.kind === 'aux') return `it is reserved (aux address) by pool ${holder.pool.id}`;
    return `it is assigned to a container of pool ${holder.pool.id}`;
  }

  /** Why `value` may not be assigned at all, or undefined. */
  unusable(value: bigint, pool: Pool): string | undefined {
    const { cidr } = this;
    const allowed =
      this.lo === this.hi
        ? `the only usable address is ${this.text(this.lo)}`
        : `usable addresses are ${this.text(this.lo)} to ${this.text(this.hi)}`;
    if (!contains(cidr, value))
      return `${this.text(value)} is not in subnet ${cidr.text} of pool ${pool.id} (${allowed})`;
    if (value < this.lo) {
      const what = cidr.v6 ? 'subnet-router anycast address' : 'network address';
      return `${this.text(value)} is the ${what} of subnet ${cidr.text} and cannot be assigned (${allowed})`;
    }
    if (value > this.hi)
      return `${this.text(value)} is the broadcast address of subnet ${cidr.text} and cannot be assigned (${allowed})`;
    return undefined;
  }

  /** Takes a given address for `kind`; throws a PluginError when it cannot be. Returns the journal line. */
  take(value: bigint, kind: Exclude<TakeKind, 'dynamic'>, pool: Pool): string {
    const label = kind === 'gateway' ? 'gateway' : 'address';
    const unusable = this.unusable(value, pool);
    if (unusable) throw new PluginError(`${label} ${unusable}`);
    const holder = this.taken.get(value);
    if (holder) {
      if (kind !== 'gateway' || holder.kind !== 'gateway') {
        const advice =
          kind === 'gateway'
            ? 'choose another --gateway'
            : 'choose another address (--ip / --aux-address), or leave --ip out to get a free one';
        throw new PluginError(
          `${label} ${this.text(value)} is already in use in subnet ${this.cidr.text}: ${this.describe(holder)}; ${advice}`,
        );
      }
    }
    this.mark(value, kind, pool);
    this.markUnanswered(value, pool, 1);
    return `{"t":"${KIND_CODE[kind]}","a":"${this.text(value)}","p":${pool.no}}`;
  }

  /** Picks and takes a free address of the pool's lane. Returns it and its journal line. */
  takeDynamic(pool: Pool): { value: bigint; line: string } {
    const lane = pool.lane;
    const moves = lane.searchMoves;
    const value = lane.next(this.taken);
    if (value === undefined) {
      const advice = pool.range
        ? 'widen --ip-range or release addresses'
        : 'use a larger --subnet or release addresses';
      throw new ExhaustedError(
        `no free address left in ${lane.label} (${lane.size} addresses, all in use): the ${pool.range ? 'range' : 'subnet'} is exhausted; ${advice}`,
        // The search moved the cursor past addresses taken otherwise: a replay must know, or it would queue releases differently.
        moves ? `{"t":"exhausted","p":${pool.no}}` : undefined,
      );
    }
    this.mark(value, 'dynamic', pool);
    this.markUnanswered(value, pool, 1);
    return { value, line: `{"t":"d","a":"${this.text(value)}","p":${pool.no}}` };
  }

  private mark(value: bigint, kind: TakeKind, pool: Pool, count = 1): void {
    const holder = this.taken.get(value);
    if (kind === 'gateway') {
      if (holder?.kind === 'gateway') {
        const had = holder.by.get(pool) ?? 0;
        holder.by.set(pool, had + count);
        if (had === 0) pool.allocated++;
        return;
      }
      this.taken.set(value, { kind: 'gateway', by: new Map([[pool, count]]) });
    } else {
      this.taken.set(value, pool.holders[kind]);
    }
    pool.allocated++;
  }

  /**
   * Releases `value` held by `pool`. Returns the journal line, or undefined when the pool did not hold it (a repeated
   * release, or an address of another network): nothing changes then.
   */
  free(value: bigint, pool: Pool): string | undefined {
    if (!this.release(value, pool, false)) return undefined;
    return `{"t":"f","a":"${this.text(value)}","p":${pool.no}}`;
  }

  /** Undoes a take whose journal write failed. */
  undoTake(value: bigint, pool: Pool): void {
    this.answeredTake(value, pool); // no longer waiting for an answer: it is gone
    this.release(value, pool, false);
  }

  private release(value: bigint, pool: Pool, all: boolean): boolean {
    const holder = this.taken.get(value);
    if (!holder) return false;
    const key = unansweredKey(value, pool);
    if (holder.kind === 'gateway') {
      const count = holder.by.get(pool);
      if (count === undefined) return false;
      if (count > 1 && !all) {
        holder.by.set(pool, count - 1);
        const unanswered = this.unanswered.get(key);
        if (unanswered && unanswered.count > count - 1) unanswered.count = count - 1;
        return true;
      }
      this.unanswered.delete(key);
      holder.by.delete(pool);
      pool.allocated--;
      if (holder.by.size > 0) return true;
    } else {
      if (holder.pool !== pool) return false;
      pool.allocated--;
      this.unanswered.delete(key);
    }
    this.taken.delete(value);
    for (const lane of this.lanes.values()) lane.freed(value, this.taken);
    return true;
  }

  private markUnanswered(value: bigint, pool: Pool, count: number): void {
    const key = unansweredKey(value, pool);
    const entry = this.unanswered.get(key);
    if (entry) entry.count += count;
    else this.unanswered.set(key, { value, pool, count });
  }

  // ---- answers ----
  // A change Docker must be told of (a pool reference, an address) is saved, then marked answered just before the
  // answer goes out. At start, what is saved but unanswered is rolled back: Docker never got it (it retries a request
  // cut short with an empty body, which fails), so nothing else would ever release it.

  /** The journal line marking a take answered; `answeredTake` applies it in memory. */
  answeredTakeLine(value: bigint, pool: Pool): string {
    return `{"t":"ok","a":"${this.text(value)}","p":${pool.no}}`;
  }

  answeredTake(value: bigint, pool: Pool): void {
    const key = unansweredKey(value, pool);
    const entry = this.unanswered.get(key);
    if (entry && --entry.count <= 0) this.unanswered.delete(key);
  }

  answeredAcquireLine(pool: Pool): string {
    return `{"t":"ok","p":${pool.no}}`;
  }

  answeredAcquire(pool: Pool): void {
    if (pool.unanswered > 0) pool.unanswered--;
  }

  /** Undoes every change saved but never answered (after a crash); returns what was undone, for the log. */
  rollBackUnanswered(): string[] {
    const undone: string[] = [];
    for (const { value, pool, count } of [...this.unanswered.values()]) {
      for (let i = 0; i < count; i++) this.release(value, pool, false);
      this.unanswered.delete(unansweredKey(value, pool));
      undone.push(`address ${this.text(value)} of pool ${pool.id}`);
    }
    for (const pool of [...this.pools.values()]) {
      const count = pool.unanswered;
      pool.unanswered = 0;
      for (let i = 0; i < count && this.pools.get(pool.id) === pool; i++) this.releasePool(pool);
      if (count > 0) undone.push(`${count} reference(s) to pool ${pool.id}`);
    }
    return undone;
  }

  kindOf(value: bigint): TakeKind | undefined {
    return this.taken.get(value)?.kind;
  }

  // ---- journal ----

  /** Format 2 says how many lines the snapshot has: later lines are changes, whose takes are unanswered until their 'ok'. */
  header(lines: number): string {
    return JSON.stringify({ t: 'subnet', subnet: this.cidr.text, format: 2, lines });
  }

  /** The whole state as journal lines; replaying them on an empty Subnet gives this state back. */
  snapshot(): string[] {
    const lines = [''];
    for (const pool of this.pools.values()) {
      lines.push(
        JSON.stringify({
          t: 'pool',
          p: pool.no,
          id: pool.id,
          range: pool.range?.text ?? null,
          options: pool.options,
          refs: pool.refs,
          ...(pool.unanswered > 0 && { u: pool.unanswered }),
        }),
      );
    }
    for (const [value, holder] of this.taken) {
      const a = this.text(value);
      const u = (pool: Pool) => {
        const count = this.unanswered.get(unansweredKey(value, pool))?.count;
        return count ? `,"u":${count}` : '';
      };
      if (holder.kind === 'gateway') {
        for (const [pool, count] of holder.by) lines.push(`{"t":"g","a":"${a}","p":${pool.no},"c":${count}${u(pool)}}`);
      } else {
        lines.push(`{"t":"${KIND_CODE[holder.kind]}","a":"${a}","p":${holder.pool.no}${u(holder.pool)}}`);
      }
    }
    // Lanes after the addresses: replaying the address lines moves cursors, the lane lines then set them.
    const base = this.cidr.base;
    for (const lane of this.lanes.values()) {
      lane.compactFifo(this.taken);
      lines.push(
        JSON.stringify({
          t: 'lane',
          range: lane.key || null,
          next: (lane.cursor - base).toString(),
          fifo: lane.fifo.values().map((v) => (v - base).toString()),
          sweep: lane.sweepNeeded || lane.sweep !== undefined,
        }),
      );
    }
    lines[0] = this.header(lines.length);
    return lines;
  }

  private poolOf(record: JournalRecord): Pool {
    const no = int(record, 'p');
    const pool = this.poolsByNo.get(no);
    if (!pool) throw new Error(`pool number ${no} is not defined before this line`);
    return pool;
  }

  private address(record: JournalRecord): bigint {
    const text = str(record, 'a');
    const ip = parseIp(text);
    if (!ip || ip.v6 !== this.v6 || !contains(this.cidr, ip.value))
      throw new Error(`address '${text}' is not in subnet ${this.cidr.text}`);
    return ip.value;
  }

  private spec(record: JournalRecord): PoolSpec {
    const range = record.range;
    const options = record.options;
    if (
      options === null ||
      typeof options !== 'object' ||
      Array.isArray(options) ||
      Object.values(options).some((v) => typeof v !== 'string')
    ) {
      throw new Error(`field 'options' is not an object of strings`);
    }
    const spec: PoolSpec = { id: str(record, 'id'), options: options as Record<string, string> };
    if (range !== null) {
      if (typeof range !== 'string') throw new Error(`field 'range' is not a string`);
      const parsed = parseCidr(range);
      if (
        !parsed.ok ||
        parsed.cidr.v6 !== this.v6 ||
        parsed.cidr.base < this.cidr.base ||
        parsed.cidr.last > this.cidr.last
      ) {
        throw new Error(`range '${range}' is not a prefix of subnet ${this.cidr.text}`);
      }
      spec.range = parsed.cidr;
    }
    return spec;
  }

  /** Applies one journal record (a snapshot line or a change). Throws an Error describing a record that does not fit. */
  apply(record: JournalRecord): void {
    const t = record.t;
    const inSnapshot = this.replayed++ < this.snapshotLines;
    switch (t) {
      case 'subnet':
        if (record.subnet !== this.cidr.text) throw new Error(`header names subnet '${String(record.subnet)}'`);
        // Format 1 (before answers were marked) holds nothing unanswered: every line counts as a snapshot line.
        this.snapshotLines = record.format === 2 ? int(record, 'lines') : Infinity;
        return;
      case 'pool':
      case 'acquire': {
        const no = int(record, 'p');
        const existing = this.poolsByNo.get(no);
        if (existing) {
          if (t === 'pool') throw new Error(`pool number ${no} is defined twice`);
          existing.refs++;
          existing.unanswered++;
          return;
        }
        const spec = this.spec(record);
        if (this.pools.has(spec.id)) throw new Error(`pool ${spec.id} is defined twice`);
        const pool = this.createPool(no, spec);
        pool.refs = t === 'pool' ? int(record, 'refs') : 1;
        if (pool.refs < 1) throw new Error(`pool ${spec.id} has no references`);
        pool.unanswered = t === 'pool' ? (record.u === undefined ? 0 : Math.min(int(record, 'u'), pool.refs)) : 1;
        return;
      }
      case 'ok': {
        const pool = this.poolOf(record);
        if (record.a === undefined) this.answeredAcquire(pool);
        else this.answeredTake(this.address(record), pool);
        return;
      }
      case 'release':
        this.releasePool(this.poolOf(record));
        return;
      case 'lane': {
        const key = record.range === null ? '' : str(record, 'range');
        const lane = this.lanes.get(key);
        if (!lane) throw new Error(`lane '${key}' belongs to no pool`);
        const base = this.cidr.base;
        const next = base + offset(record.next, 'next');
        lane.cursor = next < lane.lo ? lane.lo : next > lane.hi + 1n ? lane.hi + 1n : next;
        if (!Array.isArray(record.fifo)) throw new Error(`field 'fifo' is not an array`);
        lane.fifo.clear();
        lane.sweep = undefined;
        for (const item of record.fifo) {
          const value = base + offset(item, 'fifo');
          if (value >= lane.lo && value < lane.cursor) lane.fifo.push(value);
        }
        lane.sweepNeeded = record.sweep === true;
        return;
      }
      case 'f':
        this.release(this.address(record), this.poolOf(record), false);
        return;
      case 'exhausted':
        this.poolOf(record).lane.replayExhausted();
        return;
      default: {
        const kind = typeof t === 'string' ? CODE_KIND[t] : undefined;
        if (!kind) throw new Error(`unknown record type '${String(t)}'`);
        const value = this.address(record);
        const pool = this.poolOf(record);
        const holder = this.taken.get(value);
        if (holder && !(kind === 'gateway' && holder.kind === 'gateway'))
          throw new Error(`address ${this.text(value)} is taken twice`);
        if (kind === 'dynamic') pool.lane.replayNext(value, this.taken);
        const count = kind === 'gateway' && record.c !== undefined ? int(record, 'c') : 1;
        if (count < 1) throw new Error(`gateway count ${count}`);
        this.mark(value, kind, pool, count);
        // A change line is unanswered until its 'ok' line; a snapshot line says how many of it are ("u").
        const unanswered = !inSnapshot ? 1 : record.u === undefined ? 0 : int(record, 'u');
        if (unanswered > 0) this.markUnanswered(value, pool, Math.min(unanswered, count));
      }
    }
  }
}
