// Probe before use: a dynamic address is handed to a container only once the LAN has been asked about it (ARP or
// neighbour solicitation from the host side, see src/probe/). An address a device answers for is kept from
// containers as that device's (a device holding locally, a device claim in the cluster table) and the take moves on
// to the next. The verdicts are usually ready: candidates are probed ahead of need (probe-ahead.ts). Addresses given
// by name are checked at CreateEndpoint instead (Docker sends a container's --ip and an --aux-address alike here).
// A pool whose subnet no network of this plugin is on (another driver uses it) has no LAN to ask: it is not probed.
import type { Logger } from 'pino';
import type { ClusterTable } from '../cluster/table';
import { PluginError } from '../errors';
import type { Cidr } from '../ip/address';
import { FRESH_MS, type Neighbourhood, ProbeError, type Verdict } from '../probe/neighbourhood';
import { DeviceRecheck, recheckMs } from './device-holdings';
import { ProbeAhead } from './probe-ahead';
import { isClusterPoolId } from './pool-id';
import { PROBE_OPTION } from './pool-request';
import type { Subnet } from './subnet';
import type { Pool } from './subnet-model';

/**
 * Probes one take awaits for the same lane head before it gives up: a probe that leaves its address undecided. A wait
 * after which the head has moved (another take got the address) is progress, not counted: in a burst, most takes
 * lose the address they waited for to the first one and move on.
 */
const MAX_WAITS = 32;
/** Device holdings one take records and passes over before it gives up. */
const MAX_DEVICES = 256;
/**
 * How old a verdict that an address is held may be and still make it a device's. A free verdict is trusted for
 * FRESH_MS; a held one older than this is asked again first: its holder may have been a container (another host's,
 * or one of this host's that has gone since), and a device holding keeps the address from every container until its
 * recheck. Asking again costs one probe, and only where something answered.
 */
export const HELD_FRESH_MS = 1000;

/** Checks --ipam-opt probe=...; whether the pool's addresses are probed. */
export function probeOption(options: Record<string, string>): boolean {
  const value = options[PROBE_OPTION];
  if (value === undefined || value === 'on') return true;
  if (value === 'off') return false;
  throw new PluginError(
    `--ipam-opt probe=${value} is not known: give probe=off to hand out this network's addresses without probing the LAN first, or leave it out`,
  );
}

/** What the IPAM lends probing: its subnets and pools, its cluster table, and its journal. */
export interface ProbingHost {
  subnets(): Iterable<Subnet>;
  pools(): Iterable<Pool>;
  /** The pools of one subnet (its canonical text). */
  poolsOf(subnet: string): Iterable<Pool>;
  table: ClusterTable | undefined;
  /** The candidates a cluster-wide pool's next takes would try. */
  upcoming(pool: Pool, n: number): Promise<bigint[]>;
  /** Journals a change no answer depends on (a device holding); failures are the host's to log. */
  record(cidr: Cidr, line: string): void;
  /** Frees a device holding, durably. */
  free(subnet: Subnet, value: bigint, pool: Pool): Promise<void>;
}

export class ProbedTakes {
  private readonly ahead: ProbeAhead;
  private readonly recheck: DeviceRecheck;
  /** Pools whose addresses cannot be probed, already logged once. */
  private readonly unprobedLogged = new Set<string>();

  constructor(
    private readonly neighbourhood: Neighbourhood,
    private readonly log: Logger,
    private readonly host: ProbingHost,
    private readonly now: () => number = Date.now,
  ) {
    this.ahead = new ProbeAhead(neighbourhood, log, now);
    // A network of this plugin now says which LAN the subnet is on: its pools' first candidates are probed.
    neighbourhood.onAttach((subnet) => {
      for (const pool of host.poolsOf(subnet)) if (this.applies(pool)) this.aheadOf(pool);
    });
    this.recheck = new DeviceRecheck(neighbourhood, host, log);
    this.recheck.start(recheckMs());
  }

  /** Whether `pool`'s addresses are probed: unless probe=off, and when the LAN of its subnet is known. */
  applies(pool: Pool): boolean {
    if (pool.options[PROBE_OPTION] === 'off') return false; // (a value RequestPool refuses today probes: fail closed)
    if (this.neighbourhood.knows(pool.subnet.cidr)) return true;
    if (!this.unprobedLogged.has(pool.id)) {
      this.unprobedLogged.add(pool.id);
      this.log.info(
        { poolId: pool.id },
        'addresses of this pool are handed out without probing: no tsmacvlan network on its subnet tells which LAN they are on (another driver uses the pool)',
      );
    }
    return false;
  }

  /** Keeps the pool's next candidates probed (at its network's creation, and with every take). */
  private aheadOf(pool: Pool, take = false): void {
    const subnet = pool.subnet;
    const upcoming = isClusterPoolId(pool.id)
      ? (n: number) => this.host.upcoming(pool, n)
      : (n: number) => pool.lane.peek(subnet.taken, n);
    this.ahead.use(laneKey(pool), subnet.cidr, upcoming, take);
  }

  /** The pool's lane is gone. */
  forget(pool: Pool): void {
    if (pool.lane.users === 0) this.ahead.forget(laneKey(pool));
  }

  /**
   * A dynamic take of a local pool: the lane's next address once the LAN says it is free. Addresses devices answer
   * for become device holdings (`record` journals them) and are passed over. Resolves with the take made, as
   * `subnet.takeDynamic` returns it (it throws as that does when the lane is exhausted).
   */
  async takeLocal(pool: Pool): Promise<{ value: bigint; line: string }> {
    const subnet = pool.subnet;
    this.aheadOf(pool, true);
    let waits = 0;
    let waitedFor: bigint | undefined;
    for (let devices = 0; devices <= MAX_DEVICES;) {
      const [head] = pool.lane.peek(subnet.taken, 1);
      if (head === undefined) return subnet.takeDynamic(pool);
      if (head !== waitedFor) waits = 0;
      waitedFor = undefined;
      const verdict = this.neighbourhood.recent(subnet.cidr, head, FRESH_MS);
      if (verdict?.held === false) {
        // Peeked and taken with no await in between: the take is the address the verdict is about.
        const taken = subnet.takeDynamic(pool);
        if (taken.value !== head) throw new Error(`lane gave ${taken.value}, not the probed ${head}`);
        this.neighbourhood.forget(subnet.cidr, head);
        return taken;
      }
      if (verdict?.held && !this.neighbourhood.recent(subnet.cidr, head, HELD_FRESH_MS)) {
        if (++waits > MAX_WAITS) break;
        waitedFor = head;
        await this.ask(subnet.cidr, head); // then peeked again: the lane may have moved meanwhile
        continue;
      }
      if (verdict?.held) {
        this.host.record(subnet.cidr, subnet.holdForDevice(head, pool, verdict.mac, this.now()));
        this.heldLog(subnet.cidr, head, verdict, pool);
        devices++;
        continue;
      }
      if (++waits > MAX_WAITS) break;
      waitedFor = head;
      // A take still waiting is demand: the candidates past the head are probed alongside it, so that a burst is not
      // one probe per address once its first takes are older than the ahead's window.
      this.aheadOf(pool, true);
      if ((await this.ask(subnet.cidr, head)) === undefined) return subnet.takeDynamic(pool); // its LAN is gone
    }
    throw new PluginError(
      `could not find an address of ${pool.lane.label} that no device on the LAN answers for: probed ${MAX_WAITS} without a usable one (each one found held is now kept from containers); retry, or give an --ip-range the LAN's devices do not use`,
    );
  }

  /**
   * The check of each candidate of a cluster take of `pool` (the MAC of the device holding it, or undefined when it
   * is free), or undefined when the pool is not probed. Its next candidates are probed meanwhile.
   */
  vetter(pool: Pool): ((address: bigint) => Promise<string | undefined>) | undefined {
    if (!this.applies(pool)) return undefined;
    this.aheadOf(pool, true);
    return (address) => this.vet(pool, address);
  }

  private async vet(pool: Pool, address: bigint): Promise<string | undefined> {
    const cidr = pool.subnet.cidr;
    const kept = this.neighbourhood.recent(cidr, address, FRESH_MS);
    const trusted = kept?.held ? this.neighbourhood.recent(cidr, address, HELD_FRESH_MS) : kept;
    const verdict = trusted ?? (await this.ask(cidr, address));
    if (!verdict?.held) return undefined;
    this.heldLog(cidr, address, verdict, pool);
    return verdict.mac;
  }

  /** An address given by name (--ip or --aux-address): checked against the LAN when an endpoint uses it. */
  given(pool: Pool, address: bigint): void {
    if (pool.options[PROBE_OPTION] !== 'off') this.neighbourhood.noteGiven(pool.subnet.cidr, address);
  }

  /**
   * A cluster take of `pool` vetted by `vetter` committed `address`: the free verdict it used is spent. Once the address
   * is released, a verdict from before its take would be trusted for up to FRESH_MS, while the container that had it
   * may still answer for it (the soak saw one given again 6 s after its release, its old holder on the wire 7 s more).
   */
  taken(pool: Pool, address: bigint): void {
    this.neighbourhood.forget(pool.subnet.cidr, address);
  }

  /** `address` was released: it is probed afresh before it is given again. */
  released(pool: Pool, address: bigint): void {
    this.neighbourhood.forgetGiven(pool.subnet.cidr, address);
    this.neighbourhood.forget(pool.subnet.cidr, address);
  }

  close(): void {
    this.recheck.close();
    this.ahead.close();
  }

  /** Probes now; a probe that cannot be made fails the request (nothing is handed out unprobed). */
  private async ask(cidr: Cidr, address: bigint): Promise<Verdict | undefined> {
    try {
      return await this.neighbourhood.check(cidr, address);
    } catch (err) {
      if (!(err instanceof ProbeError)) throw err;
      throw new PluginError(
        `${err.message}, so no address of subnet ${cidr.text} can be handed out (it could be a LAN device's); fix that, or create the network with --ipam-opt ${PROBE_OPTION}=off to hand addresses out without probing`,
      );
    }
  }

  private heldLog(cidr: Cidr, address: bigint, verdict: Verdict & { held: true }, pool: Pool): void {
    this.log.warn(
      { subnet: cidr.text, address: pool.subnet.text(address), mac: verdict.mac, by: verdict.by, poolId: pool.id },
      'an address of the range is held by a device on the LAN: kept from containers until a probe finds it free',
    );
  }
}

function laneKey(pool: Pool): string {
  return `${pool.subnet.cidr.text} ${pool.lane.key}`;
}
