// Ethernet + IPv6 + UDP framing for DHCPv6 (RFC 8415 §7): what a client sends from its link-local address to the
// servers' group, parsed from what servers send back to port 546; and the neighbour advertisement that tells a server
// which MAC holds the client's link-local address (nothing else on the LAN would answer for it). Pure; malformed or
// truncated input throws MalformedFrame.
import {
  ETH_HEADER,
  ETHERTYPE_IPV6,
  MalformedFrame,
  ethernetHeader,
  internetChecksum,
  macString,
} from '../kernel/link-frames';
import { IPV6_HEADER, ipv6Bytes, ipv6Value } from '../kernel/nd-frames';
import { eui64 } from '../ra/slaac';

export const CLIENT_PORT = 546;
export const SERVER_PORT = 547;
/** ff02::1:2, All_DHCP_Relay_Agents_and_Servers, and its MAC (RFC 2464 §7: 33:33 + the group's last 32 bits). */
export const ALL_SERVERS = (0xff02n << 112n) | 0x1_0002n;
export const ALL_SERVERS_MAC = '33:33:00:01:00:02';
const NEXT_HEADER_UDP = 17;
const UDP_HEADER = 8;
/** Hop limit of DHCPv6 messages: the servers' group is link-scoped; 1 is what clients send. */
const HOP_LIMIT = 1;

/** fe80::/64 + the modified EUI-64 of `mac`: the link-local address the endpoint's own kernel would form. */
export function linkLocalOf(mac: string): bigint {
  return (0xfe80n << 112n) | eui64(mac);
}

export interface Udp6Datagram {
  sourceMac: string;
  destinationMac: string;
  source: bigint;
  destination: bigint;
  sourcePort: number;
  destinationPort: number;
  payload: Buffer;
}

export function buildUdp6Frame(d: Udp6Datagram): Buffer {
  const length = UDP_HEADER + d.payload.length;
  const ip = Buffer.alloc(IPV6_HEADER);
  ip.writeUInt32BE(0x6000_0000, 0);
  ip.writeUInt16BE(length, 4);
  ip[6] = NEXT_HEADER_UDP;
  ip[7] = HOP_LIMIT;
  ipv6Bytes(d.source).copy(ip, 8);
  ipv6Bytes(d.destination).copy(ip, 24);
  const udp = Buffer.alloc(UDP_HEADER);
  udp.writeUInt16BE(d.sourcePort, 0);
  udp.writeUInt16BE(d.destinationPort, 2);
  udp.writeUInt16BE(length, 4);
  // The pseudo-header of RFC 8200 §8.1: both addresses, the length, the next header. IPv6 makes the checksum mandatory.
  const pseudo = Buffer.alloc(8);
  pseudo.writeUInt32BE(length, 0);
  pseudo[7] = NEXT_HEADER_UDP;
  const sum = internetChecksum(Buffer.concat([ip.subarray(8, 40), pseudo, udp, d.payload]));
  udp.writeUInt16BE(sum === 0 ? 0xffff : sum, 6);
  return Buffer.concat([ethernetHeader(d.destinationMac, d.sourceMac, ETHERTYPE_IPV6), ip, udp, d.payload]);
}

/** The UDP datagram of an IPv6 frame without extension headers (DHCPv6 on a link has none); the checksum is not verified. */
export function parseUdp6Frame(frame: Buffer): Udp6Datagram {
  const ip = frame.subarray(ETH_HEADER);
  if (ip.length < IPV6_HEADER + UDP_HEADER) throw new MalformedFrame('too short for an IPv6 UDP datagram');
  if (ip[0]! >> 4 !== 6) throw new MalformedFrame('not an IPv6 header');
  if (ip[6] !== NEXT_HEADER_UDP) throw new MalformedFrame(`next header ${ip[6]} is not UDP`);
  const payloadLength = ip.readUInt16BE(4);
  if (IPV6_HEADER + payloadLength > ip.length) throw new MalformedFrame(`payload length ${payloadLength} does not fit`);
  const udp = ip.subarray(IPV6_HEADER, IPV6_HEADER + payloadLength);
  const udpLength = udp.readUInt16BE(4);
  if (udpLength < UDP_HEADER || udpLength > udp.length) throw new MalformedFrame(`bad UDP length ${udpLength}`);
  return {
    destinationMac: macString(frame, 0),
    sourceMac: macString(frame, 6),
    source: ipv6Value(ip, 8),
    destination: ipv6Value(ip, 24),
    sourcePort: udp.readUInt16BE(0),
    destinationPort: udp.readUInt16BE(2),
    payload: Buffer.from(udp.subarray(UDP_HEADER, udpLength)),
  };
}
