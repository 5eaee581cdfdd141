// IP addresses as BigInt: strict parsing of what Docker and users send, canonical text, subnet arithmetic.

export interface Ip {
  v6: boolean;
  value: bigint;
}

/** A prefix with its host bits cleared. */
export interface Cidr {
  v6: boolean;
  base: bigint;
  prefix: number;
  /** Number of addresses it spans. */
  size: bigint;
  /** Last address it spans. */
  last: bigint;
  /** Canonical text, e.g. "10.79.0.0/24" or "fd00:79::/64". */
  text: string;
}

const V4_PART = /^(0|[1-9][0-9]{0,2})$/;
const V6_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseV4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!V4_PART.test(part)) return undefined; // no sign, no spaces, no octal-looking leading zeros
    const byte = Number(part);
    if (byte > 255) return undefined;
    value = value * 256 + byte;
  }
  return BigInt(value);
}

function parseGroups(text: string): number[] | undefined {
  if (text === '') return [];
  const groups = text.split(':');
  const out: number[] = [];
  for (const group of groups) {
    if (!V6_GROUP.test(group)) return undefined;
    out.push(parseInt(group, 16));
  }
  return out;
}

function parseV6(input: string): bigint | undefined {
  if (input.length > 45 || !/^[0-9a-fA-F:.]+$/.test(input)) return undefined;
  let text = input;
  let low32: bigint | undefined;
  if (text.includes('.')) {
    // An embedded IPv4 address may only be the last 32 bits ("::ffff:10.0.0.1").
    const colon = text.lastIndexOf(':');
    if (colon < 0) return undefined;
    low32 = parseV4(text.slice(colon + 1));
    if (low32 === undefined) return undefined;
    text = `${text.slice(0, colon + 1)}0:0`;
  }
  const gap = text.indexOf('::');
  let groups: number[];
  if (gap < 0) {
    const all = parseGroups(text);
    if (!all || all.length !== 8) return undefined;
    groups = all;
  } else {
    if (text.indexOf('::', gap + 1) >= 0) return undefined;
    const head = parseGroups(text.slice(0, gap));
    const tail = parseGroups(text.slice(gap + 2));
    if (!head || !tail || head.length + tail.length > 7) return undefined;
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  let value = 0n;
  for (const group of groups) value = (value << 16n) | BigInt(group);
  if (low32 !== undefined) value |= low32;
  return value;
}

/** Parses a bare IPv4 or IPv6 address; undefined when it is not one (zones, prefixes and spaces are not addresses). */
export function parseIp(text: string): Ip | undefined {
  if (text.includes(':')) {
    const value = parseV6(text);
    return value === undefined ? undefined : { v6: true, value };
  }
  const value = parseV4(text);
  return value === undefined ? undefined : { v6: false, value };
}

function formatV4(value: bigint): string {
  const n = Number(value);
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** RFC 5952 text: lower case, no leading zeros, the longest run of two or more zero groups (the first on a tie) as "::". */
function formatV6(value: bigint): string {
  const groups: number[] = new Array(8);
  for (let i = 7; i >= 0; i--) {
    groups[i] = Number(value & 0xffffn);
    value >>= 16n;
  }
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) =>
    groups
      .slice(from, to)
      .map((g) => g.toString(16))
      .join(':');
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}

export function formatIp(v6: boolean, value: bigint): string {
  return v6 ? formatV6(value) : formatV4(value);
}

export function bitsOf(v6: boolean): number {
  return v6 ? 128 : 32;
}

export function makeCidr(v6: boolean, base: bigint, prefix: number): Cidr {
  const size = 1n << BigInt(bitsOf(v6) - prefix);
  return { v6, base, prefix, size, last: base + size - 1n, text: `${formatIp(v6, base)}/${prefix}` };
}

export type CidrResult = { ok: true; cidr: Cidr } | { ok: false; why: string };

/**
 * Parses "address/prefix". The address must be the first of its prefix: "10.79.0.5/24" is refused with a
 * suggestion rather than silently becoming 10.79.0.0/24.
 */
export function parseCidr(text: string): CidrResult {
  const slash = text.indexOf('/');
  if (slash < 0) return { ok: false, why: 'it has no prefix length (expected address/length, e.g. 10.79.0.0/24)' };
  const ip = parseIp(text.slice(0, slash));
  if (!ip) return { ok: false, why: `'${text.slice(0, slash)}' is not an IPv4 or IPv6 address` };
  const lengthText = text.slice(slash + 1);
  const bits = bitsOf(ip.v6);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lengthText) || Number(lengthText) > bits) {
    return { ok: false, why: `the prefix length '${lengthText}' is not a number from 0 to ${bits}` };
  }
  const prefix = Number(lengthText);
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  const base = ip.value & ~hostMask;
  if (base !== ip.value) {
    return { ok: false, why: `it has host bits set; did you mean ${formatIp(ip.v6, base)}/${prefix}?` };
  }
  return { ok: true, cidr: makeCidr(ip.v6, base, prefix) };
}

export function contains(outer: Cidr, value: bigint): boolean {
  return value >= outer.base && value <= outer.last;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.v6 === b.v6 && a.base <= b.last && b.base <= a.last;
}

/**
 * Addresses of a subnet that may be handed out: not the network address (IPv4) or the subnet-router anycast
 * address (IPv6), not the IPv4 broadcast address. /31 and /127 use both addresses (RFC 3021, RFC 6164); /32 and
 * /128 their single address.
 */
export function usableBounds(subnet: Cidr): { lo: bigint; hi: bigint } {
  const hostBits = bitsOf(subnet.v6) - subnet.prefix;
  if (hostBits <= 1) return { lo: subnet.base, hi: subnet.last };
  return { lo: subnet.base + 1n, hi: subnet.v6 ? subnet.last : subnet.last - 1n };
}

/** Why `value` may not be assigned at all in `cidr` (a pool of id `poolId`), or undefined. */
export function unusableReason(cidr: Cidr, value: bigint, poolId: string): string | undefined {
  const { lo, hi } = usableBounds(cidr);
  const text = (v: bigint) => formatIp(cidr.v6, v);
  const allowed =
    lo === hi ? `the only usable address is ${text(lo)}` : `usable addresses are ${text(lo)} to ${text(hi)}`;
  if (!contains(cidr, value)) return `${text(value)} is not in subnet ${cidr.text} of pool ${poolId} (${allowed})`;
  if (value < lo) {
    const what = cidr.v6 ? 'subnet-router anycast address' : 'network address';
    return `${text(value)} is the ${what} of subnet ${cidr.text} and cannot be assigned (${allowed})`;
  }
  if (value > hi)
    return `${text(value)} is the broadcast address of subnet ${cidr.text} and cannot be assigned (${allowed})`;
  return undefined;
}
