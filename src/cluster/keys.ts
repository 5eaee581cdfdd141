// The cluster table's layout in etcd: one key per address in use,
//   <prefix>/v1/subnets/<subnet with _ for />/addresses/<ip>  →  {"claims":[{owner, kind, ref, at}, ...]}
// A container's address has exactly one claim; a gateway or aux address is shared: one claim per instance and
// request, and the last claim released deletes the key. A device claim is an address a device on the LAN answered
// for when a host probed it (kind `device`, with the device's `mac`): every host skips it, and the host that found it
// probes it again later and releases it once it is free. `at` is unique per request, so a claim is found and
// released exactly, whoever else holds the same address.
import { randomBytes } from 'node:crypto';
import { type Cidr, formatIp, parseIp } from '../ip/address';

export type ClaimKind = 'container' | 'gateway' | 'aux' | 'device';

export interface Claim {
  /** The instance (host) that made it. */
  owner: string;
  kind: ClaimKind;
  /** What it is for: the endpoint or request key the caller gave. */
  ref: string;
  /** Unique per request: what crash recovery and releases match. */
  at: string;
  /** A device claim: the MAC that answered the probe. */
  mac?: string;
}

const KINDS: readonly string[] = ['container', 'gateway', 'aux', 'device'];

export function isShared(kind: ClaimKind): boolean {
  return kind === 'gateway' || kind === 'aux';
}

/** A claim's token (`at`): unique per request. */
export function newToken(): string {
  return randomBytes(8).toString('hex');
}

/** Normalises a prefix: one leading slash, none trailing. */
export function normalPrefix(prefix: string): string {
  const trimmed = prefix.replace(/\/+$/, '');
  if (trimmed === '' || !trimmed.startsWith('/') || /\s/.test(trimmed)) {
    throw new Error(`etcd prefix '${prefix}' is not valid: give a path such as /tsmacvlan`);
  }
  return trimmed;
}

export function subnetsPrefix(prefix: string): string {
  return `${prefix}/v1/subnets/`;
}

export function addressesPrefix(prefix: string, subnet: Cidr): string {
  return `${subnetsPrefix(prefix)}${subnet.text.replace('/', '_')}/addresses/`;
}

export function addressKey(prefix: string, subnet: Cidr, value: bigint): string {
  return `${addressesPrefix(prefix, subnet)}${formatIp(subnet.v6, value)}`;
}

/** The address of a key under `addressesPrefix(prefix, subnet)`, or undefined for a key that is not one. */
export function addressOfKey(subnetPrefix: string, subnet: Cidr, key: string): bigint | undefined {
  if (!key.startsWith(subnetPrefix)) return undefined;
  const ip = parseIp(key.slice(subnetPrefix.length));
  return ip && ip.v6 === subnet.v6 ? ip.value : undefined;
}

/** The subnet text of a key under `subnetsPrefix(prefix)` ("10.0.0.0/24"), for listings across subnets. */
export function subnetOfKey(prefix: string, key: string): string | undefined {
  const rest = key.slice(subnetsPrefix(prefix).length);
  const slash = rest.indexOf('/');
  return slash > 0 ? rest.slice(0, slash).replace('_', '/') : undefined;
}

export function encodeClaims(claims: Claim[]): string {
  return JSON.stringify({
    claims: claims.map(({ owner, kind, ref, at, mac }) => ({ owner, kind, ref, at, ...(mac && { mac }) })),
  });
}

function isClaim(c: unknown): c is Claim {
  if (c === null || typeof c !== 'object') return false;
  const o = c as Record<string, unknown>;
  return (
    typeof o.owner === 'string' &&
    typeof o.ref === 'string' &&
    typeof o.at === 'string' &&
    typeof o.kind === 'string' &&
    KINDS.includes(o.kind) &&
    (o.kind === 'device' ? typeof o.mac === 'string' : o.mac === undefined)
  );
}

/**
 * The claims of a stored value. A value this version cannot read is held by someone unknown: returned as undefined,
 * and callers treat the address as taken (fail closed), never as free.
 */
export function decodeClaims(value: string): Claim[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return undefined;
  }
  const claims = (parsed as { claims?: unknown } | null)?.claims;
  if (!Array.isArray(claims) || claims.length === 0 || !claims.every(isClaim)) return undefined;
  const shared = claims.map((c) => isShared(c.kind));
  if (shared.includes(false) && claims.length !== 1) return undefined;
  return claims;
}

/** Who holds an address, for error messages. */
export function describeHolder(claims: Claim[] | undefined): string {
  if (!claims) return 'held by a record this version of tsmacvlan cannot read';
  const [first] = claims;
  if (first.kind === 'device')
    return `a device on the LAN with MAC ${first.mac} answered for it (probed by instance ${first.owner})`;
  if (!isShared(first.kind)) return `held by ${first.ref} on instance ${first.owner}`;
  const kinds = [...new Set(claims.map((c) => c.kind))].join(' and ');
  const owners = [...new Set(claims.map((c) => c.owner))].join(', ');
  return `reserved as ${kinds} by instance ${owners}`;
}
