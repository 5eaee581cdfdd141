// Ethernet + IPv4 + UDP framing for DHCP, and the ARP frames of the address check: built whole for the packet
// socket, parsed from what it receives. Pure; malformed or truncated input throws MalformedFrame, never crashes.

export class MalformedFrame extends Error {}

const ETH_HEADER = 14;
const IPV4_HEADER = 20;
const UDP_HEADER = 8;
const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_ARP = 0x0806;
const PROTOCOL_UDP = 17;

export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';
export const ZERO_MAC = '00:00:00:00:00:00';
export const ANY_IPV4 = '0.0.0.0';
export const BROADCAST_IPV4 = '255.255.255.255';

export function macBytes(mac: string): Buffer {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac))
    throw new RangeError(`${mac} is not a MAC address (aa:bb:cc:dd:ee:ff)`);
  return Buffer.from(mac.replace(/:/g, ''), 'hex');
}

export function macString(bytes: Buffer, offset = 0): string {
  return [...bytes.subarray(offset, offset + 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export function ipv4Bytes(address: string): Buffer {
  const parts = address.split('.');
  const octets = parts.map(Number);
  if (parts.length !== 4 || octets.some((o, i) => !/^\d{1,3}$/.test(parts[i]!) || o > 255)) {
    throw new RangeError(`${address} is not an IPv4 address`);
  }
  return Buffer.from(octets);
}

export function ipv4String(bytes: Buffer, offset = 0): string {
  return [...bytes.subarray(offset, offset + 4)].join('.');
}

/** The Internet checksum (RFC 1071) of `data`, folded into 16 bits. */
export function internetChecksum(data: Buffer, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < data.length; i += 2) sum += data.readUInt16BE(i);
  if (data.length % 2) sum += data[data.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export interface UdpDatagram {
  sourceMac: string;
  destinationMac: string;
  sourceIp: string;
  destinationIp: string;
  sourcePort: number;
  destinationPort: number;
  payload: Buffer;
}

function ethernetHeader(destinationMac: string, sourceMac: string, ethertype: number): Buffer {
  const header = Buffer.alloc(ETH_HEADER);
  macBytes(destinationMac).copy(header, 0);
  macBytes(sourceMac).copy(header, 6);
  header.writeUInt16BE(ethertype, 12);
  return header;
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

export interface ArpPacket {
  operation: 'request' | 'reply';
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

export type ParsedFrame = { kind: 'udp'; datagram: UdpDatagram } | { kind: 'arp'; arp: ArpPacket; sourceMac: string };

/**
 * The UDP datagram or ARP packet a frame holds. The UDP checksum is not verified: frames of the local stack seen
 * on a veth or macvlan parent carry an offloaded, not yet computed one (the wire's FCS covers the rest).
 */
export function parseFrame(frame: Buffer): ParsedFrame {
  if (frame.length < ETH_HEADER) throw new MalformedFrame(`a frame of ${frame.length} bytes has no Ethernet header`);
  const ethertype = frame.readUInt16BE(12);
  if (ethertype === ETHERTYPE_ARP)
    return { kind: 'arp', arp: parseArp(frame.subarray(ETH_HEADER)), sourceMac: macString(frame, 6) };
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

function parseArp(arp: Buffer): ArpPacket {
  if (arp.length < 28) throw new MalformedFrame(`an ARP packet of ${arp.length} bytes is truncated`);
  if (arp.readUInt16BE(0) !== 1 || arp.readUInt16BE(2) !== ETHERTYPE_IPV4 || arp[4] !== 6 || arp[5] !== 4) {
    throw new MalformedFrame('not an Ethernet/IPv4 ARP packet');
  }
  const operation = arp.readUInt16BE(6);
  if (operation !== 1 && operation !== 2) throw new MalformedFrame(`ARP operation ${operation} is unknown`);
  return {
    operation: operation === 1 ? 'request' : 'reply',
    senderMac: macString(arp, 8),
    senderIp: ipv4String(arp, 14),
    targetMac: macString(arp, 18),
    targetIp: ipv4String(arp, 24),
  };
}

/** A broadcast ARP frame (an RFC 5227 probe has senderIp 0.0.0.0 and targetMac zero). */
export function buildArpFrame(arp: ArpPacket, destinationMac = BROADCAST_MAC): Buffer {
  const body = Buffer.alloc(28);
  body.writeUInt16BE(1, 0);
  body.writeUInt16BE(ETHERTYPE_IPV4, 2);
  body[4] = 6;
  body[5] = 4;
  body.writeUInt16BE(arp.operation === 'request' ? 1 : 2, 6);
  macBytes(arp.senderMac).copy(body, 8);
  ipv4Bytes(arp.senderIp).copy(body, 14);
  macBytes(arp.targetMac).copy(body, 18);
  ipv4Bytes(arp.targetIp).copy(body, 24);
  return Buffer.concat([ethernetHeader(destinationMac, arp.senderMac, ETHERTYPE_ARP), body]);
}
