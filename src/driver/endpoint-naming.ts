// An endpoint: one container's attachment to a network, and the host-side macvlan or ipvlan link that carries it.
import { createHash } from 'node:crypto';
import type { Lease } from '../dhcp/lease';
import type { Lease6 } from '../dhcp6/lease';
import { isJsonObject } from '../state/record-store';

export const ENDPOINT_PREFIX = 'tsmve';
/** The macvlan that checks, for a moment, whether a parent lists its children's MACs: one per parent index. */
export const listCheckLinkName = (parentIndex: number): string => `tsmvu${parentIndex}`;

export interface EndpointRecord {
  id: string;
  networkId: string;
  /** The MAC its frames carry: its own on a macvlan network, its parent's on an ipvlan network. */
  mac: string;
  ipv4?: string; // CIDR, as Docker gave it
  ipv6?: string;
  /** On a DHCP network: the lease behind ipv4, kept current by renewals. */
  lease?: Lease;
  /** On a DHCP network: the lease the server took back (or moved), after which the container was cut off. */
  leaseLost?: { address: string; reason: string; at: number };
  /**
   * On a DHCP network with IPv6: ipv6 was formed by SLAAC in `prefix`, advertised by `router` (its link-local address,
   * the container's IPv6 gateway); `lost` once the router withdrew or deprecated the prefix, or it expired.
   */
  slaac?: SlaacRecord;
  /**
   * On a DHCP network with IPv6 whose router sends the M flag: ipv6 is the address of this DHCPv6 lease, kept current
   * by renewals; `router` is the advertising router's link-local address (the container's IPv6 gateway).
   */
  dhcp6?: { lease: Lease6; router: string };
  /** The container's network namespace (Join's SandboxKey), where a lost lease removes its interface. */
  sandbox?: string;
  /**
   * On a DHCP network of ipvlans: the index of the link Join made, which the link keeps in the container. A lost lease
   * finds the container's interface by it (an ipvlan's MAC is its parent's, shared by its siblings).
   */
  linkIndex?: number;
  /** Saved by a CreateEndpoint not answered yet; a record still carrying it at start is rolled back. */
  unanswered?: true;
}

export interface SlaacRecord {
  prefix: string;
  router: string;
  lost?: { condition: 'deprecated' | 'withdrawn' | 'expired'; at: number };
}

/** The host-side link name: a fixed prefix (so the plugin's links are recognisable) and the endpoint id, 15 characters. */
export function endpointLinkName(endpointId: string): string {
  return ENDPOINT_PREFIX + endpointId.slice(0, 10);
}

/**
 * A MAC for an endpoint Docker gave none: locally administered, unicast, and the same for the same IPv4 address
 * (02:42 + the four address bytes, as Docker does), so a neighbour's ARP cache stays right across restarts.
 * Without IPv4, derived from the endpoint id.
 */
export function endpointMac(ipv4Cidr: string | undefined, endpointId: string): string {
  const bytes = ipv4Cidr
    ? [0x02, 0x42, ...ipv4Cidr.split('/')[0].split('.').map(Number)]
    : [0x02, ...createHash('sha256').update(endpointId).digest().subarray(0, 5)];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/**
 * The DHCP client identifier (option 61, colon hex) of an endpoint that shares its parent's MAC (ipvlan): RFC 4361's
 * form, type 255, an IAID and a DUID-UUID (RFC 6355) derived from the endpoint id, so the endpoint asks as the same
 * client at every start of the plugin, and no two endpoints ask as one.
 */
export function endpointClientId(endpointId: string): string {
  const hash = createHash('sha256').update(`dhcp client ${endpointId}`).digest();
  const uuid = Buffer.from(hash.subarray(4, 20));
  uuid[6] = (uuid[6]! & 0x0f) | 0x80; // RFC 9562 version 8 (custom), variant 10
  uuid[8] = (uuid[8]! & 0x3f) | 0x80;
  const bytes = [0xff, ...hash.subarray(0, 4), 0x00, 0x04, ...uuid];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** What is wrong with a parsed value as an endpoint record (the check of every reader of endpoints/). */
export function endpointRecordProblem(value: unknown): string | undefined {
  if (!isJsonObject(value)) return 'not a JSON object';
  for (const key of ['id', 'networkId', 'mac'])
    if (typeof value[key] !== 'string' || value[key] === '') return `no '${key}'`;
  return undefined;
}
