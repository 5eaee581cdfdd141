// A DHCPv4 lease as the client holds it: what the driver answers Docker with and what renewals need.
import type { ClasslessRoute, DhcpMessage } from './message';

export interface Lease {
  /** The chaddr the lease was asked with: the endpoint's MAC, or its parent's for an ipvlan. */
  mac: string;
  /**
   * The client identifier (option 61) it was asked with, when it is not the MAC's own (type 1 + MAC): the identity of
   * a client whose MAC others share. See clientKey.
   */
  clientId?: string;
  address: string;
  prefixLength: number;
  serverId: string;
  /** Where unicast renewals and releases go: the source MAC of the server's (or relay's) ACK. */
  serverMac: string;
  routers: string[];
  dnsServers: string[];
  classlessRoutes: ClasslessRoute[];
  leaseSeconds: number;
  /** Epoch milliseconds: when the request that won this lease was sent (RFC 2131 §4.4.1 counts from there). */
  obtainedAt: number;
  renewAt: number;
  rebindAt: number;
  expiresAt: number;
}

/** The client identifier a MAC makes: type 1 (Ethernet) and the MAC (RFC 2132 §9.14), in colon hex. */
export function macClientId(mac: string): string {
  return `01:${mac.toLowerCase()}`;
}

/** What tells a client apart from the others of the host: its own client identifier, else its MAC. */
export function clientKey(lease: Pick<Lease, 'mac' | 'clientId'>): string {
  return lease.clientId ?? lease.mac;
}

/** Prefix length of a contiguous netmask, undefined for a non-contiguous one. */
export function prefixLengthOf(mask: string): number | undefined {
  const value = mask.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
  const inverted = ~value >>> 0;
  if ((inverted & (inverted + 1)) !== 0) return undefined;
  return 32 - Math.log2(inverted + 1);
}

/** The lease an ACK grants, or why it cannot be used. Times default as RFC 2131 §4.4.5 says (T1 ½, T2 ⅞). */
export function leaseFromAck(ack: DhcpMessage, serverMac: string, requestSentAt: number): Lease | string {
  if (ack.yiaddr === '0.0.0.0') return 'the ACK assigns no address';
  const serverId = ack.serverId;
  if (!serverId) return 'the ACK has no server identifier (option 54)';
  if (ack.leaseSeconds === undefined) return 'the ACK has no lease time (option 51)';
  const prefixLength = ack.subnetMask === undefined ? undefined : prefixLengthOf(ack.subnetMask);
  if (prefixLength === undefined) return 'the ACK has no usable subnet mask (option 1)';
  const leaseSeconds = ack.leaseSeconds;
  const rebindSeconds = Math.min(ack.rebindingSeconds ?? leaseSeconds * 0.875, leaseSeconds);
  const renewSeconds = Math.min(ack.renewalSeconds ?? leaseSeconds * 0.5, rebindSeconds);
  return {
    mac: ack.chaddr,
    address: ack.yiaddr,
    prefixLength,
    serverId,
    serverMac,
    routers: ack.routers ?? [],
    dnsServers: ack.dnsServers ?? [],
    classlessRoutes: ack.classlessRoutes ?? [],
    leaseSeconds,
    obtainedAt: requestSentAt,
    renewAt: requestSentAt + renewSeconds * 1000,
    rebindAt: requestSentAt + rebindSeconds * 1000,
    expiresAt: requestSentAt + leaseSeconds * 1000,
  };
}
