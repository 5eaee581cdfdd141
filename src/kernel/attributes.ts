// Encoding of rtnetlink attributes the netlink library has no encoder for (nests, addresses, MACs).
import { isIPv4 } from 'node:net';
import { AttrStream, type StreamData } from 'netlink';

export function flatten(data: StreamData): Buffer {
  const stream = new AttrStream();
  stream.emit(data);
  return Buffer.concat(stream.bufs);
}

export function u32(value: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeUInt32LE(value);
  return buf;
}

export function macToBuffer(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((byte) => parseInt(byte, 16)));
}

export function bufferToMac(buf: Buffer): string {
  return [...buf].map((byte) => byte.toString(16).padStart(2, '0')).join(':');
}

/** A netlink attribute header + payload, padded to 4 bytes (for nests the library has no encoder for). */
export function attr(type: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt16LE(4 + payload.length, 0);
  header.writeUInt16LE(type, 2);
  const pad = Buffer.alloc((4 - (payload.length % 4)) % 4);
  return Buffer.concat([header, payload, pad]);
}

export function ipv4ToBuffer(address: string): Buffer {
  if (!isIPv4(address)) throw new Error(`not an IPv4 address: ${address}`);
  return Buffer.from(address.split('.').map(Number));
}
