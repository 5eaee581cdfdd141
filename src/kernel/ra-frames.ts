// IPv6 router discovery frames (RFC 4861 §4.1, §4.2) for the packet socket: the router solicitation the host side
// sends to ask the LAN's routers to speak now, and the router advertisements they send, with their prefixes. Pure;
// malformed input throws MalformedFrame.
import { ETH_HEADER, ETHERTYPE_IPV6, MalformedFrame, ethernetHeader, macString } from './link-frames';
import { HOP_LIMIT, IPV6_HEADER, NEXT_HEADER_ICMPV6, ipv6Packet, ipv6Value } from './nd-frames';

export const ICMPV6_ROUTER_SOLICITATION = 133;
export const ICMPV6_ROUTER_ADVERTISEMENT = 134;
/** ff02::2, every router of the link, and its MAC. */
export const ALL_ROUTERS = (0xff02n << 112n) | 2n;
export const ALL_ROUTERS_MAC = '33:33:00:00:00:02';
const OPTION_SOURCE_LINK_ADDRESS = 1;
const OPTION_PREFIX_INFORMATION = 3;
/** A lifetime of all ones is infinity (RFC 4861 §4.6.2). */
export const INFINITE_LIFETIME = 0xffff_ffff;

export interface AdvertisedPrefix {
  /** The prefix's value (the bits past `length` are zero) and length. */
  prefix: bigint;
  length: number;
  /** L: the prefix is on the link. A: hosts may form addresses in it (SLAAC). */
  onLink: boolean;
  autonomous: boolean;
  /** Seconds, INFINITE_LIFETIME for ever; 0 withdraws the prefix. */
  validSeconds: number;
  preferredSeconds: number;
}

export interface RouterAdvert {
  /** The router's link-local address (the IPv6 source) and MAC (the source link-layer option, else the frame's). */
  router: bigint;
  routerMac: string;
  /** M: addresses from DHCPv6. O: other settings from DHCPv6. */
  managed: boolean;
  other: boolean;
  /** Seconds it is a default router for; 0: it is none. */
  routerLifetime: number;
  prefixes: AdvertisedPrefix[];
}

/** A router solicitation from `sourceMac`: IPv6 source unspecified, so no source link-layer option (RFC 4861 §4.1). */
export function buildRouterSolicitation(sourceMac: string): Buffer {
  const icmp = Buffer.alloc(8);
  icmp[0] = ICMPV6_ROUTER_SOLICITATION;
  return Buffer.concat([ethernetHeader(ALL_ROUTERS_MAC, sourceMac, ETHERTYPE_IPV6), ipv6Packet(0n, ALL_ROUTERS, icmp)]);
}

const isLinkLocal = (address: bigint) => address >> 118n === 0x3fan; // fe80::/10

/**
 * The router advertisement of an IPv6 frame; anything else throws MalformedFrame. RFC 4861 §6.1.2's checks: hop
 * limit 255 (it crossed no router) and a link-local source.
 */
export function parseRouterAdvert(frame: Buffer): RouterAdvert {
  const ip = frame.subarray(ETH_HEADER);
  if (ip.length < IPV6_HEADER + 16) throw new MalformedFrame('too short for a router advertisement');
  if (ip[0]! >> 4 !== 6) throw new MalformedFrame('not an IPv6 header');
  if (ip[6] !== NEXT_HEADER_ICMPV6) throw new MalformedFrame(`next header ${ip[6]} is not ICMPv6`);
  const length = ip.readUInt16BE(4);
  if (length < 16 || IPV6_HEADER + length > ip.length)
    throw new MalformedFrame(`payload length ${length} does not fit`);
  const icmp = ip.subarray(IPV6_HEADER, IPV6_HEADER + length);
  if (icmp[0] !== ICMPV6_ROUTER_ADVERTISEMENT) throw new MalformedFrame(`ICMPv6 type ${icmp[0]} is not an advert`);
  if (icmp[1] !== 0) throw new MalformedFrame(`ICMPv6 code ${icmp[1]} is not 0`);
  if (ip[7] !== HOP_LIMIT) throw new MalformedFrame(`hop limit ${ip[7]}: it crossed a router`);
  const router = ipv6Value(ip, 8);
  if (!isLinkLocal(router)) throw new MalformedFrame('a router advertisement from outside fe80::/10');
  const advert: RouterAdvert = {
    router,
    routerMac: macString(frame, 6),
    managed: (icmp[5]! & 0x80) !== 0,
    other: (icmp[5]! & 0x40) !== 0,
    routerLifetime: icmp.readUInt16BE(6),
    prefixes: [],
  };
  // Options: type, length in units of 8 bytes, value (RFC 4861 §4.6); a zero length is invalid.
  for (let at = 16; at + 8 <= icmp.length;) {
    const units = icmp[at + 1]!;
    if (units === 0) throw new MalformedFrame('a neighbour discovery option of length 0');
    if (at + units * 8 > icmp.length) throw new MalformedFrame('an option runs past the advertisement');
    if (icmp[at] === OPTION_SOURCE_LINK_ADDRESS && units === 1) advert.routerMac = macString(icmp, at + 2);
    if (icmp[at] === OPTION_PREFIX_INFORMATION && units === 4) advert.prefixes.push(prefixOption(icmp, at));
    at += units * 8;
  }
  return advert;
}

function prefixOption(icmp: Buffer, at: number): AdvertisedPrefix {
  const length = icmp[at + 2]!;
  if (length > 128) throw new MalformedFrame(`prefix length ${length} is over 128`);
  const bits = ipv6Value(icmp, at + 16);
  const mask = length === 0 ? 0n : ((1n << BigInt(length)) - 1n) << BigInt(128 - length);
  return {
    prefix: bits & mask,
    length,
    onLink: (icmp[at + 3]! & 0x80) !== 0,
    autonomous: (icmp[at + 3]! & 0x40) !== 0,
    validSeconds: icmp.readUInt32BE(at + 4),
    preferredSeconds: icmp.readUInt32BE(at + 8),
  };
}
