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

/** The ranges of a subnet whose addresses this host keeps (local pools), from one pass over its addresses in use. */
export function localRangeFills(subnet: SubnetModel): RangeFill[] {
  const lanes = [...subnet.lanes.values()];
  const allocated = lanes.map(() => 0);
  for (const value of subnet.taken.keys()) {
    lanes.forEach((lane, i) => {
      if (value >= lane.lo && value <= lane.hi) allocated[i]++;
    });
  }
  return lanes.map((lane, i) => ({
    subnet: subnet.cidr.text,
    range: lane.key || subnet.cidr.text,
    scope: 'host',
    allocated: allocated[i],
    capacity: lane.size,
  }));
}
