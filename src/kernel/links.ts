// Kernel layer: the links this plugin needs, through rtnetlink. It knows nothing of Docker.
import { FlagsNew, createRtNetlink, ifla, type RtNetlinkSocket } from 'netlink';
import { attr, bufferToMac, flatten, ipv4ToBuffer, macToBuffer, u32 } from './attributes';
import { errnoOf, KernelError } from './errors';
import { withTimeout } from './request-timeout';
import {
  IPVLAN_FLAG_BITS,
  IPVLAN_MODE_VALUES,
  MODE_FLAGS,
  VLAN_ETHERTYPES,
  swap16,
  toLinkDetails,
  toLinkInfo,
  type ChildMode,
  type LinkInfo,
  type LinkDetails,
  type VlanProtocol,
} from './link-info';

/**
 * Dumps leave out the per-device counters the kernel can skip (IPv6's and ICMPv6's in IFLA_AF_SPEC, VFs'): nothing
 * here reads them, and a dump of thousands of links parses less. A kernel that does not know the flag sends them.
 */
const RTEXT_FILTER_SKIP_STATS = 1 << 3;
const AF_BRIDGE = 7;

/** A macvlan or ipvlan to make on the parent `parentIndex`. `mac` applies to a macvlan: an ipvlan has its parent's. */
export type ChildSpec = ChildMode & { name: string; parentIndex: number; mac?: string; mtu?: number };

const IFLA_MACVLAN_MACADDR = 4;
const VETH_INFO_PEER = 1;

const AF_INET = 2;
const RT_TABLE_MAIN = 254;
const RTPROT_STATIC = 4;
const RT_SCOPE_LINK = 253;
const RT_SCOPE_NOWHERE = 255; // in a delete: match a route of any scope
const RTN_UNICAST = 1;

/**
 * The receive buffer asked of every socket (the kernel doubles it, and caps the request at net.core.rmem_max, whose
 * Debian default is this very size): 416 KiB. The kernel queues a request's reply while the request is sent, before the
 * event loop reads any, and drops replies that do not fit (ENOBUFS). Measured with test/bench/netlink-overflow.mjs:
 * 136 replies of a macvlan's getLink fit in 416 KiB (68 in the default 208 KiB), 512 acks do.
 */
const RECV_BUFFER_BYTES = 212992;
/** Requests on a socket at once, at most: 32 getLink replies fill a quarter of its buffer (see above). */
const MAX_IN_FLIGHT = 32;
/**
 * A request unanswered this long had its reply dropped (the kernel answers in well under a millisecond, and never drops
 * a reply without an ENOBUFS): it fails, or is sent once more when sending it twice does no harm.
 */
const REQUEST_TIMEOUT_MS = 10_000;

/** Makes sure a socket has a listener for 'error' (an 'error' without one is thrown) and the buffer sized above. */
/** IFLA_INFO_DATA of a macvlan or ipvlan. */
function childData(mode: ChildMode): Buffer {
  if (mode.kind === 'ipvlan') {
    const flags = Buffer.alloc(2);
    flags.writeUInt16LE(IPVLAN_FLAG_BITS[mode.flag]);
    return flatten(ifla.formatIpvlan({ mode: IPVLAN_MODE_VALUES[mode.mode], flags }));
  }
  const macvlan: ifla.Macvlan = { mode: ifla.formatMacvlanMode(MODE_FLAGS[mode.mode]) };
  if (mode.sourceMacs?.length) {
    macvlan.macaddrMode = ifla.MacvlanMacaddrMode.SET;
    macvlan.macaddrData = Buffer.concat(mode.sourceMacs.map((mac) => attr(IFLA_MACVLAN_MACADDR, macToBuffer(mac))));
  }
  return flatten(ifla.formatMacvlan(macvlan));
}

function prepare(socket: RtNetlinkSocket, onError: (err: Error & { code?: string }) => void): RtNetlinkSocket {
  socket.socket.setRecvBufferSize(RECV_BUFFER_BYTES);
  // RtNetlinkSocket does not re-emit its NetlinkSocket's 'error' (which re-emits the raw socket's): listen there.
  socket.socket.on('error', onError);
  return socket;
}

export class Links {
  private readonly socket: RtNetlinkSocket;
  /** Every link created here carries this device group; `owns` tells them apart from everyone else's. */
  readonly group: number | undefined;
  // Concurrent dumps on one socket corrupt each other: one at a time.
  private dumpQueue: Promise<unknown> = Promise.resolve();
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];
  /**
   * Set while a dump runs: other requests wait for it. A reply that comes between a dump's parts splits the dump (the
   * netlink library then fails it as not terminated), and the kernel queues the reply to a request sent meanwhile there.
   */
  private alone: Promise<void> | undefined;
  /** Called when the last request in flight finishes (a dump waits for that). */
  private idle: (() => void) | undefined;

  /**
   * `afterCreate` runs between creating a link and giving it its alias, the one moment a link exists half-made: the
   * daemon passes its crash point there.
   */
  constructor(
    group?: number,
    private readonly afterCreate: () => void = () => undefined,
  ) {
    this.group = group;
    // ENOBUFS here means replies were dropped: their requests time out (see `inTurn`). Any other error closes the
    // socket in the binding, and every later request fails with "Netlink socket is closed".
    this.socket = prepare(createRtNetlink(), () => undefined);
  }

  /** True for a link this instance created (its device group is ours). */
  owns(link: LinkInfo): boolean {
    return this.group !== undefined && link.group === this.group;
  }

  close(): void {
    this.socket.socket.close();
  }

  /**
   * Runs one request on the socket once fewer than MAX_IN_FLIGHT are under way; a finished one hands its slot on. A
   * request whose reply the kernel dropped times out, and is sent once more when it is `idempotent`.
   */
  private async inTurn<T>(send: () => Promise<T>, idempotent = true, dump = false): Promise<T> {
    if (!dump) while (this.alone) await this.alone;
    if (this.inFlight < MAX_IN_FLIGHT) this.inFlight++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      try {
        return await withTimeout(send(), REQUEST_TIMEOUT_MS);
      } catch (err) {
        if (!idempotent || errnoOf(err) !== 'ETIMEDOUT') throw err;
        return await withTimeout(send(), REQUEST_TIMEOUT_MS);
      }
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else if (--this.inFlight === 0) this.idle?.();
    }
  }

  /** One request in turn; a refusal becomes a KernelError naming `operation`. */
  private async request<T>(operation: string, send: () => Promise<T>, idempotent = true, dump = false): Promise<T> {
    try {
      return await this.inTurn(send, idempotent, dump);
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

  /**
   * A dump request, after the previous one has finished, alone on the socket: requests under way finish first, new
   * ones wait for it. Never sent twice (not idempotent): the first may still be running, and two on a socket mix their
   * replies.
   */
  private dump<T>(operation: string, send: () => Promise<T>): Promise<T> {
    const run = this.dumpQueue.then(async () => {
      let done!: () => void;
      this.alone = new Promise<void>((resolve) => (done = resolve));
      try {
        if (this.inFlight > 0) await new Promise<void>((resolve) => (this.idle = resolve));
        this.idle = undefined;
        return await this.request(operation, send, false, true);
      } finally {
        this.alone = undefined;
        done();
      }
    });
    this.dumpQueue = run.catch(() => undefined);
    return run;
  }

  /** Every link of this namespace, without its counters: `ip -d link show`. */
  async list(): Promise<LinkInfo[]> {
    const request = () => this.socket.getLinks({}, { extMask: u32(RTEXT_FILTER_SKIP_STATS) });
    return (await this.dump('list links', request)).map(toLinkInfo);
  }

  /**
   * The unicast MACs link `index` accepts besides its own, its macvlan children's among them while they are up, in
   * whatever namespace they are: `bridge fdb show dev <link>` (entries "self permanent").
   */
  async unicastMacs(index: number): Promise<Set<string>> {
    const request = () => this.socket.getNeighbors({ family: AF_BRIDGE });
    const entries = await this.dump('list unicast addresses', request);
    const macs = entries
      .filter((e) => e.data.ifindex === index && e.attrs.lladdr)
      .map((e) => bufferToMac(e.attrs.lladdr!));
    return new Set(macs);
  }

  private async message(name: string) {
    const [msg] =
      (await this.requestUnlessAbsent(`get link ${name}`, ['ENODEV'], () =>
        this.socket.getLink({}, { ifname: name }),
      )) ?? [];
    return msg;
  }

  /** One link by name, undefined when absent: `ip -d link show <name>`. */
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
   * Creates a child link (see createChild) of this instance's. A link of ours already by that name (left by an
   * interrupted create) is replaced; anyone else's is never touched. Answers what became of it rather than the
   * kernel's errno: 'parent-busy' is EBUSY, a parent held by the other kind, a passthru macvlan or a master.
   */
  async replaceOwnChild(spec: ChildSpec, alias: string): Promise<'created' | 'name-taken' | 'parent-busy'> {
    const create = async () => {
      try {
        await this.createChild(spec, alias);
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

  /**
   * Creates a macvlan or an ipvlan on a parent, marked as ours:
   * `ip link add link <parent> name <name> [address <mac>] [mtu <mtu>] type macvlan mode <mode> [macaddr set <macs>]`, or
   * `ip link add link <parent> name <name> [mtu <mtu>] type ipvlan mode <l2|l3|l3s> <bridge|private|vepa>`.
   * The kernel keeps an ipvlan's mode and flag per parent: creating one with others sets them for every ipvlan there.
   */
  async createChild(spec: ChildSpec, alias: string): Promise<void> {
    const ownMac = spec.kind === 'macvlan' && spec.mac;
    await this.create(`create ${spec.kind} ${spec.name}`, alias, {
      link: u32(spec.parentIndex),
      ifname: spec.name,
      ...(spec.mtu ? { mtu: spec.mtu } : {}),
      ...(ownMac ? { address: macToBuffer(ownMac) } : {}),
      linkinfo: flatten(ifla.formatInfo({ kind: spec.kind, data: childData(spec) })),
    });
  }

  /** The macvlans and ipvlans on the parent `parentIndex` in this namespace: `ip -d link show` filtered by parent. */
  async children(parentIndex: number): Promise<LinkInfo[]> {
    return (await this.list()).filter((link) => link.parentIndex === parentIndex && link.child !== undefined);
  }

  /** `ip link add link <parent> name <name> type vlan protocol <802.1q|802.1ad> id <vid>`, marked as ours. */
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

  /** `ip link add <name> type dummy`, marked as ours. */
  async createDummy(name: string, alias: string): Promise<void> {
    await this.create(`create dummy ${name}`, alias, {
      ifname: name,
      linkinfo: flatten(ifla.formatInfo({ kind: 'dummy' })),
    });
  }

  /** `ip link add <name> type veth peer name <peer>`, both ends ours. */
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
    // Not sent twice: after a dropped reply the first may have made the link, and the second would say EEXIST.
    await this.request(
      operation,
      () => this.socket.newLink({}, marked, { flags: FlagsNew.CREATE | FlagsNew.EXCL }),
      false,
    );
    this.afterCreate();
    try {
      await this.request(`mark ${name}`, () => this.socket.setLink({}, { ifname: name, ifalias: alias }));
    } catch (err) {
      await this.delete(name).catch(() => undefined);
      throw err;
    }
  }

  /** `ip link set <link> up`. */
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

  /**
   * The host's own addresses on link `index`, IPv4 and IPv6 (`ip -br addr show dev <link>`), as raw bytes: 4 or 16
   * each. IFA_LOCAL is the link's own address (IFA_ADDRESS is the peer's on a point-to-point link).
   */
  async addressesOf(index: number): Promise<Buffer[]> {
    const messages = await this.dump('list addresses', () => this.socket.getAddresses());
    return messages
      .filter((m) => m.data.index === index)
      .map((m) => m.attrs.local ?? m.attrs.address)
      .filter((bytes): bytes is Buffer => bytes !== undefined && (bytes.length === 4 || bytes.length === 16));
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

  /**
   * Calls `onChange` with the name of every link that appears, changes or goes, and `onLost` when events may have been
   * lost: the socket reported an error, ENOBUFS when the kernel dropped events that did not fit its receive buffer
   * (thousands of link changes while the event loop was stalled). The watch goes on. Returns a function that stops it.
   */
  watch(onChange: (name: string) => void, onLost: (err: Error) => void): () => void {
    const events = prepare(createRtNetlink(), onLost);
    events.addMembership('LINK');
    events.on('message', (messages) => {
      for (const msg of messages) {
        if (msg.kind === 'link' && msg.attrs.ifname) onChange(msg.attrs.ifname);
      }
    });
    return () => events.socket.close();
  }

  /** Deletes a link by name (`ip link del <name>`); false when it was not there. */
  async delete(name: string): Promise<boolean> {
    const deleted = await this.requestUnlessAbsent(`delete link ${name}`, ['ENODEV'], async () => {
      await this.socket.delLink({}, { ifname: name });
      return true;
    });
    return deleted ?? false;
  }
}
