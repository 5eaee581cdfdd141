// The SLAAC addresses of `tsmacvlan status`: one row per endpoint of a DHCP network with IPv6, from its record, with
// what became of its prefix (the router may withdraw or deprecate it, or let it expire; the container keeps it).
import type { EndpointRecord } from '../driver/endpoint-naming';
import { MAC_FIELD } from './schema-fields';

export interface SlaacRow {
  endpointId: string;
  mac: string;
  /** CIDR */
  address: string;
  prefix: string;
  /** The advertising router's link-local address: the container's IPv6 gateway. */
  router: string;
  /** `valid` while the router offers the prefix. */
  prefixState: 'valid' | 'deprecated' | 'withdrawn' | 'expired';
  /** ISO time the prefix was seen lost; null while valid. */
  since: string | null;
}

export const SLAAC_ROW_SCHEMA = {
  type: 'object',
  required: ['endpointId', 'mac', 'address', 'prefix', 'router', 'prefixState', 'since'],
  additionalProperties: false,
  properties: {
    endpointId: { type: 'string', minLength: 1 },
    mac: MAC_FIELD,
    address: { type: 'string', minLength: 1 },
    prefix: { type: 'string', minLength: 1 },
    router: { type: 'string', minLength: 1 },
    prefixState: { enum: ['valid', 'deprecated', 'withdrawn', 'expired'] },
    since: { type: ['string', 'null'] },
  },
} as const;

export function slaacRows(endpoints: EndpointRecord[]): SlaacRow[] {
  const rows: SlaacRow[] = [];
  for (const { id, mac, ipv6, slaac } of endpoints) {
    if (!slaac || !ipv6) continue;
    rows.push({
      endpointId: id,
      mac,
      address: ipv6,
      prefix: slaac.prefix,
      router: slaac.router,
      prefixState: slaac.lost?.condition ?? 'valid',
      since: slaac.lost ? new Date(slaac.lost.at).toISOString() : null,
    });
  }
  return rows;
}

export const SLAAC_HEADER = ['ENDPOINT', 'SLAAC ADDRESS', 'MAC', 'PREFIX', 'ROUTER', 'PREFIX STATE'];

export function slaacCells(rows: SlaacRow[]): string[][] {
  return rows.map((r) => [
    r.endpointId.slice(0, 12),
    r.address,
    r.mac,
    r.prefix,
    r.router,
    r.since ? `${r.prefixState} since ${r.since}` : r.prefixState,
  ]);
}
