// Ethernet and ARP frames as the packet socket sends and receives them, and the byte forms of MAC and IPv4
// addresses: what DHCP's framing (src/dhcp/frame.ts) and the address probes (src/probe/) both build on. Pure;
// malformed or truncated input throws MalformedFrame, never crashes.

export class MalformedFrame extends Error {}

export const ETH_HEADER = 14;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;

export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';
export const ZERO_MAC = '00:00:00:00:00:00';
export const ANY_IPV4 = '0.0.0.0';

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

/** The Internet checksum (RFC 1071) of `data`, folded into 16 bits; `initial` carries a pseudo-header's sum. */
export function internetChecksum(data: Buffer, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < data.length; i += 2) sum += data.readUInt16BE(i);
  if (data.length % 2) sum += data[data.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function ethernetHeader(destinationMac: string, sourceMac: string, ethertype: number): Buffer {
  const header = Buffer.alloc(ETH_HEADER);
  macBytes(destinationMac).copy(header, 0);
  macBytes(sourceMac).copy(header, 6);
  header.writeUInt16BE(ethertype, 12);
  return header;
}

/** The ethertype of a frame; throws MalformedFrame for one too short to have an Ethernet header. */
export function ethertypeOf(frame: Buffer): number {
  if (frame.length < ETH_HEADER) throw new MalformedFrame(`a frame of ${frame.length} bytes has no Ethernet header`);
  return frame.readUInt16BE(12);
}

export interface ArpPacket {
  operation: 'request' | 'reply';
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

/** The ARP packet of an ARP frame (ethertype checked by the caller). */
export function parseArp(frame: Buffer): ArpPacket {
  const arp = frame.subarray(ETH_HEADER);
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

/** An RFC 5227 probe for `targetIp` from `senderMac`: it asks who has the address and claims nothing. */
export function arpProbe(senderMac: string, targetIp: string): ArpPacket {
  return { operation: 'request', senderMac, senderIp: ANY_IPV4, targetMac: ZERO_MAC, targetIp };
}
