// The DHCP leases of `tsmacvlan status`: one row per lease of an endpoint of a DHCP network (DHCPv4, and DHCPv6 where
// the router sends the M flag), from its record.
import type { EndpointRecord } from '../driver/endpoint-naming';
import { MAC_FIELD } from './schema-fields';

export interface LeaseRow {
  endpointId: string;
  mac: string;
  /** CIDR; for a lost lease, the address it had. */
  address: string;
  /** The server's identifier (DHCPv4's option 54, DHCPv6's server DUID); null for a lost lease. */
  server: string | null;
  /** ISO times; null for a lost lease. */
  expires: string | null;
  nextRenewal: string | null;
  /** Why the lease is gone (nak, expired, declined, changed); null while it holds. */
  lost: string | null;
}

const isoOrNull = { type: ['string', 'null'] } as const;

export const LEASE_ROW_SCHEMA = {
  type: 'object',
  required: ['endpointId', 'mac', 'address', 'server', 'expires', 'nextRenewal', 'lost'],
  additionalProperties: false,
  properties: {
    endpointId: { type: 'string', minLength: 1 },
    mac: MAC_FIELD,
    address: { type: 'string', minLength: 1 },
    server: isoOrNull,
    expires: isoOrNull,
    nextRenewal: isoOrNull,
    lost: isoOrNull,
  },
} as const;

export function leaseRows(endpoints: EndpointRecord[]): LeaseRow[] {
  const rows: LeaseRow[] = [];
  for (const { id, mac, lease, leaseLost, dhcp6, ipv6 } of endpoints) {
    if (dhcp6) {
      const { serverId, expiresAt, renewAt, rebindAt } = dhcp6.lease;
      rows.push({
        endpointId: id,
        mac,
        address: ipv6 ?? dhcp6.lease.address,
        server: serverId,
        expires: new Date(expiresAt).toISOString(),
        nextRenewal: new Date(renewAt > Date.now() ? renewAt : rebindAt).toISOString(),
        lost: null,
      });
    }
    if (lease) {
      rows.push({
        endpointId: id,
        mac,
        address: `${lease.address}/${lease.prefixLength}`,
        server: lease.serverId,
        expires: new Date(lease.expiresAt).toISOString(),
        // The client renews at T1, then rebinds at T2: whichever is still ahead is the next attempt.
        nextRenewal: new Date(lease.renewAt > Date.now() ? lease.renewAt : lease.rebindAt).toISOString(),
        lost: null,
      });
    } else if (leaseLost) {
      const none = { server: null, expires: null, nextRenewal: null };
      rows.push({ endpointId: id, mac, address: leaseLost.address, ...none, lost: leaseLost.reason });
    }
  }
  return rows;
}

/** Table rows for the human-readable report. */
export function leaseCells(rows: LeaseRow[]): string[][] {
  return rows.map((l) => [
    l.endpointId.slice(0, 12),
    l.address,
    l.mac,
    l.server ?? '-',
    l.expires ?? `lost (${l.lost})`,
    l.nextRenewal ?? '-',
  ]);
}

export const LEASE_HEADER = ['ENDPOINT', 'LEASED', 'MAC', 'SERVER', 'EXPIRES', 'NEXT RENEWAL'];
