// Ethernet + IPv4 + UDP framing for DHCP: built whole for the packet socket, parsed from what it receives, with the
// ARP frames of the address check (src/kernel/link-frames.ts). Pure; malformed or truncated input throws
// MalformedFrame, never crashes.
import {
  ETH_HEADER,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  MalformedFrame,
  type ArpPacket,
  ethernetHeader,
  ethertypeOf,
  internetChecksum,
  ipv4Bytes,
  ipv4String,
  macString,
  parseArp,
} from '../kernel/link-frames';

export {
  ANY_IPV4,
  BROADCAST_MAC,
  MalformedFrame,
  ZERO_MAC,
  buildArpFrame,
  internetChecksum,
  ipv4Bytes,
  ipv4String,
  macBytes,
  macString,
  type ArpPacket,
} from '../kernel/link-frames';

const IPV4_HEADER = 20;
const UDP_HEADER = 8;
const PROTOCOL_UDP = 17;

export const BROADCAST_IPV4 = '255.255.255.255';

export interface UdpDatagram {
  sourceMac: string;
  destinationMac: string;
  sourceIp: string;
  destinationIp: string;
  sourcePort: number;
  destinationPort: number;
  payload: Buffer;
}

export function buildUdpFrame(d: UdpDatagram): Buffer {
  const udpLength = UDP_HEADER + d.payload.length;
  const ip = Buffer.alloc(IPV4_HEADER);
  ip[0] = 0x45; // version 4, header of 5 words
  ip[1] = 0x10; // low delay, as DHCP clients usually send
  ip.writeUInt16BE(IPV4_HEADER + udpLength, 2);
  ip[8] = 64; // TTL
  ip[9] = PROTOCOL_UDP;
  ipv4Bytes(d.sourceIp).copy(ip, 12);
  ipv4Bytes(d.destinationIp).copy(ip, 16);
  ip.writeUInt16BE(internetChecksum(ip), 10);

  const udp = Buffer.alloc(UDP_HEADER);
  udp.writeUInt16BE(d.sourcePort, 0);
  udp.writeUInt16BE(d.destinationPort, 2);
  udp.writeUInt16BE(udpLength, 4);
  const pseudo = Buffer.concat([ip.subarray(12, 20), Buffer.from([0, PROTOCOL_UDP, udpLength >> 8, udpLength & 0xff])]);
  const checksum = internetChecksum(Buffer.concat([pseudo, udp, d.payload]));
  udp.writeUInt16BE(checksum === 0 ? 0xffff : checksum, 6); // 0 would mean "no checksum"
  return Buffer.concat([ethernetHeader(d.destinationMac, d.sourceMac, ETHERTYPE_IPV4), ip, udp, d.payload]);
}

export type ParsedFrame = { kind: 'udp'; datagram: UdpDatagram } | { kind: 'arp'; arp: ArpPacket; sourceMac: string };

/**
 * The UDP datagram or ARP packet a frame holds. The UDP checksum is not verified: frames of the local stack seen
 * on a veth or macvlan parent carry an offloaded, not yet computed one (the wire's FCS covers the rest).
 */
export function parseFrame(frame: Buffer): ParsedFrame {
  const ethertype = ethertypeOf(frame);
  if (ethertype === ETHERTYPE_ARP) return { kind: 'arp', arp: parseArp(frame), sourceMac: macString(frame, 6) };
  if (ethertype !== ETHERTYPE_IPV4)
    throw new MalformedFrame(`ethertype 0x${ethertype.toString(16)} is neither IPv4 nor ARP`);
  return { kind: 'udp', datagram: parseIpv4Udp(frame) };
}

function parseIpv4Udp(frame: Buffer): UdpDatagram {
  const ip = frame.subarray(ETH_HEADER);
  if (ip.length < IPV4_HEADER) throw new MalformedFrame('the IPv4 header is truncated');
  const headerLength = (ip[0]! & 0x0f) * 4;
  if (ip[0]! >> 4 !== 4 || headerLength < IPV4_HEADER) throw new MalformedFrame('not an IPv4 header');
  const totalLength = ip.readUInt16BE(2);
  if (totalLength < headerLength + UDP_HEADER || totalLength > ip.length) {
    throw new MalformedFrame(`the IPv4 length ${totalLength} does not fit the ${ip.length} bytes received`);
  }
  if (internetChecksum(ip.subarray(0, headerLength)) !== 0) throw new MalformedFrame('bad IPv4 header checksum');
  if (ip[9] !== PROTOCOL_UDP) throw new MalformedFrame(`IP protocol ${ip[9]} is not UDP`);
  if (ip.readUInt16BE(6) & 0x3fff) throw new MalformedFrame('fragmented datagrams are not reassembled');
  const udp = ip.subarray(headerLength, totalLength);
  const udpLength = udp.readUInt16BE(4);
  if (udpLength < UDP_HEADER || udpLength > udp.length) throw new MalformedFrame(`bad UDP length ${udpLength}`);
  return {
    destinationMac: macString(frame, 0),
    sourceMac: macString(frame, 6),
    sourceIp: ipv4String(ip, 12),
    destinationIp: ipv4String(ip, 16),
    sourcePort: udp.readUInt16BE(0),
    destinationPort: udp.readUInt16BE(2),
    payload: Buffer.from(udp.subarray(UDP_HEADER, udpLength)),
  };
}
