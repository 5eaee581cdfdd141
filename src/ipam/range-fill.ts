// How full each dynamic range is: what an operator watches before a range runs out (the metrics' allocated and
// capacity gauges, and `tsmacvlan status`). A range is a pool's --ip-range, or its whole subnet when it has none;
// pools with the same range share it, and its fill counts every address in it that is in use, whoever holds it.
import type { SubnetModel } from './subnet-model';

export interface RangeFill {
  subnet: string;
  /** The --ip-range, or the subnet itself for pools without one. */
  range: string;
  /** host: this host's addresses; cluster: every host's, from the etcd table (cluster-wide pools only). */
  scope: 'host' | 'cluster';
  /** Addresses of the range in use: containers' and any gateway or aux address that falls in it. */
  allocated: number;
  /** Assignable addresses of the range (network and broadcast addresses excluded). */
  capacity: bigint;
}

/** The ranges of a subnet whose addresses this host keeps (local pools): counts the subnet keeps as it goes. */
export function localRangeFills(subnet: SubnetModel): RangeFill[] {
  return [...subnet.lanes.values()].map((lane) => ({
    subnet: subnet.cidr.text,
    range: lane.key || subnet.cidr.text,
    scope: 'host',
    allocated: lane.inUse,
    capacity: lane.size,
  }));
}
