// A local view of one subnet's keys in etcd, kept current by a watch: where candidates come from, so a take needs
// no read, and a full range is known without scanning etcd. Only a hint: etcd's transactions decide; a stale view
// costs a lost race, never a duplicate.
import { type Cidr, formatIp } from '../ip/address';
import type { Occupancy } from './candidates';
import type { KvEntry } from './etcd';
import { type Claim, type ClaimKind, addressOfKey, addressesPrefix, decodeClaims } from './keys';

export interface Held {
  /** Undefined when the value cannot be read: held by someone unknown. */
  claims: Claim[] | undefined;
  value: string;
  modRevision: bigint;
}

export interface OwnerCounts {
  container: number;
  gateway: number;
  aux: number;
  /** Addresses devices on the LAN answered for when this instance probed them (absent when none). */
  device?: number;
}

export interface SubnetSummary {
  subnet: string;
  /** Addresses in [lo, hi] and how many are held or free. */
  size: bigint;
  used: number;
  free: bigint;
  /** Per instance: its claims by kind. Unreadable values count under "?". */
  owners: Record<string, OwnerCounts>;
  /** Addresses devices on the LAN answered for, in order, each with its MAC and the instance that probed it. */
  devices?: { address: string; mac: string; owner: string }[];
}

/** The addresses of a range held across the cluster, and those of them this instance holds. */
export interface RangeHolding {
  held: number;
  mine: number;
}

/** Whether `instance` has a claim on the address. */
function holds(held: Held, instance: string): boolean {
  return held.claims?.some((claim) => claim.owner === instance) ?? false;
}

/** Tombstones kept beyond this are pruned once the watch has passed them. */
const TOMBSTONE_LIMIT = 1024;
const NONE: ReadonlySet<bigint> = new Set();

export class SubnetView {
  readonly prefix: string;
  readonly held = new Map<bigint, Held>();
  /** Deletes this view knows of, by revision: an older event for the address must not bring it back. */
  private readonly tombstones = new Map<bigint, bigint>();
  private seen = 0n;
  /** Claims per instance, kept as keys come and go, so the set of owners costs nothing to read. */
  private readonly claimsOf = new Map<string, number>();
  /** Bumped whenever an instance gains its first claim or loses its last: walks split the range anew. */
  ownersVersion = 0;
  /** When the view was last read whole from etcd (load, refresh), in ms since the epoch. */
  readAt = 0;
  /** Ranges whose fill was asked for, kept counted as keys come and go, by instance and bounds. */
  private readonly fills = new Map<string, { lo: bigint; hi: bigint; instance: string; fill: RangeHolding }>();

  constructor(
    readonly subnet: Cidr,
    keyPrefix: string,
  ) {
    this.prefix = addressesPrefix(keyPrefix, subnet);
  }

  /** Replaces the view with a full read of the range. */
  load(entries: KvEntry[], revision: bigint): void {
    for (const held of this.held.values()) this.count(held, -1);
    this.held.clear();
    this.fills.clear();
    this.tombstones.clear();
    this.seen = revision;
    for (const entry of entries) this.put(entry);
    this.readAt = Date.now();
  }

  /**
   * Brings the view up to a full read of the range at `revision` (the watch keeps running): what the read holds is
   * applied, what it no longer holds is deleted as of the read. Revisions decide, so nothing newer is undone.
   */
  refresh(entries: KvEntry[], revision: bigint): void {
    const read = new Set<bigint>();
    for (const entry of entries) {
      const address = addressOfKey(this.prefix, this.subnet, entry.key);
      if (address !== undefined) read.add(address);
      this.put(entry);
    }
    for (const [address, held] of [...this.held]) {
      if (!read.has(address) && held.modRevision <= revision)
        this.delete(`${this.prefix}${formatIp(this.subnet.v6, address)}`, revision);
    }
    this.readAt = Date.now();
  }

  private known(address: bigint): bigint | undefined {
    return this.held.get(address)?.modRevision ?? this.tombstones.get(address);
  }

  /** Applies a key's value at its revision (a watch event, a read, or this instance's own write). */
  put(entry: KvEntry): bigint | undefined {
    const address = addressOfKey(this.prefix, this.subnet, entry.key);
    if (address === undefined) return undefined;
    const known = this.known(address);
    if (known !== undefined && entry.modRevision <= known) return undefined;
    this.tombstones.delete(address);
    const before = this.held.get(address);
    const held = { claims: decodeClaims(entry.value), value: entry.value, modRevision: entry.modRevision };
    this.held.set(address, held);
    // New claims first: an owner in both never drops to none on the way.
    this.count(held, 1);
    if (before) this.count(before, -1);
    this.refill(address, before, held);
    this.progress(entry.modRevision);
    return address;
  }

  /** Applies a delete of `key` at `revision`. */
  delete(key: string, revision: bigint): void {
    const address = addressOfKey(this.prefix, this.subnet, key);
    if (address === undefined) return;
    const known = this.known(address);
    if (known !== undefined && revision <= known) return;
    const before = this.held.get(address);
    if (before) this.count(before, -1);
    this.refill(address, before, undefined);
    this.held.delete(address);
    this.tombstones.set(address, revision);
    this.progress(revision);
  }

  private progress(revision: bigint): void {
    if (revision > this.seen) this.seen = revision;
    if (this.tombstones.size <= TOMBSTONE_LIMIT) return;
    for (const [address, at] of this.tombstones) if (at <= this.seen - 1n) this.tombstones.delete(address);
  }

  /** The address and claim with token `at`, if the view has it. */
  findToken(at: string): { address: bigint; held: Held; claim: Claim } | undefined {
    for (const [address, held] of this.held) {
      const claim = held.claims?.find((c) => c.at === at);
      if (claim) return { address, held, claim };
    }
    return undefined;
  }

  private count(held: Held, by: 1 | -1): void {
    for (const claim of held.claims ?? []) {
      const claims = (this.claimsOf.get(claim.owner) ?? 0) + by;
      if (claims === 0) this.claimsOf.delete(claim.owner);
      else this.claimsOf.set(claim.owner, claims);
      if (claims === 0 || (claims === 1 && by === 1)) this.ownersVersion++;
    }
  }

  /** The instances with a claim in the subnet. */
  owners(): Set<string> {
    return new Set(this.claimsOf.keys());
  }

  /**
   * What candidate choice sees: held addresses, those a take of this host is trying right now, and those it must not
   * take yet (`withheld`: see ReleaseQueue.namedAddresses).
   */
  occupancy(busy: ReadonlySet<bigint>, withheld: ReadonlySet<bigint> = NONE): Occupancy {
    const taken = (value: bigint) => this.held.has(value) || busy.has(value) || withheld.has(value);
    return {
      taken,
      count: () => {
        let extra = 0;
        for (const value of withheld) if (!this.held.has(value) && !busy.has(value)) extra++;
        return this.held.size + busy.size + extra;
      },
      sorted: (lo, hi) => {
        const all = new Set<bigint>();
        for (const value of this.held.keys()) if (value >= lo && value <= hi) all.add(value);
        for (const value of busy) if (value >= lo && value <= hi) all.add(value);
        for (const value of withheld) if (value >= lo && value <= hi) all.add(value);
        return [...all].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
      },
    };
  }

  /** Every held address of [lo, hi] in order, with its claims (undefined: unreadable), for a detailed status. */
  holdings(lo: bigint, hi: bigint): { address: string; claims: Claim[] | undefined }[] {
    return [...this.held]
      .filter(([address]) => address >= lo && address <= hi)
      .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
      .map(([address, held]) => ({ address: formatIp(this.subnet.v6, address), claims: held.claims }));
  }

  /**
   * How many addresses of [lo, hi] are held, and on how many of them `instance` has a claim: a range's fill. Counted
   * once, then kept as the view changes, so asking again (each scrape) costs nothing.
   */
  fill(lo: bigint, hi: bigint, instance: string): RangeHolding {
    const key = `${instance} ${lo}-${hi}`;
    let tracked = this.fills.get(key);
    if (!tracked) {
      const fill = { held: 0, mine: 0 };
      for (const [address, entry] of this.held) {
        if (address < lo || address > hi) continue;
        fill.held++;
        if (holds(entry, instance)) fill.mine++;
      }
      this.fills.set(key, (tracked = { lo, hi, instance, fill }));
    }
    return { ...tracked.fill };
  }

  /** Keeps the fills asked for counted: `address` was held as `before` and now is as `after` (undefined: free). */
  private refill(address: bigint, before: Held | undefined, after: Held | undefined): void {
    for (const { lo, hi, instance, fill } of this.fills.values()) {
      if (address < lo || address > hi) continue;
      fill.held += (after ? 1 : 0) - (before ? 1 : 0);
      fill.mine += (after && holds(after, instance) ? 1 : 0) - (before && holds(before, instance) ? 1 : 0);
    }
  }

  /** Who holds what in [lo, hi]. */
  summary(lo: bigint, hi: bigint): SubnetSummary {
    const owners: Record<string, OwnerCounts> = {};
    const devices: [bigint, Claim][] = [];
    let used = 0;
    for (const [address, held] of this.held) {
      if (address < lo || address > hi) continue;
      used++;
      for (const claim of held.claims ?? [{ owner: '?', kind: 'container' as ClaimKind }]) {
        owners[claim.owner] ??= { container: 0, gateway: 0, aux: 0 };
        const counts = owners[claim.owner];
        counts[claim.kind] = (counts[claim.kind] ?? 0) + 1;
        if (claim.kind === 'device') devices.push([address, claim as Claim]);
      }
    }
    const size = hi - lo + 1n;
    const summary: SubnetSummary = { subnet: this.subnet.text, size, used, free: size - BigInt(used), owners };
    if (devices.length === 0) return summary;
    summary.devices = devices
      .sort(([x], [y]) => (x < y ? -1 : 1))
      .map(([address, claim]) => ({ address: formatIp(this.subnet.v6, address), mac: claim.mac!, owner: claim.owner }));
    return summary;
  }
}
