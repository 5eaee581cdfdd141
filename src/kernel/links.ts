// Kernel layer: the links this plugin needs, through rtnetlink. It knows nothing of Docker.
import { FlagsNew, createRtNetlink, ifla, type RtNetlinkSocket } from 'netlink';
import { attr, flatten, ipv4ToBuffer, macToBuffer, u32 } from './attributes';
import { errnoOf, KernelError } from './errors';
import {
  MODE_FLAGS,
  VLAN_ETHERTYPES,
  swap16,
  toLinkDetails,
  toLinkInfo,
  type LinkInfo,
  type LinkDetails,
  type MacvlanMode,
  type VlanProtocol,
} from './link-info';

export interface MacvlanSpec {
  name: string;
  parentIndex: number;
  mode: MacvlanMode;
  mac?: string;
  mtu?: number;
  sourceMacs?: string[];
}

const IFLA_MACVLAN_MACADDR = 4;
const VETH_INFO_PEER = 1;

const AF_INET = 2;
const RT_TABLE_MAIN = 254;
const RTPROT_STATIC = 4;
const RT_SCOPE_LINK = 253;
const RT_SCOPE_NOWHERE = 255; // in a delete: match a route of any scope
const RTN_UNICAST = 1;

/**
 * Requests on the socket at once, at most. Their replies wait in its receive buffer (208 KiB by default) until the event
 * loop reads them; a burst (200 Joins at once) overran it, the kernel flagged the socket (ENOBUFS), and netlink 0.3.0's
 * native poll handler then aborted the whole process (SIGABRT, "Error in native callback"). 8 replies of a few KiB each
 * stay far below the buffer, and a request takes the kernel well under a millisecond, so bursts lose nothing.
 */
const MAX_IN_FLIGHT = 8;

export class Links {
  private readonly socket: RtNetlinkSocket;
  /** Every link created here carries this device group; `owns` tells them apart from everyone else's. */
  readonly group: number | undefined;
  // Concurrent dumps on one socket corrupt each other: one at a time.
  private dumpQueue: Promise<unknown> = Promise.resolve();
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];

  /**
   * `afterCreate` runs between creating a link and giving it its alias, the one moment a link exists half-made: the
   * daemon passes its crash point there.
   */
  constructor(
    group?: number,
    private readonly afterCreate: () => void = () => undefined,
  ) {
    this.group = group;
    this.socket = createRtNetlink();
  }

  /** True for a link this instance created (its device group is ours). */
  owns(link: LinkInfo): boolean {
    return this.group !== undefined && link.group === this.group;
  }

  close(): void {
    this.socket.socket.close();
  }

  /** Runs one request on the socket once fewer than MAX_IN_FLIGHT are under way; a finished one hands its slot on. */
  private async inTurn<T>(send: () => Promise<T>): Promise<T> {
    if (this.inFlight < MAX_IN_FLIGHT) this.inFlight++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await send();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.inFlight--;
    }
  }

  /** One request in turn; a refusal becomes a KernelError naming `operation`. */
  private async request<T>(operation: string, send: () => Promise<T>): Promise<T> {
    try {
      return await this.inTurn(send);
    } catch (err) {
      throw new KernelError(operation, errnoOf(err));
    }
  }

  /** A request whose refusal with one of the `absent` errnos means "not there": that answers undefined. */
  private async requestUnlessAbsent<T>(operation: string, absent: string[], send: () => Promise<T>) {
    try {
      return await this.inTurn(send);
    } catch (err) {
      const errno = errnoOf(err);
      if (absent.includes(errno)) return undefined;
      throw new KernelError(operation, errno);
    }
  }

  /** A dump request, after the previous one has finished. */
  private dump<T>(operation: string, send: () => Promise<T>): Promise<T> {
    const run = this.dumpQueue.then(() => this.request(operation, send));
    this.dumpQueue = run.catch(() => undefined);
    return run;
  }

  async list(): Promise<LinkInfo[]> {
    return (await this.dump('list links', () => this.socket.getLinks())).map(toLinkInfo);
  }

  private async message(name: string) {
    const [msg] =
      (await this.requestUnlessAbsent(`get link ${name}`, ['ENODEV'], () =>
        this.socket.getLink({}, { ifname: name }),
      )) ?? [];
    return msg;
  }

  async get(name: string): Promise<LinkInfo | undefined> {
    const msg = await this.message(name);
    return msg && toLinkInfo(msg);
  }

  /** One link with the attributes a diagnosis reads (carrier, master, slave kind); undefined when absent. */
  async details(name: string): Promise<LinkDetails | undefined> {
    const msg = await this.message(name);
    return msg && toLinkDetails(msg);
  }

  /**
   * Creates a macvlan of this instance's. A link of ours already by that name (left by an interrupted create) is
   * replaced; anyone else's is never touched. Answers what became of it rather than the kernel's errno.
   */
  async replaceOwnMacvlan(spec: MacvlanSpec, alias: string): Promise<'created' | 'name-taken' | 'parent-busy'> {
    const create = async () => {
      try {
        await this.createMacvlan(spec, alias);
        return 'created' as const;
      } catch (err) {
        if (err instanceof KernelError && err.errno === 'EBUSY') return 'parent-busy' as const;
        throw err;
      }
    };
    try {
      return await create();
    } catch (err) {
      if (!(err instanceof KernelError && err.nameTaken)) throw err;
    }
    const existing = await this.get(spec.name);
    if (existing && !this.owns(existing)) return 'name-taken';
    await this.delete(spec.name);
    return create();
  }

  async createMacvlan(spec: MacvlanSpec, alias: string): Promise<void> {
    const macvlan: ifla.Macvlan = { mode: ifla.formatMacvlanMode(MODE_FLAGS[spec.mode]) };
    if (spec.sourceMacs?.length) {
      macvlan.macaddrMode = ifla.MacvlanMacaddrMode.SET;
      macvlan.macaddrData = Buffer.concat(spec.sourceMacs.map((mac) => attr(IFLA_MACVLAN_MACADDR, macToBuffer(mac))));
    }
    await this.create(`create macvlan ${spec.name}`, alias, {
      link: u32(spec.parentIndex),
      ifname: spec.name,
      ...(spec.mtu ? { mtu: spec.mtu } : {}),
      ...(spec.mac ? { address: macToBuffer(spec.mac) } : {}),
      linkinfo: flatten(ifla.formatInfo({ kind: 'macvlan', data: flatten(ifla.formatMacvlan(macvlan)) })),
    });
  }

  async createVlan(
    name: string,
    parentIndex: number,
    vid: number,
    protocol: VlanProtocol,
    alias: string,
  ): Promise<void> {
    const vlan: ifla.Vlan = { id: vid, protocol: swap16(VLAN_ETHERTYPES[protocol]) };
    await this.create(`create vlan ${name}`, alias, {
      link: u32(parentIndex),
      ifname: name,
      linkinfo: flatten(ifla.formatInfo({ kind: 'vlan', data: flatten(ifla.formatVlan(vlan)) })),
    });
  }

  async createDummy(name: string, alias: string): Promise<void> {
    await this.create(`create dummy ${name}`, alias, {
      ifname: name,
      linkinfo: flatten(ifla.formatInfo({ kind: 'dummy' })),
    });
  }

  async createVethPair(name: string, peerName: string, alias: string): Promise<void> {
    // VETH_INFO_PEER carries a whole ifinfomsg followed by the peer's attributes.
    const peerAttrs: ifla.LinkAttrs = { ifname: peerName, ...(this.group !== undefined && { group: this.group }) };
    const peer = Buffer.concat([Buffer.alloc(16), flatten(ifla.formatLinkAttrs(peerAttrs))]);
    await this.create(`create veth ${name}`, alias, {
      ifname: name,
      linkinfo: flatten(ifla.formatInfo({ kind: 'veth', data: attr(VETH_INFO_PEER, peer) })),
    });
  }

  /**
   * Creates a link carrying this instance's group (set by the kernel in the same request), then gives it an alias that
   * says to a person what it is (the kernel ignores IFLA_IFALIAS on create).
   */
  private async create(operation: string, alias: string, attrs: ifla.LinkAttrs): Promise<void> {
    const name = attrs.ifname as string;
    const marked = this.group === undefined ? attrs : { ...attrs, group: this.group };
    await this.request(operation, () => this.socket.newLink({}, marked, { flags: FlagsNew.CREATE | FlagsNew.EXCL }));
    this.afterCreate();
    try {
      await this.request(`mark ${name}`, () => this.socket.setLink({}, { ifname: name, ifalias: alias }));
    } catch (err) {
      await this.delete(name).catch(() => undefined);
      throw err;
    }
  }

  async setUp(index: number): Promise<void> {
    await this.request(`bring up link ${index}`, () =>
      this.socket.setLink({ index, flags: { up: true }, change: { up: true } }),
    );
  }

  async addIpv4Address(index: number, address: string, prefixLength: number): Promise<void> {
    const bytes = ipv4ToBuffer(address);
    await this.request(`add address ${address}/${prefixLength} to link ${index}`, () =>
      this.socket.newAddress(
        { family: AF_INET, prefixlen: prefixLength, index },
        { local: bytes, address: bytes },
        { flags: FlagsNew.CREATE | FlagsNew.REPLACE },
      ),
    );
  }

  /** A /32 route to `destination` out of link `index`, with `source` as the host's address for it; replaces any existing one. */
  async replaceHostRoute(destination: string, index: number, source: string): Promise<void> {
    await this.request(`route ${destination} via link ${index}`, () =>
      this.socket.newRoute(
        {
          family: AF_INET,
          dstLen: 32,
          table: RT_TABLE_MAIN,
          protocol: RTPROT_STATIC,
          scope: RT_SCOPE_LINK,
          type: RTN_UNICAST,
        },
        { dst: ipv4ToBuffer(destination), oif: index, prefsrc: ipv4ToBuffer(source) },
        { flags: FlagsNew.CREATE | FlagsNew.REPLACE },
      ),
    );
  }

  /** The destinations of the IPv4 /32 routes of the main table out of link `index`. */
  async hostRoutes(index: number): Promise<string[]> {
    const routes = await this.dump('list routes', () => this.socket.getRoutes({ family: AF_INET }));
    return routes
      .filter(
        (r) =>
          r.data.dstLen === 32 &&
          r.attrs.oif === index &&
          (r.attrs.table ?? r.data.table) === RT_TABLE_MAIN &&
          r.attrs.dst?.length === 4,
      )
      .map((r) => [...(r.attrs.dst as Buffer)].join('.'));
  }

  /** Deletes the /32 route to `destination` out of link `index`; false when it was not there. */
  async deleteHostRoute(destination: string, index: number): Promise<boolean> {
    const deleted = await this.requestUnlessAbsent(`delete route ${destination}`, ['ESRCH', 'ENODEV'], async () => {
      await this.socket.delRoute(
        { family: AF_INET, dstLen: 32, table: RT_TABLE_MAIN, scope: RT_SCOPE_NOWHERE },
        { dst: ipv4ToBuffer(destination), oif: index },
      );
      return true;
    });
    return deleted ?? false;
  }

  /** Calls `onChange` with the name of every link that appears, changes or goes; returns a function that stops watching. */
  watch(onChange: (name: string) => void): () => void {
    // netlink@0.3.0 aborts the process when this socket overflows (ENOBUFS reaches its poll-error path, which builds
    // an error with a null syscall name). That takes thousands of link events queued while the event loop is blocked;
    // the daemon never blocks it for long, and survives 4,000 veth pairs made and deleted by `ip -batch` while it watches.
    const events = createRtNetlink();
    events.addMembership('LINK');
    events.on('message', (messages) => {
      for (const msg of messages) {
        if (msg.kind === 'link' && msg.attrs.ifname) onChange(msg.attrs.ifname);
      }
    });
    return () => events.socket.close();
  }

  /** Deletes a link by name; false when it was not there. */
  async delete(name: string): Promise<boolean> {
    const deleted = await this.requestUnlessAbsent(`delete link ${name}`, ['ENODEV'], async () => {
      await this.socket.delLink({}, { ifname: name });
      return true;
    });
    return deleted ?? false;
  }
}
