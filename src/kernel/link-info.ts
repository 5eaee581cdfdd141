// How the kernel's link messages read: the facts of a link the rest of the plugin uses.
import { ifla } from 'netlink';
import type { LinkMessage } from 'netlink/dist/rt/structs';
import { bufferToMac } from './attributes';

export type MacvlanMode = 'bridge' | 'private' | 'vepa' | 'passthru' | 'source';
export type VlanProtocol = '802.1q' | '802.1ad';

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
  macvlanMode?: MacvlanMode;
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
  if (info?.kind === 'macvlan' && info.data) {
    const mode = ifla.parseMacvlanMode(ifla.parseMacvlan(info.data).mode ?? 0);
    link.macvlanMode = (Object.keys(MODE_FLAGS) as MacvlanMode[]).find((m) => mode[m]);
  }
  return link;
}
