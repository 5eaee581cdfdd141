// IPv6 neighbour discovery frames (RFC 4861) for the packet socket: the neighbour solicitation of a duplicate
// address check (RFC 4862 §5.4: from the unspecified address, to the target's solicited-node group) and the
// advertisements that answer it. Pure; malformed input throws MalformedFrame.
import {
  ETH_HEADER,
  ETHERTYPE_IPV6,
  MalformedFrame,
  ethernetHeader,
  internetChecksum,
  macBytes,
  macString,
} from './link-frames';

export const IPV6_HEADER = 40;
export const NEXT_HEADER_ICMPV6 = 58;
/** ND packets are sent with hop limit 255 and one received with less crossed a router: RFC 4861 §7.1.2 drops it. */
export const HOP_LIMIT = 255;
export const ICMPV6_NEIGHBOUR_SOLICITATION = 135;
export const ICMPV6_NEIGHBOUR_ADVERTISEMENT = 136;
const OPTION_TARGET_LINK_ADDRESS = 2;
/** The all-nodes group's MAC (ff02::1): where an answer to a solicitation from the unspecified address goes. */
export const ALL_NODES_MAC = '33:33:00:00:00:01';
const ALL_NODES = (0xff02n << 112n) | 1n;

/** An IPv6 address as 16 bytes, from its value. */
export function ipv6Bytes(value: bigint): Buffer {
  const bytes = Buffer.alloc(16);
  bytes.writeBigUInt64BE(value >> 64n, 0);
  bytes.writeBigUInt64BE(value & 0xffff_ffff_ffff_ffffn, 8);
  return bytes;
}

export function ipv6Value(bytes: Buffer, offset: number): bigint {
  return (bytes.readBigUInt64BE(offset) << 64n) | bytes.readBigUInt64BE(offset + 8);
}

/** ff02::1:ffXX:XXXX, the group every holder of `target` listens on (RFC 4291 §2.7.1), and its MAC 33:33:ff:XX:XX:XX. */
export function solicitedNode(target: bigint): { group: bigint; mac: string } {
  const low = target & 0xff_ffffn;
  const group = (0xff02n << 112n) | (0x1ffn << 24n) | low;
  const mac = ['33', '33', 'ff', (low >> 16n) & 0xffn, (low >> 8n) & 0xffn, low & 0xffn]
    .map((part) => (typeof part === 'string' ? part : part.toString(16).padStart(2, '0')))
    .join(':');
  return { group, mac };
}

export function ipv6Packet(source: bigint, destination: bigint, icmp: Buffer): Buffer {
  const header = Buffer.alloc(IPV6_HEADER);
  header.writeUInt32BE(0x6000_0000, 0); // version 6, no traffic class, no flow label
  header.writeUInt16BE(icmp.length, 4);
  header[6] = NEXT_HEADER_ICMPV6;
  header[7] = HOP_LIMIT;
  ipv6Bytes(source).copy(header, 8);
  ipv6Bytes(destination).copy(header, 24);
  // The ICMPv6 checksum covers a pseudo-header: both addresses, the length and the next header (RFC 8200 §8.1).
  const pseudo = Buffer.concat([header.subarray(8, 40), Buffer.from([0, 0, icmp.length >> 8, icmp.length & 0xff])]);
  const sum = Buffer.concat([pseudo, Buffer.from([0, 0, 0, NEXT_HEADER_ICMPV6])]);
  icmp.writeUInt16BE(0, 2);
  icmp.writeUInt16BE(internetChecksum(Buffer.concat([sum, icmp])), 2);
  return Buffer.concat([header, icmp]);
}

/**
 * A duplicate address check's solicitation for `target`, sent from `sourceMac`: IPv6 source unspecified and no
 * source link-layer option (RFC 4861 §4.3), so it claims nothing and a holder answers to all nodes.
 */
export function buildDadSolicitation(sourceMac: string, target: bigint): Buffer {
  const { group, mac } = solicitedNode(target);
  const icmp = Buffer.alloc(24);
  icmp[0] = ICMPV6_NEIGHBOUR_SOLICITATION;
  ipv6Bytes(target).copy(icmp, 8);
  return Buffer.concat([ethernetHeader(mac, sourceMac, ETHERTYPE_IPV6), ipv6Packet(0n, group, icmp)]);
}

/**
 * The neighbour advertisement (RFC 4861 §4.4) by which `mac` answers a solicitation for `target` from `to` (its MAC
 * `toMac`): solicited and override, with the target link-layer address. From the unspecified address, the answer goes
 * to all nodes (§7.2.4).
 */
export function buildNeighbourAdvert(mac: string, target: bigint, to: bigint, toMac: string): Buffer {
  const icmp = Buffer.alloc(32);
  icmp[0] = ICMPV6_NEIGHBOUR_ADVERTISEMENT;
  icmp[4] = to === 0n ? 0x20 : 0x60; // S (only when asked by an address) and O
  ipv6Bytes(target).copy(icmp, 8);
  icmp[24] = OPTION_TARGET_LINK_ADDRESS;
  icmp[25] = 1;
  macBytes(mac).copy(icmp, 26);
  const destination = to === 0n ? ALL_NODES : to;
  const destinationMac = to === 0n ? ALL_NODES_MAC : toMac;
  return Buffer.concat([ethernetHeader(destinationMac, mac, ETHERTYPE_IPV6), ipv6Packet(target, destination, icmp)]);
}

export interface NeighbourMessage {
  type: 'solicitation' | 'advertisement';
  /** The address asked about or advertised. */
  target: bigint;
  source: bigint;
  /** The frame's source MAC, and the target link-layer address option of an advertisement when it has one. */
  sourceMac: string;
  targetMac?: string;
}

/** The neighbour solicitation or advertisement of an IPv6 frame; anything else throws MalformedFrame. */
export function parseNeighbourMessage(frame: Buffer): NeighbourMessage {
  const ip = frame.subarray(ETH_HEADER);
  if (ip.length < IPV6_HEADER + 24) throw new MalformedFrame('too short for a neighbour discovery message');
  if (ip[0]! >> 4 !== 6) throw new MalformedFrame('not an IPv6 header');
  if (ip[6] !== NEXT_HEADER_ICMPV6) throw new MalformedFrame(`next header ${ip[6]} is not ICMPv6`);
  if (ip[7] !== HOP_LIMIT) throw new MalformedFrame(`hop limit ${ip[7]}: it crossed a router`);
  const length = ip.readUInt16BE(4);
  if (length < 24 || IPV6_HEADER + length > ip.length)
    throw new MalformedFrame(`payload length ${length} does not fit`);
  const icmp = ip.subarray(IPV6_HEADER, IPV6_HEADER + length);
  const kind = icmp[0];
  if (kind !== ICMPV6_NEIGHBOUR_SOLICITATION && kind !== ICMPV6_NEIGHBOUR_ADVERTISEMENT)
    throw new MalformedFrame(`ICMPv6 type ${kind} is not a neighbour solicitation or advertisement`);
  if (icmp[1] !== 0) throw new MalformedFrame(`ICMPv6 code ${icmp[1]} is not 0`);
  const message: NeighbourMessage = {
    type: kind === ICMPV6_NEIGHBOUR_SOLICITATION ? 'solicitation' : 'advertisement',
    target: ipv6Value(icmp, 8),
    source: ipv6Value(ip, 8),
    sourceMac: macString(frame, 6),
  };
  // Options: type, length in units of 8 bytes, value (RFC 4861 §4.6); a zero length is invalid and ends the walk.
  for (let at = 24; at + 8 <= icmp.length;) {
    const units = icmp[at + 1]!;
    if (units === 0) throw new MalformedFrame('a neighbour discovery option of length 0');
    if (icmp[at] === OPTION_TARGET_LINK_ADDRESS && message.type === 'advertisement' && units === 1)
      message.targetMac = macString(icmp, at + 2);
    at += units * 8;
  }
  return message;
}
