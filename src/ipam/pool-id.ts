// Docker's PoolID for a pool of this IPAM: readable and stable, made of what defines the pool. A pool whose addresses
// live in the etcd cluster table carries `,cluster`, so it stays cluster-wide across restarts whatever the flags.
import { createHash } from 'node:crypto';
import { PluginError } from '../errors';
import type { Cidr } from '../ip/address';

const POOL_ID_PREFIX = 'tsmacvlan:';
const POOL_ID = /^tsmacvlan:[0-9a-f.:]+\/[0-9]{1,3}(,range=[0-9a-f.:]+\/[0-9]{1,3})?(,opts=[0-9a-f]{8})?(,cluster)?$/;
const CLUSTER_MARK = ',cluster';

/** The subnet, the --ip-range, a digest of --ipam-opt when there are any, and whether it is cluster-wide. */
export function poolIdOf(
  subnet: Cidr,
  range: Cidr | undefined,
  options: Record<string, string>,
  clusterWide = false,
): string {
  let id = `${POOL_ID_PREFIX}${subnet.text}`;
  if (range) id += `,range=${range.text}`;
  const keys = Object.keys(options).sort();
  if (keys.length > 0) {
    const digest = createHash('sha256')
      .update(JSON.stringify(keys.map((k) => [k, options[k]])))
      .digest('hex');
    id += `,opts=${digest.slice(0, 8)}`;
  }
  return clusterWide ? id + CLUSTER_MARK : id;
}

export function isClusterPoolId(poolId: string): boolean {
  return poolId.endsWith(CLUSTER_MARK);
}

/** A PoolID of this IPAM's making, or an error saying what was given instead. */
export function checkPoolId(poolId: string): string {
  if (!POOL_ID.test(poolId)) {
    throw new PluginError(
      `PoolID '${poolId.slice(0, 100)}' was not made by tsmacvlan's IPAM (expected ${POOL_ID_PREFIX}<subnet>[,range=<ip-range>]); was the network created with --ipam-driver tsmacvlan?`,
    );
  }
  return poolId;
}
