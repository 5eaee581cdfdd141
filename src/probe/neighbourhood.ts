// What the LAN says about an address before the plugin hands it out: probed on every parent its subnet is on (see
// lans.ts), the host's own addresses on those parents counted as held, each verdict kept for a while. The IPAM asks
// it about the addresses it is about to give; the driver asks it, at CreateEndpoint, about the addresses a container
// was given by name (--ip). One instance per daemon, over the shared packet socket.
import type { Logger } from 'pino';
import { type Cidr, formatIp, parseIp } from '../ip/address';
import { ETHERTYPE_ARP, ETHERTYPE_IPV6 } from '../kernel/link-frames';
import type { LinkInfo } from '../kernel/link-info';
import type { PacketTap, TapHandle } from '../kernel/packet-tap';
import { AddressProbes } from './address-probes';
import { Lans } from './lans';

/** A verdict: free, or held by the device with `mac` (`host`: by this host itself, on the parent). */
export type Verdict = { held: false } | { held: true; mac: string; by: 'lan' | 'host' };

/** How long a verdict that an address is free is trusted before the address is handed out on its word. */
export const FRESH_MS = 30_000;

/** A probe that could not be made (no packet socket, a parent gone or down): nothing is known of the address. */
export class ProbeError extends Error {}

export interface NeighbourhoodOptions {
  tap: PacketTap;
  links: { get(name: string): Promise<LinkInfo | undefined>; addressesOf(index: number): Promise<Buffer[]> };
  log: Logger;
  now?: () => number;
}

interface ParentFacts {
  name: string;
  index: number;
  mac: string;
  /** The host's own addresses on it, as `${v6}/${value}`. */
  own: Set<string>;
}

/** How long a parent's index, MAC and addresses are trusted before they are read again. */
const PARENT_FACTS_MS = 2000;
/** Verdicts kept at most (the oldest go first): candidates and given addresses, a few per pool. */
const VERDICTS_KEPT = 4096;
/** A given address (--ip or --aux-address) waits this long at most for its endpoint's check. */
const GIVEN_KEPT_MS = 120_000;

const ownKey = (v6: boolean, value: bigint) => `${v6}/${value}`;

export class Neighbourhood {
  private readonly lans = new Lans();
  private readonly now: () => number;
  private probes: { engine: AddressProbes; handle: TapHandle } | undefined;
  private readonly verdicts = new Map<string, { verdict: Verdict; at: number }>();
  private readonly checking = new Map<string, Promise<Verdict | undefined>>();
  private readonly parents = new Map<string, { at: number; facts: Promise<ParentFacts> }>();
  private readonly given = new Map<string, { subnet: Cidr; value: bigint; at: number }>();
  private readonly attachListeners = new Set<(subnet: string) => void>();

  constructor(private readonly options: NeighbourhoodOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The driver: network `owner`'s addresses of `subnets` are on `parent`. */
  attach(owner: string, parent: string, subnets: string[]): void {
    for (const subnet of this.lans.attach(owner, parent, subnets))
      for (const listener of this.attachListeners) listener(subnet);
  }

  detach(owner: string): void {
    this.lans.detach(owner);
  }

  /** Calls `listener` with each subnet that gets its first parent (the IPAM starts probing its candidates). */
  onAttach(listener: (subnet: string) => void): void {
    this.attachListeners.add(listener);
  }

  /** Whether some parent is known for `subnet`: its addresses can be probed. */
  knows(subnet: Cidr): boolean {
    return this.lans.parentsOf(subnet.text).length > 0;
  }

  /** The verdict on `value` if one was reached in the last `maxAgeMs`. */
  recent(subnet: Cidr, value: bigint, maxAgeMs: number): Verdict | undefined {
    const kept = this.verdicts.get(`${subnet.text}|${value}`);
    return kept && this.now() - kept.at <= maxAgeMs ? kept.verdict : undefined;
  }

  /**
   * Drops the verdict on `value`: it was given to a container, or released by one, so what the LAN said before is
   * void (a container that got it answers for it; one released may still answer a while).
   */
  forget(subnet: Cidr, value: bigint): void {
    this.verdicts.delete(`${subnet.text}|${value}`);
  }

  /** Whether a check of `value` is under way. */
  underWay(subnet: Cidr, value: bigint): boolean {
    return this.checking.has(`${subnet.text}|${value}`);
  }

  /**
   * Probes `value` on every parent of its subnet (a check already under way is shared); undefined when no parent is
   * known. Rejects with a ProbeError when it cannot probe: the caller must not take the address for free then.
   */
  check(subnet: Cidr, value: bigint): Promise<Verdict | undefined> {
    const id = `${subnet.text}|${value}`;
    let running = this.checking.get(id);
    if (!running) {
      running = this.probeOnParents(subnet, value).then((verdict) => {
        if (verdict) this.keep(id, verdict);
        return verdict;
      });
      const settled = () => {
        if (this.checking.get(id) === running) this.checking.delete(id);
      };
      running.then(settled, settled);
      this.checking.set(id, running);
    }
    return running;
  }

  /** The IPAM gave `value` by name (--ip, --aux-address: Docker sends both alike): it is checked at CreateEndpoint. */
  noteGiven(subnet: Cidr, value: bigint): void {
    this.pruneGiven();
    this.given.set(ownKey(subnet.v6, value), { subnet, value, at: this.now() });
    // Started now, so the endpoint's check finds it done or under way; an aux address's verdict is simply unused.
    if (this.knows(subnet)) this.check(subnet, value).catch(() => undefined);
  }

  forgetGiven(subnet: Cidr, value: bigint): void {
    this.given.delete(ownKey(subnet.v6, value));
  }

  /**
   * The driver's check of an endpoint's address ("10.0.0.5/24"): for an address the IPAM gave by name, a verdict no
   * older than `maxAgeMs`, probing now if need be; undefined for any other address (the IPAM probed it, or it is
   * not this IPAM's).
   */
  async checkGiven(address: string, maxAgeMs: number): Promise<Verdict | undefined> {
    const ip = parseIp(address.split('/')[0]!);
    const note = ip && this.given.get(ownKey(ip.v6, ip.value));
    if (!note) return undefined;
    this.given.delete(ownKey(note.subnet.v6, note.value));
    return this.recent(note.subnet, note.value, maxAgeMs) ?? (await this.check(note.subnet, note.value));
  }

  /**
   * The duplicate address check of an IPv6 address no IPAM gave (a SLAAC address) on `parent`: a neighbour
   * solicitation from the unspecified address, as RFC 4862 §5.4 has a host do. Rejects with a ProbeError when it
   * cannot probe.
   */
  async checkOnParent(parent: string, value: bigint): Promise<Verdict> {
    const facts = await this.parentFacts(parent);
    if (facts.own.has(ownKey(true, value))) return { held: true, mac: facts.mac, by: 'host' };
    const answer = await this.engine()
      .probe({ ifindex: facts.index, sourceMac: facts.mac, v6: true, address: value })
      .catch((error: Error) => {
        throw new ProbeError(`probing ${formatIp(true, value)} on ${parent} failed: ${error.message}`);
      });
    return answer.held ? { held: true, mac: answer.mac, by: 'lan' } : { held: false };
  }

  close(): void {
    this.probes?.engine.close();
    this.probes?.handle.leave();
    this.probes = undefined;
  }

  private keep(id: string, verdict: Verdict): void {
    this.verdicts.delete(id);
    this.verdicts.set(id, { verdict, at: this.now() });
    if (this.verdicts.size > VERDICTS_KEPT) this.verdicts.delete(this.verdicts.keys().next().value!);
  }

  private pruneGiven(): void {
    const oldest = this.now() - GIVEN_KEPT_MS;
    for (const [id, note] of this.given) if (note.at < oldest) this.given.delete(id);
  }

  private async probeOnParents(subnet: Cidr, value: bigint): Promise<Verdict | undefined> {
    const names = this.lans.parentsOf(subnet.text);
    if (names.length === 0) return undefined;
    const parents = await Promise.all(names.map((name) => this.parentFacts(name)));
    const own = parents.find((parent) => parent.own.has(ownKey(subnet.v6, value)));
    if (own) return { held: true, mac: own.mac, by: 'host' };
    const engine = this.engine();
    const answers = await Promise.all(
      parents.map((parent) =>
        engine
          .probe({ ifindex: parent.index, sourceMac: parent.mac, v6: subnet.v6, address: value })
          .catch((error: Error) => {
            throw new ProbeError(`probing ${formatIp(subnet.v6, value)} on ${parent.name} failed: ${error.message}`);
          }),
      ),
    );
    const held = answers.find((answer) => answer.held);
    return held?.held ? { held: true, mac: held.mac, by: 'lan' } : { held: false };
  }

  private engine(): AddressProbes {
    if (this.probes) return this.probes.engine;
    let engine: AddressProbes | undefined;
    let handle: TapHandle;
    try {
      handle = this.options.tap.join({
        ethertypes: [ETHERTYPE_ARP, ETHERTYPE_IPV6],
        frame: (received) => engine?.receive(received),
      });
    } catch (error) {
      throw new ProbeError(
        `cannot open the packet socket to probe addresses (${(error as Error).message}); it needs CAP_NET_RAW`,
      );
    }
    engine = new AddressProbes(handle);
    this.probes = { engine, handle };
    return engine;
  }

  private parentFacts(name: string): Promise<ParentFacts> {
    const cached = this.parents.get(name);
    if (cached && this.now() - cached.at <= PARENT_FACTS_MS) return cached.facts;
    const facts = this.readParent(name);
    const entry = { at: this.now(), facts };
    this.parents.set(name, entry);
    facts.catch(() => {
      if (this.parents.get(name) === entry) this.parents.delete(name);
    });
    return facts;
  }

  private async readParent(name: string): Promise<ParentFacts> {
    const link = await this.options.links.get(name);
    if (!link) throw new ProbeError(`parent '${name}' does not exist`);
    if (!link.mac) throw new ProbeError(`parent '${name}' has no MAC address to probe from`);
    if (!link.up) throw new ProbeError(`parent '${name}' is down`);
    const own = new Set<string>();
    for (const bytes of await this.options.links.addressesOf(link.index)) {
      const v6 = bytes.length === 16;
      own.add(
        ownKey(v6, v6 ? (bytes.readBigUInt64BE(0) << 64n) | bytes.readBigUInt64BE(8) : BigInt(bytes.readUInt32BE(0))),
      );
    }
    return { name, index: link.index, mac: link.mac, own };
  }
}
