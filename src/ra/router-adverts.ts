// What the LAN's IPv6 routers say on each parent the plugin watches: router advertisements heard from the host side
// on the shared packet socket, a router solicitation sent when a parent is first watched (a network created, the
// plugin started) so the answer comes at once rather than at the router's next periodic advert. Per parent: the
// router's link-local address, its M and O flags, and the prefixes with their lifetimes. A prefix the router
// withdraws (valid lifetime 0), deprecates (preferred lifetime 0) or lets expire is reported to the listeners, as is
// one first heard valid, or valid again.
import type { Logger } from 'pino';
import { formatIp } from '../ip/address';
import { ETHERTYPE_IPV6, MalformedFrame } from '../kernel/link-frames';
import { ALL_NODES_MAC } from '../kernel/nd-frames';
import type { ReceivedFrame } from '../kernel/packet-socket';
import type { PacketTap, TapHandle } from '../kernel/packet-tap';
import {
  type AdvertisedPrefix,
  ICMPV6_ROUTER_ADVERTISEMENT,
  INFINITE_LIFETIME,
  buildRouterSolicitation,
  parseRouterAdvert,
} from '../kernel/ra-frames';
import { SLAAC_PREFIX_LENGTH } from './slaac';

export type PrefixCondition = 'valid' | 'deprecated' | 'withdrawn' | 'expired';

export interface KnownPrefix {
  /** "2001:db8:1::/64" */
  text: string;
  prefix: bigint;
  length: number;
  autonomous: boolean;
  /** L: addresses in it are on the link (their subnet, for a DHCPv6 address). */
  onLink: boolean;
  /** Epoch ms; undefined: for ever. */
  validUntil?: number;
  preferredUntil?: number;
  condition: PrefixCondition;
}

export interface ParentRouters {
  parent: string;
  ifindex: number;
  /** The advertising router's link-local address and MAC, once one has spoken. */
  router?: string;
  routerMac?: string;
  managed: boolean;
  other: boolean;
  heardAt?: number;
  prefixes: Map<string, KnownPrefix>;
}

export interface PrefixLoss {
  parent: string;
  prefix: string;
  condition: Exclude<PrefixCondition, 'valid'>;
}

export interface PrefixBack {
  parent: string;
  prefix: string;
}

/** No router advertised a prefix for SLAAC on the parent in the time given. */
export class NoRouterAnswer extends Error {}

interface Watched {
  state: ParentRouters;
  mac: string;
  networks: number;
  waiters: Set<() => void>;
  /** When the last solicitation went out: adverts that bring no usable prefix must not set off another at once. */
  solicitedAt: number;
}

/** How often lifetimes are checked for expiry. */
const SWEEP_MS = 5000;
/**
 * At most one solicitation a second per parent while a container waits for a prefix (RFC 4861 §6.3.7 has a host send
 * 3, 4 s apart; a container start cannot wait that long). Each answer to all nodes wakes the waiters: without this
 * bound, a router advertising only deprecated prefixes would be solicited as fast as it answers.
 */
const SOLICIT_INTERVAL_MS = 1000;

export class RouterAdverts {
  private handle: TapHandle | undefined;
  private readonly parents = new Map<string, Watched>();
  private readonly byIndex = new Map<number, Watched>();
  private readonly lossListeners = new Set<(loss: PrefixLoss) => void>();
  private readonly backListeners = new Set<(back: PrefixBack) => void>();
  private sweeper: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(
    private readonly tap: PacketTap,
    private readonly log: Logger,
    now?: () => number,
  ) {
    this.now = now ?? Date.now;
  }

  onPrefixLoss(listener: (loss: PrefixLoss) => void): void {
    this.lossListeners.add(listener);
  }

  /** Tells `listener` when a prefix is first heard valid on a watched parent, and when one lost is valid again. */
  onPrefixBack(listener: (back: PrefixBack) => void): void {
    this.backListeners.add(listener);
  }

  /** A network on `parent` wants its routers' word: listen there, and solicit an advert now if it is new. */
  watch(parent: string, ifindex: number, mac: string): void {
    const known = this.parents.get(parent);
    if (known && known.state.ifindex === ifindex) {
      known.networks++;
      return;
    }
    if (known) this.forget(known);
    const handle = this.open();
    handle.addMulticast(ifindex, ALL_NODES_MAC);
    const watched: Watched = {
      state: { parent, ifindex, managed: false, other: false, prefixes: new Map() },
      mac,
      networks: (known?.networks ?? 0) + 1,
      waiters: new Set(),
      solicitedAt: -Infinity,
    };
    this.parents.set(parent, watched);
    this.byIndex.set(ifindex, watched);
    this.solicit(watched);
  }

  /** One network less on `parent`; the last one stops listening there. */
  unwatch(parent: string): void {
    const watched = this.parents.get(parent);
    if (!watched || --watched.networks > 0) return;
    this.forget(watched);
    if (this.parents.size === 0) this.closeSocket();
  }

  /** What is known on `parent` (status, the driver). */
  routers(parent: string): ParentRouters | undefined {
    const watched = this.parents.get(parent);
    if (watched) this.sweep(watched);
    return watched?.state;
  }

  all(): ParentRouters[] {
    return [...this.parents.values()].map((watched) => (this.sweep(watched), watched.state));
  }

  /**
   * The router and a usable SLAAC prefix (autonomous, /64, preferred) on `parent`: at once when known, else after
   * soliciting, within `timeoutMs`; rejects with NoRouterAnswer when none came.
   */
  async slaacPrefix(parent: string, timeoutMs: number): Promise<{ router: ParentRouters; prefix: KnownPrefix }> {
    return this.until(parent, timeoutMs, 'a SLAAC prefix', (state) => {
      const prefix = usablePrefix(state);
      return prefix && state.router ? { router: state, prefix } : undefined;
    });
  }

  /** What the parent's router advertised (its M flag above all), once one has spoken; as slaacPrefix waits. */
  async advertised(parent: string, timeoutMs: number): Promise<ParentRouters> {
    return this.until(parent, timeoutMs, 'anything', (state) => (state.router ? state : undefined));
  }

  /** The prefix advertised on-link on `parent` that holds `address`, if any (its length is the subnet's). */
  onLinkPrefix(parent: string, address: bigint): KnownPrefix | undefined {
    for (const known of this.parents.get(parent)?.state.prefixes.values() ?? []) {
      const shift = BigInt(128 - known.length);
      if (
        known.onLink &&
        known.condition !== 'withdrawn' &&
        known.condition !== 'expired' &&
        address >> shift === known.prefix >> shift
      )
        return known;
    }
    return undefined;
  }

  private async until<T>(
    parent: string,
    timeoutMs: number,
    what: string,
    found: (state: ParentRouters) => T | undefined,
  ): Promise<T> {
    const watched = this.parents.get(parent);
    if (!watched) throw new Error(`parent '${parent}' is not watched for router advertisements`);
    const deadline = this.now() + timeoutMs;
    for (;;) {
      this.sweep(watched);
      const result = found(watched.state);
      if (result !== undefined) return result;
      const left = deadline - this.now();
      if (left <= 0) throw new NoRouterAnswer(`no router advertised ${what} on ${parent}`);
      if (this.now() - watched.solicitedAt >= SOLICIT_INTERVAL_MS) this.solicit(watched);
      const untilNext = SOLICIT_INTERVAL_MS - (this.now() - watched.solicitedAt);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.max(Math.min(left, untilNext), 10));
        function done() {
          clearTimeout(timer);
          watched!.waiters.delete(done);
          resolve();
        }
        watched.waiters.add(done);
      });
    }
  }

  close(): void {
    for (const watched of [...this.parents.values()]) this.forget(watched);
    this.closeSocket();
  }

  private open(): TapHandle {
    if (this.handle) return this.handle;
    this.handle = this.tap.join({ ethertypes: [ETHERTYPE_IPV6], frame: (received) => this.receive(received) });
    this.sweeper = setInterval(() => {
      for (const watched of this.parents.values()) this.sweep(watched);
    }, SWEEP_MS);
    this.sweeper.unref();
    return this.handle;
  }

  private closeSocket(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.handle?.leave();
    this.handle = undefined;
  }

  private forget(watched: Watched): void {
    this.parents.delete(watched.state.parent);
    if (this.byIndex.get(watched.state.ifindex) === watched) this.byIndex.delete(watched.state.ifindex);
    for (const wake of [...watched.waiters]) wake();
    try {
      this.handle?.dropMulticast(watched.state.ifindex, ALL_NODES_MAC);
    } catch {
      // The parent is gone, and its memberships with it.
    }
  }

  private solicit(watched: Watched): void {
    watched.solicitedAt = this.now();
    try {
      this.handle?.send(watched.state.ifindex, buildRouterSolicitation(watched.mac));
    } catch (error) {
      this.log.warn(
        { parent: watched.state.parent, error: (error as Error).message },
        'cannot send a router solicitation',
      );
    }
  }

  private receive({ ifindex, frame, outgoing }: ReceivedFrame): void {
    if (outgoing || frame.length < 55 || frame[54] !== ICMPV6_ROUTER_ADVERTISEMENT) return;
    const watched = this.byIndex.get(ifindex);
    if (!watched) return;
    let advert;
    try {
      advert = parseRouterAdvert(frame);
    } catch (error) {
      if (error instanceof MalformedFrame) return;
      throw error;
    }
    const state = watched.state;
    const at = this.now();
    state.router = formatIp(true, advert.router);
    state.routerMac = advert.routerMac;
    state.managed = advert.managed;
    state.other = advert.other;
    state.heardAt = at;
    for (const advertised of advert.prefixes) this.learn(state, advertised, at);
    for (const wake of [...watched.waiters]) wake();
  }

  private learn(state: ParentRouters, advertised: AdvertisedPrefix, at: number): void {
    const text = `${formatIp(true, advertised.prefix)}/${advertised.length}`;
    const until = (seconds: number) => (seconds === INFINITE_LIFETIME ? undefined : at + seconds * 1000);
    const condition: PrefixCondition =
      advertised.validSeconds === 0 ? 'withdrawn' : advertised.preferredSeconds === 0 ? 'deprecated' : 'valid';
    const before = state.prefixes.get(text);
    state.prefixes.set(text, {
      text,
      prefix: advertised.prefix,
      length: advertised.length,
      autonomous: advertised.autonomous,
      onLink: advertised.onLink,
      ...(until(advertised.validSeconds) !== undefined && { validUntil: until(advertised.validSeconds) }),
      ...(until(advertised.preferredSeconds) !== undefined && { preferredUntil: until(advertised.preferredSeconds) }),
      condition,
    });
    if (before?.condition === condition || (before?.condition === 'expired' && condition === 'withdrawn')) return;
    // A prefix first heard is told too: after a restart, pools and records in the state may hold it, lost or not.
    if (condition === 'valid') this.back(state, text, before !== undefined);
    else this.report(state, text, condition);
  }

  private sweep(watched: Watched): void {
    const at = this.now();
    for (const known of watched.state.prefixes.values()) {
      if (known.condition === 'expired' || known.condition === 'withdrawn') continue;
      if (known.validUntil !== undefined && known.validUntil <= at) {
        known.condition = 'expired';
        this.report(watched.state, known.text, 'expired');
      } else if (known.condition === 'valid' && known.preferredUntil !== undefined && known.preferredUntil <= at) {
        known.condition = 'deprecated';
        this.report(watched.state, known.text, 'deprecated');
      }
    }
  }

  private back(state: ParentRouters, prefix: string, again: boolean): void {
    if (again) this.log.info({ parent: state.parent, prefix }, 'IPv6 prefix advertised again');
    for (const listener of this.backListeners) listener({ parent: state.parent, prefix });
  }

  private report(state: ParentRouters, prefix: string, condition: PrefixLoss['condition']): void {
    this.log.warn(
      { parent: state.parent, prefix, condition },
      `IPv6 prefix ${prefix} on ${state.parent} is ${condition}: containers keep their addresses in it (Docker cannot renumber them); reconnect them for an address in a current prefix (a network whose pool is that prefix, --ipam-opt ipv6=slaac: recreate it); tsmacvlan doctor lists them`,
    );
    for (const listener of this.lossListeners) listener({ parent: state.parent, prefix, condition });
  }
}

function usablePrefix(state: ParentRouters): KnownPrefix | undefined {
  for (const known of state.prefixes.values())
    if (known.autonomous && known.length === SLAAC_PREFIX_LENGTH && known.condition === 'valid') return known;
  return undefined;
}
