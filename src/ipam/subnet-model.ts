// The in-memory model of one subnet: its pools, its dynamic ranges and every address in use, and which of its
// changes Docker has not been answered yet. No I/O here: each change returns the journal line that records it;
// subnet.ts adds the snapshot and the replay of those lines.
import { PluginError } from '../errors';
import { type Cidr, formatIp, unusableReason, usableBounds } from '../ip/address';
import { DynamicRange, ExhaustedError, rangeBounds } from './dynamic-range';
import { journalLine, type PoolSpec, type PoolPrefixLoss, type TakeKind } from './journal-records';

/**
 * Who holds an address. Gateways may be shared by several pools (networks on one LAN share its router); nothing else
 * is shared. A device holding is an address a device on the LAN answered for when a pool's probe asked: no container
 * gets it until a later probe finds it free (src/ipam/device-holdings.ts).
 */
export type Holder =
  { kind: 'aux' | 'static' | 'dynamic'; pool: Pool } | { kind: 'gateway'; by: Map<Pool, number> } | DeviceHolder;

export interface DeviceHolder {
  kind: 'device';
  pool: Pool;
  mac: string;
  /** Epoch ms: when a probe first found it. */
  since: number;
}

/** An address pool of a subnet: one RequestPool of Docker's, or several identical ones. */
export class Pool {
  refs = 0;
  /** References whose RequestPool was saved but not yet answered: a crash now means Docker never got them. */
  unanswered = 0;
  /** Addresses this pool holds (a gateway counts once however many times it was requested). */
  allocated = 0;
  /** A pool of --ipam-opt ipv6=slaac whose prefix the router no longer offers: how, and since when. */
  prefixLost: PoolPrefixLoss | undefined;
  readonly holders: { aux: Holder; static: Holder; dynamic: Holder };

  constructor(
    readonly subnet: SubnetModel,
    /** The pool's number in its subnet's journal, shorter than its id. */
    readonly journalNumber: number,
    readonly id: string,
    readonly range: Cidr | undefined,
    readonly options: Record<string, string>,
    readonly lane: DynamicRange,
  ) {
    this.holders = {
      aux: { kind: 'aux', pool: this },
      static: { kind: 'static', pool: this },
      dynamic: { kind: 'dynamic', pool: this },
    };
  }
}

function sameOptions(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return (
    keys.length === Object.keys(b).length &&
    keys.every((k) => Object.prototype.hasOwnProperty.call(b, k) && a[k] === b[k])
  );
}

export function unansweredKey(value: bigint, pool: Pool): string {
  return `${pool.journalNumber}/${value}`;
}

export class SubnetModel {
  readonly lo: bigint;
  readonly hi: bigint;
  readonly pools = new Map<string, Pool>();
  protected readonly poolsByNumber = new Map<number, Pool>();
  readonly lanes = new Map<string, DynamicRange>();
  readonly taken = new Map<bigint, Holder>();
  /** The addresses of `taken` held by devices on the LAN, so that re-probing them needs no scan. */
  readonly devices = new Set<bigint>();
  /** Takes saved but not yet answered, keyed by pool number and address: a crash now means Docker never got them. */
  protected readonly unanswered = new Map<string, { value: bigint; pool: Pool; count: number }>();
  /**
   * Addresses whose endpoint the network driver deleted, and by when (ms since the epoch) Docker's ReleaseAddress is
   * due; a release of the address forgets it. See IpamService.releaseDue.
   */
  readonly dues = new Map<bigint, number>();
  private nextNumber = 1;

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
   * The size of a snapshot of this subnet, in lines (a queued released address counts as one, as does a lost prefix: they
   * are written too).
   * Compaction is due when the journal is much longer, so its cost is spread over the lines appended since the last.
   */
  get liveLines(): number {
    let extra = 0;
    for (const lane of this.lanes.values()) extra += lane.fifo.length;
    for (const pool of this.pools.values()) if (pool.prefixLost) extra++;
    return 1 + this.pools.size + this.lanes.size + this.taken.size + extra + this.dues.size;
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
      pool = this.createPool(this.nextNumber, spec);
    }
    pool.refs++;
    pool.unanswered++;
    const line = journalLine.acquire(pool.journalNumber, pool.id, pool.range, pool.options);
    return { pool, line };
  }

  protected createPool(no: number, spec: PoolSpec): Pool {
    const key = spec.range?.text ?? '';
    let lane = this.lanes.get(key);
    if (!lane) {
      const { lo, hi } = rangeBounds(this.cidr, spec.range);
      const label = spec.range ? `range ${spec.range.text} of subnet ${this.cidr.text}` : `subnet ${this.cidr.text}`;
      lane = new DynamicRange(key, lo, hi, label);
      for (const value of this.taken.keys()) lane.took(value); // a new range over addresses in use: once per range
      this.lanes.set(key, lane);
    }
    lane.users++;
    const pool = new Pool(this, no, spec.id, spec.range, spec.options, lane);
    this.pools.set(pool.id, pool);
    this.poolsByNumber.set(no, pool);
    if (no >= this.nextNumber) this.nextNumber = no + 1;
    return pool;
  }

  /** Drops one reference; the last one frees every address the pool still holds. */
  releasePool(pool: Pool): { line: string; dropped: boolean } {
    const released = journalLine.release(pool.journalNumber);
    pool.refs--;
    if (pool.unanswered > pool.refs) pool.unanswered = pool.refs;
    if (pool.refs > 0) return { line: released, dropped: false };
    for (const [value, holder] of this.taken) {
      if (holder.kind === 'gateway' ? holder.by.has(pool) : holder.pool === pool) this.release(value, pool, true);
    }
    this.pools.delete(pool.id);
    this.poolsByNumber.delete(pool.journalNumber);
    if (--pool.lane.users === 0) this.lanes.delete(pool.lane.key);
    return { line: released, dropped: true };
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
    if (holder.kind === 'device')
      return `a device on the LAN with MAC ${holder.mac} answered for it (probed by pool ${holder.pool.id})`;
    return `it is assigned to a container of pool ${holder.pool.id}`;
  }

  /** Takes a given address for `kind`; throws a PluginError when it cannot be. Returns the journal line. */
  take(value: bigint, kind: Exclude<TakeKind, 'dynamic'>, pool: Pool): string {
    const label = kind === 'gateway' ? 'gateway' : 'address';
    const unusable = unusableReason(this.cidr, value, pool.id);
    if (unusable) throw new PluginError(`${label} ${unusable}`);
    let holder = this.taken.get(value);
    // A name given by the user wins over a device holding: --aux-address exists to keep such devices' addresses, the
    // gateway is the LAN's router, and a container's --ip is checked against the LAN at CreateEndpoint.
    const freed = holder?.kind === 'device' ? this.free(value, holder.pool) : undefined;
    if (freed) holder = undefined;
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
    const line = journalLine.take(kind, this.text(value), pool.journalNumber);
    return freed ? `${freed}\n${line}` : line;
  }

  /** Keeps a free `value` from containers: a device with `mac` answered for it. Returns the journal line. */
  holdForDevice(value: bigint, pool: Pool, mac: string, since: number): string {
    if (this.taken.has(value)) throw new Error(`address ${this.text(value)} is taken: no device holding over it`);
    this.taken.set(value, { kind: 'device', pool, mac, since });
    this.devices.add(value);
    return journalLine.device(this.text(value), pool.journalNumber, mac, since);
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
        moves ? journalLine.exhausted(pool.journalNumber) : undefined,
      );
    }
    this.mark(value, 'dynamic', pool);
    this.markUnanswered(value, pool, 1);
    return { value, line: journalLine.take('dynamic', this.text(value), pool.journalNumber) };
  }

  protected mark(value: bigint, kind: TakeKind, pool: Pool, count = 1): void {
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
    for (const lane of this.lanes.values()) lane.took(value);
    pool.allocated++;
  }

  /**
   * Releases `value` held by `pool`. Returns the journal line, or undefined when the pool did not hold it (a repeated
   * release, or an address of another network): nothing changes then.
   */
  free(value: bigint, pool: Pool): string | undefined {
    if (!this.release(value, pool, false)) return undefined;
    return journalLine.freed(this.text(value), pool.journalNumber);
  }

  /**
   * Notes that the endpoint holding `value` is gone, and that Docker's ReleaseAddress for it is due by `by`. Returns
   * the journal line, or undefined when there is nothing to note: the address is free, a gateway (never an
   * endpoint's), or noted already.
   */
  markDue(value: bigint, by: number): { line: string; pool: Pool } | undefined {
    const holder = this.taken.get(value);
    if (!holder || !isEndpointHolder(holder) || this.dues.has(value)) return undefined;
    this.dues.set(value, by);
    return { line: journalLine.due(this.text(value), holder.pool.journalNumber, by), pool: holder.pool };
  }

  /** Undoes a take whose journal write failed. */
  undoTake(value: bigint, pool: Pool): void {
    this.answeredTake(value, pool); // no longer waiting for an answer: it is gone
    this.release(value, pool, false);
  }

  protected release(value: bigint, pool: Pool, all: boolean): boolean {
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
      if (holder.kind === 'device') this.devices.delete(value);
      else pool.allocated--;
      this.unanswered.delete(key);
    }
    this.taken.delete(value);
    this.dues.delete(value);
    for (const lane of this.lanes.values()) lane.freed(value, this.taken);
    return true;
  }

  protected markUnanswered(value: bigint, pool: Pool, count: number): void {
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
    return journalLine.answeredTake(this.text(value), pool.journalNumber);
  }

  answeredTake(value: bigint, pool: Pool): void {
    const key = unansweredKey(value, pool);
    const entry = this.unanswered.get(key);
    if (entry && --entry.count <= 0) this.unanswered.delete(key);
  }

  answeredAcquireLine(pool: Pool): string {
    return journalLine.answeredAcquire(pool.journalNumber);
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

  kindOf(value: bigint): Holder['kind'] | undefined {
    return this.taken.get(value)?.kind;
  }
}

/** Whether `holder` holds its address for an endpoint (of `pool`, when given): not a gateway, not a device's. */
export function isEndpointHolder(
  holder: Holder | undefined,
  pool?: Pool,
): holder is Exclude<Holder, { kind: 'gateway' } | DeviceHolder> {
  if (!holder || holder.kind === 'gateway' || holder.kind === 'device') return false;
  return pool === undefined || holder.pool === pool;
}
