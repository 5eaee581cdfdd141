// Addresses Docker took and forgot. Docker asks for a container's address (RequestAddress) and, in the same breath,
// for its endpoint (the network driver's CreateEndpoint). An engine that dies between the two never asks again: at
// its next start it knows of neither, and the address would stay held for good (the soak of docs/soak.md found such
// claims after dockerd crashes). So an address this IPAM gave is checked a grace period after the answer (and, after a
// restart, every address it holds is checked once a grace period after the start): when none of the driver's
// endpoints, gateways or aux addresses holds it, it is released, as Docker's ReleaseAddress would have.
//
// Only where the driver's records account for every user of the subnet: the IPAM may serve networks of other
// drivers, whose endpoints it cannot see. A subnet is checked only when the driver's networks on it (through this
// IPAM) are as many as the references to its pools, and each of them recorded its aux addresses.
import type { Logger } from 'pino';
import { endpointGraceMs } from '../state/seconds-setting';
import { TimedQueue } from '../state/timed-queue';
import type { ClusterAddresses } from './cluster-addresses';
import { isClusterPoolId } from './pool-id';
import type { Subnet } from './subnet';
import { type Pool, type SubnetModel, isEndpointHolder } from './subnet-model';

/** The network driver's view of a subnet's addresses (driver/subnet-addresses.ts), wired by the cli. */
export interface DriverAddresses {
  /** The driver's networks on `subnet` through an IPAM naming one of `spaces`; undefined when not fully known. */
  networksOn(subnet: string, spaces: readonly string[]): number | undefined;
  /** Whether an endpoint (from its CreateEndpoint on), a gateway or an aux address of the driver's holds `value`. */
  holds(subnet: string, value: bigint): boolean;
}

/** What the IPAM service lends the check: its subnets, its journal, its cluster table. */
export interface TakeHost {
  readonly subnets: ReadonlyMap<string, Subnet>;
  readonly cluster: ClusterAddresses;
  readonly addressSpaces: readonly string[];
  closed(): boolean;
  /** Saves a journal line, written before any await (see IpamService.save). */
  save(subnet: Subnet, line: string): Promise<void>;
  /** Told of an address the IPAM released (probe before use forgets it was given). */
  released(pool: Pool, value: bigint): void;
}

/** A check that falls due: one address a grace period after its take, or every address of a subnet after a start. */
interface Check {
  subnet: string;
  /** Absent: the whole subnet (after a start). */
  value?: bigint;
  /** The take's time: a later take of the same address replaces its check. */
  stamp?: number;
}

export class ForgottenTakes {
  private readonly queue: TimedQueue<Check>;
  /** The addresses taken within the last grace period, with the time of the take: never checked before it ends. */
  private readonly recent = new Map<string, number>();

  constructor(
    private readonly host: TakeHost,
    private readonly driver: DriverAddresses,
    private readonly log: Logger,
    private readonly graceMs = endpointGraceMs(),
  ) {
    this.queue = new TimedQueue<Check>(
      (check) => this.check(check),
      (err, check) =>
        log.error({ err, subnet: check.subnet }, 'could not check for addresses Docker took and never used'),
    );
  }

  /** After a start: every address the subnets hold is checked once the grace period has passed. */
  resume(): void {
    const by = Date.now() + this.graceMs;
    for (const subnet of this.host.subnets.keys()) this.queue.add({ subnet }, by);
  }

  /** An address was taken for a container (not a gateway): its endpoint is due within the grace period. */
  taken(subnet: SubnetModel, value: bigint): void {
    const key = `${subnet.cidr.text} ${value}`;
    const stamp = Date.now();
    this.recent.set(key, stamp);
    this.queue.add({ subnet: subnet.cidr.text, value, stamp }, stamp + this.graceMs);
  }

  /** Whether nothing of the driver's can hold an address of `subnet` that the driver does not name. */
  private accountedFor(subnet: Subnet): boolean {
    let refs = 0;
    for (const pool of subnet.pools.values()) {
      if (pool.unanswered > 0) return false; // a network being created: the driver does not know it yet
      refs += pool.refs;
    }
    return refs > 0 && this.driver.networksOn(subnet.cidr.text, this.host.addressSpaces) === refs;
  }

  /** Whether `value` of `subnet` is an address Docker forgot: taken before the grace period, used by nothing. */
  private forgotten(subnet: Subnet, value: bigint): boolean {
    return !this.recent.has(`${subnet.cidr.text} ${value}`) && !this.driver.holds(subnet.cidr.text, value);
  }

  private async check({ subnet: text, value, stamp }: Check): Promise<void> {
    if (value !== undefined) {
      const key = `${text} ${value}`;
      if (this.recent.get(key) !== stamp) return; // taken again since: that take's check counts
      this.recent.delete(key);
    }
    const subnet = this.host.subnets.get(text);
    if (this.host.closed() || !subnet || !this.accountedFor(subnet)) return;
    const [first] = subnet.pools.values();
    if (first && isClusterPoolId(first.id)) {
      const released = await this.host.cluster.releaseForgotten(first, value, (v) => this.forgotten(subnet, v));
      for (const address of released) this.warn(subnet, address);
      return;
    }
    const values = value === undefined ? [...subnet.taken.keys()] : [value];
    for (const v of values) {
      const holder = subnet.taken.get(v);
      if (!isEndpointHolder(holder) || !this.forgotten(subnet, v)) continue;
      const line = subnet.free(v, holder.pool);
      if (!line) continue;
      this.host.released(holder.pool, v);
      this.warn(subnet, v);
      await this.host.save(subnet, line);
    }
  }

  private warn(subnet: Subnet, value: bigint): void {
    this.log.warn(
      { address: subnet.text(value), subnet: subnet.cidr.text, graceSeconds: this.graceMs / 1000 },
      'released an address Docker took and never gave an endpoint (the engine stopped between the two)',
    );
  }

  stop(): void {
    this.queue.stop();
  }
}
