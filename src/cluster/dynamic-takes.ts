// The cluster table's dynamic takes: a free address of a range, picked from the local view (candidates.ts) and taken
// by one etcd transaction per candidate until one is won. How many a host has in flight at once is bounded per
// range, since picks made together cannot see each other's losses.
import { PluginError } from '../errors';
import { type Cidr, formatIp } from '../ip/address';
import { Picker } from './candidates';
import type { ClusterKv, TxnResult } from './etcd';
import { Gate } from './gate';
import { type Claim, addressKey, encodeClaims, newToken } from './keys';
import type { SubnetView } from './view';

/** No address of the range is free in the view: what the table checks against etcd before it says so. */
export class RangeFullError extends PluginError {}

/** The addresses a dynamic take may pick from. */
export interface Range {
  subnet: Cidr;
  lo: bigint;
  hi: bigint;
  /**
   * Asks the LAN about a candidate before it is taken: the MAC of a device that answered for it (it is then claimed
   * as that device's, and the walk goes on), or undefined when it is free. Rejects when the LAN cannot be asked.
   */
  vet?: (address: bigint) => Promise<string | undefined>;
}

/** This host's addresses a dynamic take must pass over: those its takes are trying, and those withheld. */
export interface Own {
  busy: Set<bigint>;
  withheld: ReadonlySet<bigint>;
}

/** Candidates tried before a take gives up: each loss means another host took that address meanwhile. */
const MAX_ATTEMPTS = 32;
/** Candidates a device on the LAN answered for, claimed as its and passed over, before a take gives up. */
const MAX_DEVICES = 64;
/**
 * Dynamic takes of one range in flight at once on this host (away from its own slot: one). Picks made together
 * cannot see each other's losses: a burst of hundreds would all land where another host works before the first loss
 * is known. Measured on a /22 with 10 hosts of uneven demand: 16 → 1.13-1.19 etcd calls per allocation, 8 →
 * 1.05-1.12, 4 → 1.01-1.03, at similar allocations/s (the 3 members' disk syncs bound them, not this). With 20 hosts
 * asking 100 each of the /22's 1,022 at once (most of them overflowing), one at a time away: 1.13-1.16, was 1.20-1.22.
 */
const IN_FLIGHT = 4;
/** How old a view may be before a take that finds its range full reads it again from etcd. */
const REFRESH_MS = 1000;

export class DynamicTakes {
  private readonly picker = new Picker();
  /** Per range: the takes in flight, and those of them away from this host's own slot. */
  private readonly gates = new Map<string, { all: Gate; away: Gate }>();

  constructor(
    private readonly kv: ClusterKv,
    private readonly instance: string,
  ) {}

  /**
   * A free address of the range. When the view shows none, it may be behind: a take whose outcome an outage hid may
   * hold one (its rollback queued), a release Docker asked for meanwhile may wait in the queue, the watch may lag.
   * Those are settled (`settle`: this host's queued releases of the subnet) and the view read again from etcd before
   * the range is called full.
   */
  async takeFresh(
    view: SubnetView,
    range: Range,
    claim: Claim,
    own: Own,
    settle: () => Promise<void>,
  ): Promise<bigint> {
    try {
      return await this.take(view, range, claim, own);
    } catch (err) {
      if (!(err instanceof RangeFullError)) throw err;
      await settle();
      // One read a second at most: a burst of requests on a full range must not read it for each.
      if (Date.now() - view.readAt > REFRESH_MS) {
        const { entries, revision } = await this.kv.range(view.prefix);
        view.refresh(entries, revision);
      }
      return this.take(view, range, claim, own);
    }
  }

  /**
   * Takes a free address of `range` for `claim`; `own.busy` holds what this host's takes are trying in the subnet,
   * `own.withheld` what they must not take yet.
   */
  async take(view: SubnetView, range: Range, claim: Claim, own: Own): Promise<bigint> {
    const lane = `${view.subnet.text} ${range.lo}-${range.hi}`;
    let gates = this.gates.get(lane);
    if (!gates) this.gates.set(lane, (gates = { all: new Gate(IN_FLIGHT), away: new Gate(1) }));
    await gates.all.enter();
    // Away from its own slot, a host meets other hosts' takes: there it picks one at a time, each pick knowing how
    // the last fared.
    const away = this.picker.away(lane) ? gates.away : undefined;
    await away?.enter();
    try {
      return await this.walk(view, range, claim, lane, own);
    } finally {
      away?.leave();
      gates.all.leave();
    }
  }

  private async walk(view: SubnetView, range: Range, claim: Claim, lane: string, own: Own): Promise<bigint> {
    const { busy, withheld } = own;
    const value = encodeClaims([claim]);
    let devices = 0;
    for (let attempt = 0; attempt < MAX_ATTEMPTS;) {
      const owners = { version: view.ownersVersion, ids: () => view.owners() };
      const occupancy = view.occupancy(busy, withheld);
      const candidate = this.picker.pick(lane, range.lo, range.hi, owners, this.instance, occupancy);
      if (candidate === undefined) throw this.exhausted(view, range);
      const key = addressKey(this.kv.prefix, view.subnet, candidate);
      busy.add(candidate);
      let result: TxnResult;
      try {
        const device = await range.vet?.(candidate);
        if (device !== undefined) {
          if (++devices > MAX_DEVICES) throw this.crowded(range);
          await this.claimForDevice(view, key, candidate, { ...claim, kind: 'device', at: newToken(), mac: device });
          continue;
        }
        attempt++;
        result = await this.kv.create(key, value);
      } finally {
        busy.delete(candidate);
      }
      if (settleWrite(view, key, candidate, claim, result, value)) return candidate;
      // Another host is taking addresses here right now: go somewhere else rather than chase it.
      this.picker.lost(lane, range.lo, range.hi, view.occupancy(busy, withheld));
    }
    throw new PluginError(
      `could not take an address in ${describeRange(range)}: other hosts took each of ${MAX_ATTEMPTS} candidates first; retry (the range is nearly full or very busy)`,
    );
  }

  /** Claims `address` as the device's, so that every host skips it; losing the race to another host is as good. */
  private async claimForDevice(view: SubnetView, key: string, address: bigint, claim: Claim): Promise<void> {
    const value = encodeClaims([claim]);
    settleWrite(view, key, address, claim, await this.kv.create(key, value), value);
  }

  /** The candidates the next takes of `range` would try, in order (see Picker.upcoming). */
  upcoming(view: SubnetView, range: Range, own: Own, n: number): bigint[] {
    const lane = `${view.subnet.text} ${range.lo}-${range.hi}`;
    const owners = { version: view.ownersVersion, ids: () => view.owners() };
    const occupancy = view.occupancy(own.busy, own.withheld);
    return this.picker.upcoming(lane, range.lo, range.hi, owners, this.instance, occupancy, n);
  }

  private crowded(range: Range): PluginError {
    return new PluginError(
      `could not take an address in ${describeRange(range)}: devices on the LAN answered for each of the ${MAX_DEVICES} candidates tried (each is now kept from containers until it is free); retry, or give an --ip-range the LAN's devices do not use`,
    );
  }

  private exhausted(view: SubnetView, range: Range): RangeFullError {
    const summary = view.summary(range.lo, range.hi);
    const mine = summary.owners[this.instance]?.container ?? 0;
    return new RangeFullError(
      `no free address in ${describeRange(range)} across the cluster: all ${summary.size} are held (${mine} by this host, ${Object.keys(summary.owners).length} hosts in all); release some, or give a wider --ip-range`,
    );
  }
}

/**
 * Applies to the view the answer to a transaction that would write `value` (holding `claim`) at `key`; true when
 * the address now holds the claim, also when an earlier attempt of the same call had written it.
 */
export function settleWrite(
  view: SubnetView,
  key: string,
  address: bigint,
  claim: Claim,
  result: TxnResult,
  value: string,
): boolean {
  if (result.ok) {
    view.put({ key, value, modRevision: result.revision });
    return true;
  }
  if (result.current) view.put(result.current);
  else view.delete(key, result.revision);
  return view.held.get(address)?.claims?.some((c) => c.at === claim.at) === true;
}

function describeRange({ subnet, lo, hi }: Range): string {
  return `subnet ${subnet.text} (addresses ${formatIp(subnet.v6, lo)} to ${formatIp(subnet.v6, hi)})`;
}
