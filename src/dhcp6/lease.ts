// A DHCPv6 lease (one address of an IA_NA) as the client holds it: what the driver answers Docker with, what
// renewals and the release need, and what a restart resumes.
import { formatIp } from '../ip/address';
import { type Dhcp6Message, STATUS } from './message';

export interface Lease6 {
  /** The endpoint's MAC: the frames' source, the link-local address's and the DUID's. */
  mac: string;
  /** The client's DUID (colon hex) and the IA_NA's identifier. */
  duid: string;
  iaid: number;
  /** The leased address, without a prefix length (an IA_NA address is a /128). */
  address: string;
  /** The server's DUID (colon hex): renewals and the release name it. */
  serverId: string;
  preferredSeconds: number;
  validSeconds: number;
  dnsServers: string[];
  /** Epoch milliseconds: when the message that won this lease was sent (RFC 8415 §14.2 counts from there). */
  obtainedAt: number;
  renewAt: number;
  rebindAt: number;
  expiresAt: number;
}

/**
 * The lease a REPLY grants for `iaid`, or why it cannot be used. T1 and T2 of 0 are the client's to choose:
 * ½ and ⅘ of the preferred lifetime (RFC 8415 §21.4's recommendation, as for a server).
 */
export function leaseFromReply(
  reply: Dhcp6Message,
  client: { mac: string; duid: string; iaid: number },
  sentAt: number,
): Lease6 | string {
  if (reply.status !== undefined && reply.status !== STATUS.success)
    return `the server answered status ${reply.status}`;
  if (!reply.serverId) return 'the reply has no server identifier';
  const ia = reply.ia;
  if (!ia || ia.iaid !== client.iaid) return 'the reply has no IA_NA for this client';
  if (ia.status !== undefined && ia.status !== STATUS.success) return `the IA_NA has status ${ia.status}`;
  const given = ia.addresses.find((a) => a.validSeconds > 0 && (a.status ?? STATUS.success) === STATUS.success);
  if (!given) return 'the IA_NA holds no valid address';
  const valid = given.validSeconds;
  const preferred = Math.min(given.preferredSeconds, valid);
  const t1 = ia.t1 > 0 ? ia.t1 : Math.floor(preferred * 0.5);
  const t2 = ia.t2 > 0 ? ia.t2 : Math.floor(preferred * 0.8);
  const rebind = Math.min(Math.max(t2, t1), valid);
  const renew = Math.min(t1, rebind);
  return {
    mac: client.mac,
    duid: client.duid,
    iaid: client.iaid,
    address: formatIp(true, given.address),
    serverId: reply.serverId,
    preferredSeconds: preferred,
    validSeconds: valid,
    dnsServers: (reply.dnsServers ?? []).map((server) => formatIp(true, server)),
    obtainedAt: sentAt,
    renewAt: sentAt + renew * 1000,
    rebindAt: sentAt + rebind * 1000,
    expiresAt: sentAt + valid * 1000,
  };
}
