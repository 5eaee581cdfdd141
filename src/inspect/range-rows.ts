// The range fill of `tsmacvlan status`: the figures the metrics export (tsmacvlan_ipam_addresses_allocated and
// _capacity), for the operator without Prometheus. Local pools' come from their journals; cluster-wide pools' from
// etcd, with status --etcd.
import type { SubnetView } from '../cluster/view';
import { parseCidr } from '../ip/address';
import { rangeBounds } from '../ipam/dynamic-range';
import { localRangeFills } from '../ipam/range-fill';
import type { SubnetModel } from '../ipam/subnet-model';
import { isClusterPoolId } from '../ipam/pool-id';

export interface RangeRow {
  subnet: string;
  /** The --ip-range, or the subnet itself for pools without one. */
  range: string;
  /** host: this host's addresses; cluster: every host's (cluster-wide pools). */
  scope: 'host' | 'cluster';
  /** Addresses of the range in use; null for a cluster-wide pool's when etcd was not asked (status without --etcd). */
  allocated: number | null;
  /** Assignable addresses (a string: IPv6 ranges are huge). */
  capacity: string;
}

export const RANGE_ROW_SCHEMA = {
  type: 'object',
  required: ['subnet', 'range', 'scope', 'allocated', 'capacity'],
  additionalProperties: false,
  properties: {
    subnet: { type: 'string', minLength: 1 },
    range: { type: 'string', minLength: 1 },
    scope: { enum: ['host', 'cluster'] },
    allocated: { type: ['integer', 'null'], minimum: 0 },
    capacity: { type: 'string', pattern: '^[0-9]+$' },
  },
} as const;

/** A subnet's ranges as its journal holds them: filled for local pools, awaiting etcd for cluster-wide ones. */
export function rangeRows(subnet: SubnetModel): RangeRow[] {
  if (![...subnet.pools.keys()].some(isClusterPoolId))
    return localRangeFills(subnet).map((fill) => ({ ...fill, capacity: String(fill.capacity) }));
  return [...subnet.lanes.values()].flatMap((lane) =>
    (['host', 'cluster'] as const).map((scope) => ({
      subnet: subnet.cidr.text,
      range: lane.key || subnet.cidr.text,
      scope,
      allocated: null,
      capacity: String(lane.size),
    })),
  );
}

/** Fills the cluster-wide rows from etcd's views of the subnets (a subnet without a view holds nothing). */
export function fillClusterRows(rows: RangeRow[], views: SubnetView[], instance: string | undefined): RangeRow[] {
  const bySubnet = new Map(views.map((view) => [view.subnet.text, view]));
  return rows.map((row) => {
    if (row.allocated !== null) return row;
    const subnet = parseCidr(row.subnet);
    const range = parseCidr(row.range);
    if (!subnet.ok || !range.ok) return row;
    const { lo, hi } = rangeBounds(subnet.cidr, row.range === row.subnet ? undefined : range.cidr);
    const fill = bySubnet.get(row.subnet)?.fill(lo, hi, instance ?? '') ?? { held: 0, mine: 0 };
    return { ...row, allocated: row.scope === 'host' ? fill.mine : fill.held };
  });
}

/** Table rows for the human-readable report: how full, in addresses and in percent. */
export function rangeCells(rows: RangeRow[]): string[][] {
  return rows.map((r) => [
    r.subnet,
    r.range,
    r.scope,
    r.allocated === null ? '- (give --etcd)' : String(r.allocated),
    r.capacity,
    r.allocated === null ? '-' : percent(r.allocated, r.capacity),
  ]);
}

export const RANGE_HEADER = ['SUBNET', 'RANGE', 'SCOPE', 'ALLOCATED', 'CAPACITY', 'FULL'];

function percent(allocated: number, capacity: string): string {
  const size = Number(capacity);
  return size > 0 ? `${((100 * allocated) / size).toFixed(1)}%` : '-';
}
