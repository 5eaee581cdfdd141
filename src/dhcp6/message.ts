// DHCPv6 messages (RFC 8415 §8, §21): the client's SOLICIT, REQUEST, RENEW, REBIND, RELEASE and DECLINE, and the
// servers' ADVERTISE and REPLY, with the options a client of one IA_NA needs. DUIDs are colon hex. Pure; malformed or
// truncated input throws MalformedMessage.
export class MalformedMessage extends Error {}

const TYPES = {
  solicit: 1,
  advertise: 2,
  request: 3,
  renew: 5,
  rebind: 6,
  reply: 7,
  release: 8,
  decline: 9,
} as const;
export type Dhcp6Type = keyof typeof TYPES;
const TYPE_NAMES = new Map<number, Dhcp6Type>(Object.entries(TYPES).map(([name, code]) => [code, name as Dhcp6Type]));

const OPTION = {
  clientId: 1,
  serverId: 2,
  iaNa: 3,
  iaAddress: 5,
  requested: 6,
  preference: 7,
  elapsed: 8,
  status: 13,
  dnsServers: 23,
} as const;

/** Status codes of RFC 8415 §21.13 that a client of IA_NA acts on. */
export const STATUS = { success: 0, unspecFail: 1, noAddrsAvail: 2, noBinding: 3, notOnLink: 4 } as const;

export interface IaAddress {
  address: bigint;
  preferredSeconds: number;
  validSeconds: number;
  status?: number;
}

export interface IaNa {
  iaid: number;
  /** Seconds; 0: the client chooses (RFC 8415 §21.4). */
  t1: number;
  t2: number;
  addresses: IaAddress[];
  status?: number;
}

export interface Dhcp6Message {
  type: Dhcp6Type;
  /** 24 bits. */
  xid: number;
  clientId?: string;
  serverId?: string;
  ia?: IaNa;
  /** Hundredths of a second since the exchange began (capped at 0xffff). */
  elapsed?: number;
  preference?: number;
  status?: number;
  statusMessage?: string;
  dnsServers?: bigint[];
  requested?: number[];
}

const hex = (bytes: Buffer) => [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
const unhex = (text: string) => Buffer.from(text.replaceAll(':', ''), 'hex');

function option(code: number, value: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16BE(code, 0);
  head.writeUInt16BE(value.length, 2);
  return Buffer.concat([head, value]);
}

function addressBytes(value: bigint): Buffer {
  const bytes = Buffer.alloc(16);
  bytes.writeBigUInt64BE(value >> 64n, 0);
  bytes.writeBigUInt64BE(value & 0xffff_ffff_ffff_ffffn, 8);
  return bytes;
}

function encodeIa(ia: IaNa): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt32BE(ia.iaid, 0);
  head.writeUInt32BE(ia.t1, 4);
  head.writeUInt32BE(ia.t2, 8);
  const addresses = ia.addresses.map((a) => {
    const times = Buffer.alloc(8);
    times.writeUInt32BE(a.preferredSeconds, 0);
    times.writeUInt32BE(a.validSeconds, 4);
    return option(OPTION.iaAddress, Buffer.concat([addressBytes(a.address), times]));
  });
  const status =
    ia.status === undefined ? [] : [option(OPTION.status, Buffer.from([ia.status >> 8, ia.status & 0xff]))];
  return option(OPTION.iaNa, Buffer.concat([head, ...addresses, ...status]));
}

export function encodeMessage(m: Dhcp6Message): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(((TYPES[m.type] << 24) | (m.xid & 0xff_ffff)) >>> 0, 0);
  const parts: Buffer[] = [head];
  if (m.clientId !== undefined) parts.push(option(OPTION.clientId, unhex(m.clientId)));
  if (m.serverId !== undefined) parts.push(option(OPTION.serverId, unhex(m.serverId)));
  if (m.ia) parts.push(encodeIa(m.ia));
  if (m.requested?.length) {
    const codes = Buffer.alloc(m.requested.length * 2);
    m.requested.forEach((code, i) => codes.writeUInt16BE(code, i * 2));
    parts.push(option(OPTION.requested, codes));
  }
  if (m.elapsed !== undefined) {
    const elapsed = Buffer.alloc(2);
    elapsed.writeUInt16BE(Math.min(m.elapsed, 0xffff), 0);
    parts.push(option(OPTION.elapsed, elapsed));
  }
  return Buffer.concat(parts);
}

/** Each option of `bytes` as [code, value]; one that runs past the end is malformed. */
function* options(bytes: Buffer): Generator<[number, Buffer]> {
  for (let at = 0; at < bytes.length;) {
    if (at + 4 > bytes.length) throw new MalformedMessage('an option header is truncated');
    const code = bytes.readUInt16BE(at);
    const length = bytes.readUInt16BE(at + 2);
    if (at + 4 + length > bytes.length) throw new MalformedMessage(`option ${code} runs past the message`);
    yield [code, bytes.subarray(at + 4, at + 4 + length)];
    at += 4 + length;
  }
}

function need(value: Buffer, length: number, what: string): void {
  if (value.length < length) throw new MalformedMessage(`the ${what} option is shorter than ${length} bytes`);
}

function decodeIa(value: Buffer): IaNa {
  need(value, 12, 'IA_NA');
  const ia: IaNa = { iaid: value.readUInt32BE(0), t1: value.readUInt32BE(4), t2: value.readUInt32BE(8), addresses: [] };
  for (const [code, inner] of options(value.subarray(12))) {
    if (code === OPTION.status) ia.status = statusOf(inner);
    if (code !== OPTION.iaAddress) continue;
    need(inner, 24, 'IA address');
    const address: IaAddress = {
      address: (inner.readBigUInt64BE(0) << 64n) | inner.readBigUInt64BE(8),
      preferredSeconds: inner.readUInt32BE(16),
      validSeconds: inner.readUInt32BE(20),
    };
    for (const [innerCode, status] of options(inner.subarray(24)))
      if (innerCode === OPTION.status) address.status = statusOf(status);
    ia.addresses.push(address);
  }
  return ia;
}

function statusOf(value: Buffer): number {
  need(value, 2, 'status code');
  return value.readUInt16BE(0);
}

/** A server's or client's message; relay messages and unknown types are malformed to a client. */
export function decodeMessage(bytes: Buffer): Dhcp6Message {
  if (bytes.length < 4) throw new MalformedMessage('shorter than a DHCPv6 header');
  const type = TYPE_NAMES.get(bytes[0]!);
  if (!type) throw new MalformedMessage(`message type ${bytes[0]} is not one a client handles`);
  const message: Dhcp6Message = { type, xid: bytes.readUInt32BE(0) & 0xff_ffff };
  for (const [code, value] of options(bytes.subarray(4))) {
    if (code === OPTION.clientId) message.clientId = hex(value);
    else if (code === OPTION.serverId) message.serverId = hex(value);
    else if (code === OPTION.iaNa && !message.ia) message.ia = decodeIa(value);
    else if (code === OPTION.preference && value.length === 1) message.preference = value[0];
    else if (code === OPTION.elapsed && value.length === 2) message.elapsed = value.readUInt16BE(0);
    else if (code === OPTION.status) {
      message.status = statusOf(value);
      message.statusMessage = value.subarray(2).toString('utf8');
    } else if (code === OPTION.dnsServers) {
      if (value.length % 16) throw new MalformedMessage('the DNS servers option is not a list of addresses');
      message.dnsServers = [];
      for (let at = 0; at < value.length; at += 16)
        message.dnsServers.push((value.readBigUInt64BE(at) << 64n) | value.readBigUInt64BE(at + 8));
    } else if (code === OPTION.requested) {
      message.requested = [];
      for (let at = 0; at + 2 <= value.length; at += 2) message.requested.push(value.readUInt16BE(at));
    }
  }
  return message;
}

/** RFC 8415 §11.4: DUID-LL, type 3, hardware type 1 (Ethernet), the MAC. */
export function duidLl(mac: string): string {
  return `00:03:00:01:${mac.toLowerCase()}`;
}

export const DNS_SERVERS_OPTION = OPTION.dnsServers;
