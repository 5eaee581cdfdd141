// The DHCPv4 message (RFC 2131 BOOTP header, RFC 2132 options, RFC 3442 classless routes): encoded for sending,
// decoded from received payloads. Pure; a malformed or truncated message throws MalformedMessage.
import { ipv4Bytes, ipv4String, macBytes, macString } from './frame';

export class MalformedMessage extends Error {}

export const SERVER_PORT = 67;
export const CLIENT_PORT = 68;

export const MessageType = { discover: 1, offer: 2, request: 3, decline: 4, ack: 5, nak: 6, release: 7 } as const;
export type MessageTypeName = keyof typeof MessageType;

export interface ClasslessRoute {
  /** CIDR, e.g. 10.2.0.0/16 */
  destination: string;
  gateway: string;
}

export interface DhcpOptions {
  requestedAddress?: string; // 50
  serverId?: string; // 54
  leaseSeconds?: number; // 51
  renewalSeconds?: number; // 58 (T1)
  rebindingSeconds?: number; // 59 (T2)
  subnetMask?: string; // 1
  routers?: string[]; // 3
  dnsServers?: string[]; // 6
  classlessRoutes?: ClasslessRoute[]; // 121
  /** 61: the option's bytes in colon hex, as dnsmasq writes them (type 1, Ethernet, + MAC: 01:02:42:0a:00:00:05). */
  clientId?: string;
  parameterRequestList?: number[]; // 55
  hostname?: string; // 12
  message?: string; // 56
}

export interface DhcpMessage extends DhcpOptions {
  op: 'request' | 'reply';
  type: MessageTypeName;
  xid: number;
  secs: number;
  broadcast: boolean;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  chaddr: string;
}

const HEADER = 236;
const MAGIC_COOKIE = 0x63825363;
const MINIMUM_BOOTP = 300; // some servers and relays drop shorter messages (RFC 1542)

const Opt = {
  pad: 0,
  subnetMask: 1,
  routers: 3,
  dnsServers: 6,
  hostname: 12,
  requestedAddress: 50,
  leaseSeconds: 51,
  overload: 52,
  messageType: 53,
  serverId: 54,
  parameterRequestList: 55,
  message: 56,
  renewalSeconds: 58,
  rebindingSeconds: 59,
  clientId: 61,
  classlessRoutes: 121,
  end: 255,
} as const;

/** Bytes in colon hex (01:02:42:0a:00:00:05), as MACs and DHCP client identifiers are written. */
export function hexString(bytes: Buffer): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

function hexBytes(text: string): Buffer {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2})+$/i.test(text)) throw new RangeError(`${text} is not bytes in colon hex`);
  return Buffer.from(text.replace(/:/g, ''), 'hex');
}

function option(code: number, value: Buffer): Buffer {
  if (value.length > 255) throw new RangeError(`option ${code} is longer than 255 bytes`);
  return Buffer.concat([Buffer.from([code, value.length]), value]);
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const addresses = (list: string[]): Buffer => Buffer.concat(list.map(ipv4Bytes));

function encodeRoutes(routes: ClasslessRoute[]): Buffer {
  return Buffer.concat(
    routes.map(({ destination, gateway }) => {
      const [network, lengthText] = destination.split('/');
      const width = Number(lengthText);
      if (!Number.isInteger(width) || width < 0 || width > 32) throw new RangeError(`${destination} is not a CIDR`);
      const significant = ipv4Bytes(network!).subarray(0, Math.ceil(width / 8));
      return Buffer.concat([Buffer.from([width]), significant, ipv4Bytes(gateway)]);
    }),
  );
}

function encodeOptions(m: DhcpMessage): Buffer {
  const parts = [option(Opt.messageType, Buffer.from([MessageType[m.type]]))];
  const add = (code: number, value: Buffer | undefined) => value && parts.push(option(code, value));
  const ip = (a: string | undefined) => (a === undefined ? undefined : ipv4Bytes(a));
  const n = (v: number | undefined) => (v === undefined ? undefined : u32(v));
  add(Opt.clientId, m.clientId === undefined ? undefined : hexBytes(m.clientId));
  add(Opt.requestedAddress, ip(m.requestedAddress));
  add(Opt.serverId, ip(m.serverId));
  add(Opt.leaseSeconds, n(m.leaseSeconds));
  add(Opt.renewalSeconds, n(m.renewalSeconds));
  add(Opt.rebindingSeconds, n(m.rebindingSeconds));
  add(Opt.subnetMask, ip(m.subnetMask));
  add(Opt.routers, m.routers && addresses(m.routers));
  add(Opt.dnsServers, m.dnsServers && addresses(m.dnsServers));
  add(Opt.classlessRoutes, m.classlessRoutes && encodeRoutes(m.classlessRoutes));
  add(Opt.hostname, m.hostname === undefined ? undefined : Buffer.from(m.hostname, 'utf8'));
  add(Opt.message, m.message === undefined ? undefined : Buffer.from(m.message, 'utf8'));
  add(Opt.parameterRequestList, m.parameterRequestList && Buffer.from(m.parameterRequestList));
  parts.push(Buffer.from([Opt.end]));
  return Buffer.concat(parts);
}

export function encodeMessage(m: DhcpMessage): Buffer {
  const header = Buffer.alloc(HEADER + 4);
  header[0] = m.op === 'request' ? 1 : 2;
  header[1] = 1; // Ethernet
  header[2] = 6;
  header.writeUInt32BE(m.xid >>> 0, 4);
  header.writeUInt16BE(m.secs, 8);
  header.writeUInt16BE(m.broadcast ? 0x8000 : 0, 10);
  ipv4Bytes(m.ciaddr).copy(header, 12);
  ipv4Bytes(m.yiaddr).copy(header, 16);
  ipv4Bytes(m.siaddr).copy(header, 20);
  ipv4Bytes(m.giaddr).copy(header, 24);
  macBytes(m.chaddr).copy(header, 28);
  header.writeUInt32BE(MAGIC_COOKIE, HEADER);
  const message = Buffer.concat([header, encodeOptions(m)]);
  return message.length >= MINIMUM_BOOTP
    ? message
    : Buffer.concat([message, Buffer.alloc(MINIMUM_BOOTP - message.length)]);
}

/** Option code → value, in order; the end option stops, pads are skipped. */
function readOptions(bytes: Buffer): Map<number, Buffer> {
  const found = new Map<number, Buffer>();
  let i = 0;
  while (i < bytes.length) {
    const code = bytes[i]!;
    if (code === Opt.end) return found;
    if (code === Opt.pad) {
      i++;
      continue;
    }
    if (i + 1 >= bytes.length || i + 2 + bytes[i + 1]! > bytes.length)
      throw new MalformedMessage(`option ${code} is truncated`);
    const value = bytes.subarray(i + 2, i + 2 + bytes[i + 1]!);
    // RFC 3396: a repeated option continues the previous one.
    found.set(code, found.has(code) ? Buffer.concat([found.get(code)!, value]) : value);
    i += 2 + value.length;
  }
  throw new MalformedMessage('the options have no end option');
}

function addressList(code: number, value: Buffer): string[] {
  if (value.length === 0 || value.length % 4)
    throw new MalformedMessage(`option ${code} is not a list of IPv4 addresses`);
  return Array.from({ length: value.length / 4 }, (_, k) => ipv4String(value, 4 * k));
}

function oneAddress(code: number, value: Buffer): string {
  if (value.length !== 4) throw new MalformedMessage(`option ${code} is not one IPv4 address`);
  return ipv4String(value);
}

function seconds(code: number, value: Buffer): number {
  if (value.length !== 4) throw new MalformedMessage(`option ${code} is not a 32-bit time`);
  return value.readUInt32BE();
}

function decodeRoutes(value: Buffer): ClasslessRoute[] {
  const routes: ClasslessRoute[] = [];
  for (let i = 0; i < value.length;) {
    const width = value[i]!;
    const significant = Math.ceil(width / 8);
    if (width > 32 || i + 1 + significant + 4 > value.length) throw new MalformedMessage('option 121 is malformed');
    const network = Buffer.alloc(4);
    value.copy(network, 0, i + 1, i + 1 + significant);
    routes.push({ destination: `${ipv4String(network)}/${width}`, gateway: ipv4String(value, i + 1 + significant) });
    i += 1 + significant + 4;
  }
  return routes;
}

function decodeOptions(options: Map<number, Buffer>): DhcpOptions {
  const decoded: DhcpOptions = {};
  for (const [code, value] of options) {
    if (code === Opt.requestedAddress) decoded.requestedAddress = oneAddress(code, value);
    else if (code === Opt.serverId) decoded.serverId = oneAddress(code, value);
    else if (code === Opt.subnetMask) decoded.subnetMask = oneAddress(code, value);
    else if (code === Opt.leaseSeconds) decoded.leaseSeconds = seconds(code, value);
    else if (code === Opt.renewalSeconds) decoded.renewalSeconds = seconds(code, value);
    else if (code === Opt.rebindingSeconds) decoded.rebindingSeconds = seconds(code, value);
    else if (code === Opt.routers) decoded.routers = addressList(code, value);
    else if (code === Opt.dnsServers) decoded.dnsServers = addressList(code, value);
    else if (code === Opt.classlessRoutes) decoded.classlessRoutes = decodeRoutes(value);
    else if (code === Opt.hostname) decoded.hostname = value.toString('utf8');
    else if (code === Opt.message) decoded.message = value.toString('utf8');
    else if (code === Opt.parameterRequestList) decoded.parameterRequestList = [...value];
    else if (code === Opt.clientId && value.length >= 2) decoded.clientId = hexString(value);
  }
  return decoded;
}

export function decodeMessage(payload: Buffer): DhcpMessage {
  if (payload.length < HEADER + 4) throw new MalformedMessage(`a DHCP message of ${payload.length} bytes is truncated`);
  if (payload.readUInt32BE(HEADER) !== MAGIC_COOKIE) throw new MalformedMessage('no DHCP magic cookie');
  if (payload[1] !== 1 || payload[2] !== 6) throw new MalformedMessage('not an Ethernet hardware address');
  const op = payload[0];
  if (op !== 1 && op !== 2) throw new MalformedMessage(`BOOTP op ${op} is unknown`);
  const options = readOptions(payload.subarray(HEADER + 4));
  // The sname and file fields may carry options too (52); no server on a LAN needs that for a lease.
  if (options.has(Opt.overload)) throw new MalformedMessage('option overload (52) is not supported');
  const typeCode = options.get(Opt.messageType);
  const type = (Object.keys(MessageType) as MessageTypeName[]).find((name) => MessageType[name] === typeCode?.[0]);
  if (!type || typeCode!.length !== 1) throw new MalformedMessage('no valid DHCP message type (option 53)');
  return {
    op: op === 1 ? 'request' : 'reply',
    type,
    xid: payload.readUInt32BE(4),
    secs: payload.readUInt16BE(8),
    broadcast: (payload.readUInt16BE(10) & 0x8000) !== 0,
    ciaddr: ipv4String(payload, 12),
    yiaddr: ipv4String(payload, 16),
    siaddr: ipv4String(payload, 20),
    giaddr: ipv4String(payload, 24),
    chaddr: macString(payload, 28),
    ...decodeOptions(options),
  };
}
