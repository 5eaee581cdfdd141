// How the kernel's link messages read: the facts of a link the rest of the plugin uses.
import { ifla } from 'netlink';
import type { LinkMessage } from 'netlink/dist/rt/structs';
import { bufferToMac } from './attributes';

export type MacvlanMode = 'bridge' | 'private' | 'vepa' | 'passthru' | 'source';
export type IpvlanMode = 'l2' | 'l3' | 'l3s';
/** How an ipvlan's siblings on one parent reach each other: directly, not at all, or through the switch. */
export type IpvlanFlag = 'bridge' | 'private' | 'vepa';
export type VlanProtocol = '802.1q' | '802.1ad';

/**
 * A link that hangs off a parent and lends a container the parent's LAN: a macvlan (a MAC of its own) or an ipvlan
 * (the parent's MAC; the kernel tells its siblings apart by IP address). One kind per parent: the kernel refuses to
 * mix them (EBUSY), and it keeps one ipvlan mode and flag per parent, the last one given.
 */
export type ChildKind = 'macvlan' | 'ipvlan';
export const CHILD_KINDS: readonly ChildKind[] = ['macvlan', 'ipvlan'];

/** A child's kind and that kind's settings. */
export type ChildMode =
  | { kind: 'macvlan'; mode: MacvlanMode; sourceMacs?: string[] }
  | { kind: 'ipvlan'; mode: IpvlanMode; flag: IpvlanFlag };

export const VLAN_ETHERTYPES: Record<VlanProtocol, number> = { '802.1q': 0x8100, '802.1ad': 0x88a8 };

/** IFLA_VLAN_PROTOCOL is big-endian; the library writes u16s little-endian. */
export function swap16(value: number): number {
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
  /** A macvlan's or ipvlan's mode (an ipvlan's is its parent's: the kernel keeps one per parent). */
  child?: ChildMode;
  /** Device group (IFLA_GROUP): the creating instance's mark, see marks.ts. */
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

const OPERSTATES = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'];

export const MODE_FLAGS: Record<MacvlanMode, ifla.MacvlanMode> = {
  bridge: { bridge: true },
  private: { private: true },
  vepa: { vepa: true },
  passthru: { passthru: true },
  source: { source: true },
};

/** IFLA_IPVLAN_MODE. */
export const IPVLAN_MODE_VALUES: Record<IpvlanMode, number> = {
  l2: ifla.IpvlanMode.L2,
  l3: ifla.IpvlanMode.L3,
  l3s: ifla.IpvlanMode.L3S,
};
/** IFLA_IPVLAN_FLAGS (IPVLAN_F_PRIVATE, IPVLAN_F_VEPA; none is bridge). */
export const IPVLAN_FLAG_BITS: Record<IpvlanFlag, number> = { bridge: 0, private: 1, vepa: 2 };

function keyOf<K extends string>(table: Record<K, number>, value: number | undefined): K | undefined {
  return (Object.keys(table) as K[]).find((key) => table[key] === value);
}

export function toLinkDetails(msg: LinkMessage): LinkDetails {
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

export function toLinkInfo(msg: LinkMessage): LinkInfo {
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
  if (info?.data) {
    const child = childModeOf(info.kind, info.data);
    if (child) link.child = child;
  }
  return link;
}

/** What IFLA_INFO_DATA says of a macvlan or ipvlan; undefined for other kinds, or a mode this code does not know. */
function childModeOf(kind: string | undefined, data: Buffer): ChildMode | undefined {
  if (kind === 'macvlan') {
    const flags = ifla.parseMacvlanMode(ifla.parseMacvlan(data).mode ?? 0);
    const mode = (Object.keys(MODE_FLAGS) as MacvlanMode[]).find((m) => flags[m]);
    return mode && { kind, mode };
  }
  if (kind === 'ipvlan') {
    const parsed = ifla.parseIpvlan(data);
    const mode = keyOf(IPVLAN_MODE_VALUES, parsed.mode);
    const flag = keyOf(IPVLAN_FLAG_BITS, parsed.flags?.length === 2 ? parsed.flags.readUInt16LE(0) : 0);
    return mode && flag && { kind, mode, flag };
  }
  return undefined;
}
