// Addresses of cluster-wide pools: taken from and released to the etcd allocation table (src/cluster/) instead of
// the local journal. The pool itself (RequestPool/ReleasePool) stays in the local journal, since Docker's pool ids
// are per host. A pool maps to the table by its subnet alone: every host's pool of one subnet draws from that
// subnet's keys, each from its own --ip-range (or the same one). Each claim's ref is the pool id, which
// ReleaseAddress names again, so a release removes exactly this pool's claim, whoever else holds the address.
import type { ClaimKind } from '../cluster/keys';
import type { ClusterTable } from '../cluster/table';
import type { RangeHolding } from '../cluster/view';
import { PluginError } from '../errors';
import type { DynamicRange } from './dynamic-range';
import type { Pool, SubnetModel } from './subnet-model';

/** --ipam-opt scope=host keeps a pool on this host (the local journal); scope=cluster asks for the default. */
export const SCOPE_OPTION = 'scope';

/** Whether a new pool with `options` is cluster-wide, or an error when the option cannot be honoured. */
export function wantsCluster(options: Record<string, string>, etcdConfigured: boolean): boolean {
  const scope = options[SCOPE_OPTION];
  if (scope === undefined) return etcdConfigured;
  if (scope === 'host') return false;
  if (scope !== 'cluster') {
    throw new PluginError(`--ipam-opt scope=${scope} is not known: give scope=host or scope=cluster`);
  }
  if (!etcdConfigured) {
    throw new PluginError(
      `--ipam-opt scope=cluster needs etcd, but tsmacvlan runs without --etcd (TSMACVLAN_ETCD); start it with --etcd http://HOST:2379, or leave the option out`,
    );
  }
  return true;
}

export class ClusterAddresses {
  constructor(private readonly table: ClusterTable | undefined) {}

  tableFor(pool: Pool): ClusterTable {
    if (!this.table) {
      throw new PluginError(
        `pool ${pool.id} is cluster-wide (its addresses are kept in etcd), but tsmacvlan runs without --etcd (TSMACVLAN_ETCD); start it again with the etcd settings it had`,
      );
    }
    return this.table;
  }

  /**
   * Takes `address` (gateway, aux, --ip) or, when undefined, a free one of the pool's range, each candidate checked
   * by `vet` first when given (probe before use); `taken` hears of the address as the take ends.
   */
  take(
    pool: Pool,
    address: bigint | undefined,
    kind: ClaimKind,
    vet?: (candidate: bigint) => Promise<string | undefined>,
    taken?: (address: bigint) => void,
  ): Promise<bigint> {
    const request = { ...this.range(pool), kind, ...(vet && { vet }), ...(taken && { taken }) };
    return this.tableFor(pool).take(address === undefined ? request : { ...request, address });
  }

  /** The candidates the pool's next dynamic takes would try (probed ahead of need). */
  upcoming(pool: Pool, n: number): Promise<bigint[]> {
    return this.tableFor(pool).upcoming({ ...this.range(pool), kind: 'container' }, n);
  }

  private range(pool: Pool): { subnet: Pool['subnet']['cidr']; lo: bigint; hi: bigint; ref: string } {
    return { subnet: pool.subnet.cidr, lo: pool.lane.lo, hi: pool.lane.hi, ref: pool.id };
  }

  /** The pool's last ReleasePool: every claim of this host under it goes, durable before it resolves. */
  releasePool(pool: Pool): Promise<void> {
    return this.tableFor(pool).releasePool(pool.subnet.cidr, pool.id);
  }

  /** The endpoint holding `address` is gone: its claim is released at `by` unless released before (see the table). */
  releaseDue(pool: Pool, address: bigint, by: number): Promise<void> {
    return this.tableFor(pool).releaseDue(pool.subnet.cidr, address, by);
  }

  /** This host's claims of the pool's subnet that Docker forgot (see ClusterTable.releaseForgotten). */
  releaseForgotten(
    pool: Pool,
    address: bigint | undefined,
    forgotten: (address: bigint) => boolean,
  ): Promise<bigint[]> {
    return this.tableFor(pool).releaseForgotten(pool.subnet.cidr, address, forgotten);
  }

  /** How full a range of a cluster-wide subnet is, without waiting: undefined while its view loads, or without etcd. */
  fill(subnet: SubnetModel, lane: DynamicRange): RangeHolding | undefined {
    return this.table?.fill(subnet.cidr, lane.lo, lane.hi);
  }

  /** Durable before it resolves; false when the table shows no claim of this pool on `address`. */
  release(pool: Pool, address: bigint): Promise<boolean> {
    return this.tableFor(pool).release(pool.subnet.cidr, address, pool.id);
  }
}
