// Kernel layer: the links this plugin needs, through rtnetlink. It knows nothing of Docker.
import { isIPv4 } from 'node:net';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { AttrStream, FlagsNew, createRtNetlink, ifla, type RtNetlinkSocket, type StreamData } from 'netlink';
import type { LinkMessage } from 'netlink/dist/rt/structs';
import { crashPoint } from './crash';
import { withTimeout } from './kernel/request-timeout';

export type MacvlanMode = 'bridge' | 'private' | 'vepa' | 'passthru' | 'source';
export type VlanProtocol = '802.1q' | '802.1ad';

const VLAN_ETHERTYPES: Record<VlanProtocol, number> = { '802.1q': 0x8100, '802.1ad': 0x88a8 };

/** IFLA_VLAN_PROTOCOL is big-endian; the library writes u16s little-endian. */
function swap16(value: number): number {
  return ((value & 0xff) << 8) | (value >> 8);
}

export interface LinkInfo {
  index: number;
  name: string;
  kind?: string;
  up: boolean;
  loopback: boolean;
  mtu: number;
  mac?: string;
  parentIndex?: number;
  alias?: string;
  vlanId?: number;
  vlanProtocol?: VlanProtocol;
  macvlanMode?: MacvlanMode;
  /** Device group (IFLA_GROUP): the creating instance's mark, see mark.ts. */
  group?: number;
}

/** What a diagnosis needs beyond LinkInfo (read-only; `doctor` and `status`). */
export interface LinkDetails extends LinkInfo {
  /** The driver signals a carrier (IFLA_CARRIER, else IFF_LOWER_UP). */
  carrier: boolean;
  /** RFC 2863 state: up, down, lowerlayerdown, dormant, ... */
  operstate: string;
  /** The bridge, bond, team... this link is enslaved to (IFLA_MASTER), and its kind (IFLA_INFO_SLAVE_KIND). */
  masterIndex?: number;
  slaveKind?: string;
}

/** Facts about a link that only sysfs has. */
export interface SysfsFacts {
  /** The kernel driver bound to the device (virtio_net, e1000e...); none for virtual links. */
  driver?: string;
  wireless: boolean;
}

const OPERSTATES = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'];

export interface MacvlanSpec {
  name: string;
  parentIndex: number;
  mode: MacvlanMode;
  mac?: string;
  mtu?: number;
  sourceMacs?: string[];
}

/** A kernel refusal, with the errno name the kernel gave ("EEXIST", "ENODEV", ...). */
export class KernelError extends Error {
  constructor(
    readonly operation: string,
    readonly errno: string,
  ) {
    super(`${operation}: ${errno}`);
  }
}

const MODE_FLAGS: Record<MacvlanMode, ifla.MacvlanMode> = {
  bridge: { bridge: true },
  private: { private: true },
  vepa: { vepa: true },
  passthru: { passthru: true },
  source: { source: true },
};

const IFLA_MACVLAN_MACADDR = 4;
const VETH_INFO_PEER = 1;

function flatten(data: StreamData): Buffer {
  const stream = new AttrStream();
  stream.emit(data);
  return Buffer.concat(stream.bufs);
}

function u32(value: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeUInt32LE(value);
  return buf;
}

export function macToBuffer(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((byte) => parseInt(byte, 16)));
}

function bufferToMac(buf: Buffer): string {
  return [...buf].map((byte) => byte.toString(16).padStart(2, '0')).join(':');
}

/** A netlink attribute header + payload, padded to 4 bytes (for nests the library has no encoder for). */
function attr(type: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt16LE(4 + payload.length, 0);
  header.writeUInt16LE(type, 2);
  const pad = Buffer.alloc((4 - (payload.length % 4)) % 4);
  return Buffer.concat([header, payload, pad]);
}

const AF_INET = 2;
const RT_TABLE_MAIN = 254;
const RTPROT_STATIC = 4;
const RT_SCOPE_LINK = 253;
const RT_SCOPE_NOWHERE = 255; // in a delete: match a route of any scope
const RTN_UNICAST = 1;

function ipv4ToBuffer(address: string): Buffer {
  if (!isIPv4(address)) throw new Error(`not an IPv4 address: ${address}`);
  return Buffer.from(address.split('.').map(Number));
}

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
function prepare(socket: RtNetlinkSocket, onError: (err: Error & { code?: string }) => void): RtNetlinkSocket {
  socket.socket.setRecvBufferSize(RECV_BUFFER_BYTES);
  // RtNetlinkSocket does not re-emit its NetlinkSocket's 'error' (which re-emits the raw socket's): listen there.
  socket.socket.on('error', onError);
  return socket;
}

function errnoOf(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return /\b(E[A-Z0-9]+)\b/.exec(message)?.[1] ?? message;
}

export class Links {
  private readonly socket: RtNetlinkSocket;
  /** Every link created here carries this device group; `owns` tells them apart from everyone else's. */
  readonly group: number | undefined;
  // Concurrent dumps on one socket corrupt each other: one at a time.
  private dumpQueue: Promise<unknown> = Promise.resolve();
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(group?: number) {
    this.group = group;
    // ENOBUFS here means replies were dropped: their requests time out (see `limit`). Any other error closes the
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
  private async limit<T>(request: () => Promise<T>, idempotent = true): Promise<T> {
    if (this.inFlight < MAX_IN_FLIGHT) this.inFlight++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      try {
        return await withTimeout(request(), REQUEST_TIMEOUT_MS);
      } catch (err) {
        if (!idempotent || errnoOf(err) !== 'ETIMEDOUT') throw err;
        return await withTimeout(request(), REQUEST_TIMEOUT_MS);
      }
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.inFlight--;
    }
  }

  private async call<T>(operation: string, fn: () => Promise<T>, idempotent = true): Promise<T> {
    try {
      return await this.limit(fn, idempotent);
    } catch (err) {
      throw new KernelError(operation, errnoOf(err));
    }
  }

  /** Dumps are never sent twice (not `idempotent`): the first may still be running, and two on a socket mix replies. */
  async list(): Promise<LinkInfo[]> {
    const run = this.dumpQueue.then(() => this.call('list links', () => this.socket.getLinks(), false));
    this.dumpQueue = run.catch(() => undefined);
    return (await run).map(toLinkInfo);
  }

  async get(name: string): Promise<LinkInfo | undefined> {
    try {
      const [msg] = await this.limit(() => this.socket.getLink({}, { ifname: name }));
      return msg ? toLinkInfo(msg) : undefined;
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === 'ENODEV') return undefined;
      throw new KernelError(`get link ${name}`, errno);
    }
  }

  /** One link with the attributes a diagnosis reads (carrier, master, slave kind); undefined when absent. */
  async details(name: string): Promise<LinkDetails | undefined> {
    try {
      const [msg] = await this.limit(() => this.socket.getLink({}, { ifname: name }));
      return msg ? toLinkDetails(msg) : undefined;
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === 'ENODEV') return undefined;
      throw new KernelError(`get link ${name}`, errno);
    }
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
    // Not sent twice: after a dropped reply the first may have made the link, and the second would say EEXIST.
    await this.call(
      operation,
      () => this.socket.newLink({}, marked, { flags: FlagsNew.CREATE | FlagsNew.EXCL }),
      false,
    );
    crashPoint('link-created');
    try {
      await this.call(`mark ${name}`, () => this.socket.setLink({}, { ifname: name, ifalias: alias }));
    } catch (err) {
      await this.delete(name).catch(() => undefined);
      throw err;
    }
  }

  async setUp(index: number): Promise<void> {
    await this.call(`bring up link ${index}`, () =>
      this.socket.setLink({ index, flags: { up: true }, change: { up: true } }),
    );
  }

  async addIpv4Address(index: number, address: string, prefixLength: number): Promise<void> {
    const bytes = ipv4ToBuffer(address);
    await this.call(`add address ${address}/${prefixLength} to link ${index}`, () =>
      this.socket.newAddress(
        { family: AF_INET, prefixlen: prefixLength, index },
        { local: bytes, address: bytes },
        { flags: FlagsNew.CREATE | FlagsNew.REPLACE },
      ),
    );
  }

  /** A /32 route to `destination` out of link `index`, with `source` as the host's address for it; replaces any existing one. */
  async replaceHostRoute(destination: string, index: number, source: string): Promise<void> {
    await this.call(`route ${destination} via link ${index}`, () =>
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
    const run = this.dumpQueue.then(() =>
      this.call('list routes', () => this.socket.getRoutes({ family: AF_INET }), false),
    );
    this.dumpQueue = run.catch(() => undefined);
    const routes = await run;
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
    try {
      await this.limit(() =>
        this.socket.delRoute(
          { family: AF_INET, dstLen: 32, table: RT_TABLE_MAIN, scope: RT_SCOPE_NOWHERE },
          { dst: ipv4ToBuffer(destination), oif: index },
        ),
      );
      return true;
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === 'ESRCH' || errno === 'ENODEV') return false;
      throw new KernelError(`delete route ${destination}`, errno);
    }
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

  /** Deletes a link by name; false when it was not there. */
  async delete(name: string): Promise<boolean> {
    try {
      await this.limit(() => this.socket.delLink({}, { ifname: name }));
      return true;
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === 'ENODEV') return false;
      throw new KernelError(`delete link ${name}`, errno);
    }
  }
}

/**
 * The driver of a link and whether it is wireless, from /sys/class/net. sysfs shows the network namespace of whoever
 * mounted it, which need not be ours (`unshare --net` without a new /sys): the facts count only when the directory
 * is this very link (same ifindex and MAC), else undefined.
 */
export function sysfsFacts(link: LinkInfo, sysfs = '/sys'): SysfsFacts | undefined {
  const dir = join(sysfs, 'class/net', link.name);
  const read = (file: string) => {
    try {
      return readFileSync(join(dir, file), 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  if (read('ifindex') !== String(link.index) || (link.mac !== undefined && read('address') !== link.mac))
    return undefined;
  let driver: string | undefined;
  try {
    driver = basename(readlinkSync(join(dir, 'device/driver')));
  } catch {
    driver = undefined; // a virtual link has no device
  }
  const wireless = existsSync(join(dir, 'wireless')) || existsSync(join(dir, 'phy80211'));
  return { ...(driver && { driver }), wireless };
}

function toLinkDetails(msg: LinkMessage): LinkDetails {
  const { attrs, data } = msg;
  const info = attrs.linkinfo ? ifla.parseInfo(attrs.linkinfo) : undefined;
  const details: LinkDetails = {
    ...toLinkInfo(msg),
    carrier: attrs.carrier !== undefined ? attrs.carrier !== 0 : Boolean(data.flags?.lowerUp),
    operstate: OPERSTATES[attrs.operstate ?? 0] ?? 'unknown',
  };
  if (attrs.master) details.masterIndex = attrs.master;
  if (info?.slaveKind) details.slaveKind = info.slaveKind;
  return details;
}

function toLinkInfo(msg: LinkMessage): LinkInfo {
  const { attrs, data } = msg;
  const info = attrs.linkinfo ? ifla.parseInfo(attrs.linkinfo) : undefined;
  const link: LinkInfo = {
    index: data.index ?? 0,
    name: attrs.ifname ?? '',
    up: Boolean(data.flags?.up),
    loopback: Boolean(data.flags?.loopback),
    mtu: attrs.mtu ?? 0,
  };
  if (info?.kind) link.kind = info.kind;
  if (attrs.address) link.mac = bufferToMac(attrs.address);
  if (attrs.link) link.parentIndex = attrs.link.readUInt32LE(0);
  if (attrs.ifalias) link.alias = attrs.ifalias;
  if (attrs.group) link.group = attrs.group;
  if (info?.kind === 'vlan' && info.data) {
    const vlan = ifla.parseVlan(info.data);
    link.vlanId = vlan.id;
    const ethertype = vlan.protocol === undefined ? undefined : swap16(vlan.protocol);
    link.vlanProtocol = (Object.keys(VLAN_ETHERTYPES) as VlanProtocol[]).find((p) => VLAN_ETHERTYPES[p] === ethertype);
  }
  if (info?.kind === 'macvlan' && info.data) {
    const mode = ifla.parseMacvlanMode(ifla.parseMacvlan(info.data).mode ?? 0);
    link.macvlanMode = (Object.keys(MODE_FLAGS) as MacvlanMode[]).find((m) => mode[m]);
  }
  return link;
}
