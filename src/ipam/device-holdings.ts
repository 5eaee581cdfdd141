// Addresses held by devices on the LAN are probed again, every so often: one whose device no longer answers is
// freed (a local device holding is released in the journal, a device claim in the cluster table by the host that
// made it), and the range hands it out again in its turn.
import type { Logger } from 'pino';
import type { ClusterTable } from '../cluster/table';
import type { Neighbourhood } from '../probe/neighbourhood';
import { secondsSetting } from '../state/seconds-setting';
import { isClusterPoolId } from './pool-id';
import type { Subnet } from './subnet';
import type { Pool } from './subnet-model';

/** How often held addresses are probed again: TSMACVLAN_PROBE_RECHECK_SECONDS, default 300. */
export function recheckMs(env: NodeJS.ProcessEnv = process.env): number {
  const name = 'TSMACVLAN_PROBE_RECHECK_SECONDS';
  return secondsSetting(name, env[name], { defaultSeconds: 300, max: 1_000_000 });
}

/** Probes under way at once during a recheck. */
const AT_ONCE = 8;

export interface HoldingsSource {
  subnets(): Iterable<Subnet>;
  pools(): Iterable<Pool>;
  table: ClusterTable | undefined;
  /** Frees a local device holding, durably. */
  free(subnet: Subnet, value: bigint, pool: Pool): Promise<void>;
}

export class DeviceRecheck {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  constructor(
    private readonly neighbourhood: Neighbourhood,
    private readonly source: HoldingsSource,
    private readonly log: Logger,
  ) {}

  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.once(), intervalMs);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** Probes every held address whose LAN is known; resolves with how many were freed. One round at a time. */
  once(): Promise<number> {
    this.running ??= this.round().finally(() => (this.running = undefined));
    return this.running;
  }

  private async round(): Promise<number> {
    const jobs: (() => Promise<boolean>)[] = [];
    for (const subnet of this.source.subnets()) {
      if (!this.neighbourhood.knows(subnet.cidr)) continue;
      for (const value of [...subnet.devices]) {
        jobs.push(async () => {
          const holder = subnet.taken.get(value);
          if (holder?.kind !== 'device' || !(await this.free(subnet.cidr, value))) return false;
          if (subnet.taken.get(value) !== holder) return false; // changed while it was probed
          await this.source.free(subnet, value, holder.pool);
          this.log.info({ subnet: subnet.cidr.text, address: subnet.text(value) }, 'a device holding is free again');
          return true;
        });
      }
    }
    await this.clusterJobs(jobs);
    let freed = 0;
    for (let i = 0; i < jobs.length; i += AT_ONCE) {
      const done = await Promise.allSettled(jobs.slice(i, i + AT_ONCE).map((job) => job()));
      for (const result of done) {
        if (result.status === 'fulfilled') freed += result.value ? 1 : 0;
        else this.log.warn({ err: (result.reason as Error).message }, 'could not probe a held address again');
      }
    }
    return freed;
  }

  private async clusterJobs(jobs: (() => Promise<boolean>)[]): Promise<void> {
    const table = this.source.table;
    if (!table) return;
    const lanes = new Map<string, Pool>();
    for (const pool of this.source.pools())
      if (isClusterPoolId(pool.id) && this.neighbourhood.knows(pool.subnet.cidr))
        lanes.set(`${pool.subnet.cidr.text} ${pool.lane.lo}-${pool.lane.hi}`, pool);
    for (const pool of lanes.values()) {
      const cidr = pool.subnet.cidr;
      let claims: Awaited<ReturnType<ClusterTable['deviceClaims']>>;
      try {
        claims = await table.deviceClaims(cidr, pool.lane.lo, pool.lane.hi);
      } catch (err) {
        this.log.warn({ subnet: cidr.text, err: (err as Error).message }, 'could not read the cluster device claims');
        continue;
      }
      for (const { address, claim } of claims) {
        jobs.push(async () => {
          if (!(await this.free(cidr, address))) return false;
          await table.release(cidr, address, claim.ref);
          this.log.info({ subnet: cidr.text, address: pool.subnet.text(address) }, 'a device claim is free again');
          return true;
        });
      }
    }
  }

  private async free(cidr: Subnet['cidr'], value: bigint): Promise<boolean> {
    const verdict = await this.neighbourhood.check(cidr, value);
    return verdict !== undefined && !verdict.held;
  }
}
