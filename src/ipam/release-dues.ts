// Releases Docker owes: when the network driver deletes an endpoint, Docker's ReleaseAddress for its address comes
// next. If a crash cut that request short, Docker retries it with an empty body (which cannot be carried out) for
// 30 s at most, then forgets it for good: its store dropped the endpoint before the driver was told. So an address
// whose release is still due after a grace period longer than that is released here, as Docker would have.
import type { Logger } from 'pino';
import { type Cidr, contains, parseIp } from '../ip/address';
import type { ClusterAddresses } from './cluster-addresses';
import { secondsSetting } from '../state/seconds-setting';
import { TimedQueue } from '../state/timed-queue';
import { isClusterPoolId } from './pool-id';
import type { Subnet } from './subnet';
import { type Pool, isEndpointHolder } from './subnet-model';

/** How long after its endpoint is deleted an address waits for Docker's ReleaseAddress (TSMACVLAN_RELEASE_GRACE_S). */
export function releaseGraceMs(env = process.env.TSMACVLAN_RELEASE_GRACE_S): number {
  // Docker retries a request for up to 30 s: a grace shorter than that could release an address while Docker's own
  // release of it is still under way. Tests use a few seconds, so only a positive number is asked for here.
  return secondsSetting('TSMACVLAN_RELEASE_GRACE_S', env, { defaultSeconds: 120 });
}

/** An address whose release is due by `by` (ms since the epoch). */
interface Due {
  subnet: string;
  value: bigint;
  by: number;
}

/** What the IPAM service lends the dues: its subnets, its journal writes, its cluster table. */
export interface DueHost {
  readonly subnets: ReadonlyMap<string, Subnet>;
  readonly cluster: ClusterAddresses;
  /** The address spaces Docker names this IPAM by (GetDefaultAddressSpaces). */
  readonly addressSpaces: readonly string[];
  closed(): boolean;
  /** Saves a journal line (see IpamService.save); `now`: written before any await. */
  save(cidr: Cidr, line: string, options: { undo?: () => void; now?: boolean }): Promise<void>;
  /** Told of an address the IPAM released (probe before use forgets it was given). */
  released(pool: Pool, value: bigint): void;
}

/** The IPAM's releases due: noted when an endpoint goes, ended by Docker's release, applied after the grace. */
export class ReleaseDues {
  private readonly queue: TimedQueue<Due>;
  private readonly graceMs = releaseGraceMs();

  constructor(
    private readonly host: DueHost,
    private readonly log: Logger,
  ) {
    this.queue = new TimedQueue<Due>(
      (due) => this.releaseOverdue(due),
      (err, due) => log.error({ err, subnet: due.subnet }, 'could not release an address whose release was due'),
    );
  }

  /** Queues the dues a subnet's journal held at start. */
  loaded(subnet: Subnet): void {
    for (const [value, by] of subnet.dues) this.queue.add({ subnet: subnet.cidr.text, value, by }, by);
  }

  /**
   * The network driver deleted the endpoint that holds `address` of `subnetText`: Docker's ReleaseAddress for it is
   * due, and is released here if it has not come within the grace period. Only for a network on this IPAM
   * (`addressSpace`, as Docker named it to the driver, is one of ours: a network on another IPAM may share the
   * subnet, and its endpoint's address is not this IPAM's to release) and an address a pool holds as an endpoint's
   * (not a gateway, not a device's). Durable before it resolves.
   */
  async note(subnetText: string, address: string, addressSpace: string | undefined): Promise<void> {
    if (addressSpace === undefined || !this.host.addressSpaces.includes(addressSpace)) return;
    const subnet = this.host.subnets.get(subnetText);
    const ip = parseIp(address);
    if (this.host.closed() || !subnet || !ip || ip.v6 !== subnet.v6 || !contains(subnet.cidr, ip.value)) return;
    const by = Date.now() + this.graceMs;
    const [first] = subnet.pools.values();
    if (first && isClusterPoolId(first.id)) return this.host.cluster.releaseDue(first, ip.value, by);
    const due = subnet.markDue(ip.value, by);
    if (!due) return;
    await this.host.save(subnet.cidr, due.line, { undo: () => subnet.dues.delete(ip.value) });
    this.queue.add({ subnet: subnet.cidr.text, value: ip.value, by }, by);
  }

  /** Releases an address whose release was due by `by` and did not come (a crash cut Docker's short). */
  private async releaseOverdue({ subnet: subnetText, value, by }: Due): Promise<void> {
    const subnet = this.host.subnets.get(subnetText);
    const holder = subnet?.taken.get(value);
    if (this.host.closed() || !subnet || subnet.dues.get(value) !== by || !isEndpointHolder(holder)) return;
    const line = subnet.free(value, holder.pool);
    if (!line) return;
    this.host.released(holder.pool, value);
    this.log.warn(
      { address: subnet.text(value), poolId: holder.pool.id, graceSeconds: this.graceMs / 1000 },
      "released an address whose endpoint was deleted and whose ReleaseAddress never came (a crash cut Docker's short)",
    );
    await this.host.save(subnet.cidr, line, { now: true });
  }

  stop(): void {
    this.queue.stop();
  }
}
