// The SLAAC addresses of `tsmacvlan status`: one row per endpoint of a DHCP network with IPv6, from its record, with
// what became of its prefix (the router may withdraw or deprecate it, or let it expire; the container keeps it). And
// the same loss for the pools of --ipam-opt ipv6=slaac, from their journals: on their networks and on the endpoints
// holding addresses in them.
import type { EndpointRecord } from '../driver/endpoint-naming';
import type { NetworkRecord } from '../driver/network-options';
import { MAC_FIELD } from './schema-fields';
import type { PoolRow } from './state-snapshot';

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

/** A prefix the router no longer offers, where a network's pool or an endpoint's address is in it. */
export interface PrefixLossRow {
  prefix: string;
  /** The parent whose router advertised it. */
  parent: string;
  state: 'deprecated' | 'withdrawn' | 'expired';
  /** ISO time the loss was seen. */
  since: string;
}

export const PREFIX_LOSS_SCHEMA = {
  oneOf: [
    { type: 'null' },
    {
      type: 'object',
      required: ['prefix', 'parent', 'state', 'since'],
      additionalProperties: false,
      properties: {
        prefix: { type: 'string', minLength: 1 },
        parent: { type: 'string', minLength: 1 },
        state: { enum: ['deprecated', 'withdrawn', 'expired'] },
        since: { type: 'string', minLength: 1 },
      },
    },
  ],
} as const;

/** The lost prefixes of pools of ipv6=slaac, by subnet ("fd00:1::/64"). */
export function lostPoolPrefixes(pools: PoolRow[]): Map<string, PrefixLossRow> {
  const lost = new Map<string, PrefixLossRow>();
  for (const { pool, routerPrefix: r } of pools)
    if (r && r.state !== 'valid' && !lost.has(pool))
      lost.set(pool, { prefix: pool, parent: r.parent, state: r.state, since: r.since! });
  return lost;
}

/** The lost prefix of a network's IPv6 pool, on that network's parent. */
export function networkPrefixLoss(network: NetworkRecord, lost: Map<string, PrefixLossRow>): PrefixLossRow | null {
  const loss = network.ipv6?.pool ? lost.get(network.ipv6.pool) : undefined;
  return loss?.parent === network.parent ? loss : null;
}

/** The lost prefix an endpoint's IPv6 address is in: its SLAAC prefix's (DHCP networks), else its network pool's. */
export function endpointPrefixLoss(
  endpoint: EndpointRecord,
  network: NetworkRecord | undefined,
  lost: Map<string, PrefixLossRow>,
): PrefixLossRow | null {
  const { slaac } = endpoint;
  if (slaac?.lost && network)
    return {
      prefix: slaac.prefix,
      parent: network.parent,
      state: slaac.lost.condition,
      since: new Date(slaac.lost.at).toISOString(),
    };
  return endpoint.ipv6 && network ? networkPrefixLoss(network, lost) : null;
}

/** A cell's note of a loss: " (prefix withdrawn)". */
export function lossNote(loss: PrefixLossRow | null): string {
  return loss ? ` (prefix ${loss.state})` : '';
}
