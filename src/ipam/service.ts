// The IPAM driver: pools and addresses of macvlan networks, decided synchronously in memory (so parallel requests
// never get one address twice) and saved to a per-subnet journal before Docker gets the answer. With etcd, the
// addresses of cluster-wide pools come from the cluster table instead (cluster-addresses.ts).
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { PluginError } from '../errors';
import { type Cidr, overlaps } from '../ip/address';
import { Subnet } from './subnet';
import type { Pool } from './subnet-model';
import { journalName, loadJournals, openJournal } from './journal';
import { type AppendOptions, type DurableLog, UnmarkedError } from '../state/durable-log';
import { syncDirSync } from '../state/files';
import { type TakeKind } from './journal-records';
import { ExhaustedError } from './dynamic-range';
import { ReleaseDues } from './release-dues';
import { ClusterAddresses, wantsCluster } from './cluster-addresses';
import { checkPoolId, isClusterPoolId, poolIdOf } from './pool-id';
import { type RequestPoolArgs, checkSameScope, parsePoolRequest } from './pool-request';
import { addressOfPool } from './address-request';
import { type RangeFill, localRangeFills } from './range-fill';
import type { ClusterTable } from '../cluster/table';
import type { Neighbourhood } from '../probe/neighbourhood';
import { ProbedTakes, probeOption } from './probed-takes';
import { type DriverAddresses, ForgottenTakes } from './forgotten-takes';
import { type RouterPrefixes, followPrefixes, watchedParentOf, withRouterPrefix } from './slaac-pool';

export const LOCAL_ADDRESS_SPACE = 'local';
export const GLOBAL_ADDRESS_SPACE = 'global';
export const GATEWAY_REQUEST = 'com.docker.network.gateway';

export interface PoolView {
  poolId: string;
  pool: string;
  subPool?: string;
  v6: boolean;
  options: Record<string, string>;
  /** Addresses the pool holds: gateway, aux, containers. */
  allocated: number;
  /** Networks using the pool (identical RequestPool calls share it). */
  refs: number;
}

export class IpamService {
  private readonly dir: string;
  private readonly subnets = new Map<string, Subnet>();
  private readonly pools = new Map<string, Pool>();
  /** One per subnet ever seen in this process: kept when a subnet empties, so its file has a single writer. */
  private readonly journals = new Map<string, DurableLog>();
  private closed = false;
  private readonly cluster: ClusterAddresses;
  private readonly dues: ReleaseDues;
  /** Probe before use (see probed-takes.ts); without a neighbourhood nothing is probed. */
  private readonly probed: ProbedTakes | undefined;
  /** Addresses Docker took and never used (forgotten-takes.ts); without the driver's view none is released. */
  private readonly forgotten: ForgottenTakes | undefined;

  /**
   * `table`: the etcd allocation table (serve --etcd); without it every new pool is this host's alone.
   * `neighbourhood`: the LAN's answers about addresses (the driver tells it which LAN a subnet is on).
   * `driverAddresses`: which addresses the network driver's records hold.
   */
  constructor(
    stateDir: string,
    private readonly log: Logger,
    private readonly table?: ClusterTable,
    neighbourhood?: Neighbourhood,
    driverAddresses?: DriverAddresses,
    /** The LAN's routers, for pools of --ipam-opt ipv6=slaac. */
    private readonly routers?: RouterPrefixes,
  ) {
    this.cluster = new ClusterAddresses(table);
    this.dues = new ReleaseDues(
      {
        subnets: this.subnets,
        cluster: this.cluster,
        addressSpaces: [LOCAL_ADDRESS_SPACE, GLOBAL_ADDRESS_SPACE],
        closed: () => this.closed,
        save: (cidr, line, options) => this.save(cidr, line, options),
        released: (pool, value) => this.probed?.released(pool, value),
      },
      log,
    );
    this.probed =
      neighbourhood &&
      new ProbedTakes(neighbourhood, log, {
        subnets: () => this.subnets.values(),
        pools: () => this.pools.values(),
        poolsOf: (subnet) => this.subnets.get(subnet)?.pools.values() ?? [],
        table,
        upcoming: (pool, n) => this.cluster.upcoming(pool, n),
        record: (cidr, line) =>
          this.journal(cidr)
            .append(line)
            .catch((err: unknown) => log.warn({ err, subnet: cidr.text }, 'could not journal a device holding')),
        free: async (subnet, value, pool) => {
          const line = subnet.free(value, pool);
          if (line) await this.save(subnet.cidr, line);
        },
      });
    this.forgotten =
      driverAddresses &&
      new ForgottenTakes(
        {
          subnets: this.subnets,
          cluster: this.cluster,
          addressSpaces: [LOCAL_ADDRESS_SPACE, GLOBAL_ADDRESS_SPACE],
          closed: () => this.closed,
          save: (subnet, line) => this.save(subnet.cidr, line, { now: true }),
          released: (pool, value) => this.probed?.released(pool, value),
        },
        driverAddresses,
        log,
      );
    this.dir = join(stateDir, 'ipam');
    if (!existsSync(this.dir)) {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      syncDirSync(stateDir); // the directory's own entry, before files in it are trusted to be durable
    }
    this.load();
    this.forgotten?.resume();
    if (routers) followPrefixes(routers, this.subnets, (cidr, line) => this.save(cidr, line), log);
  }

  /** Takes in the subnets the journals hold (loadJournals: checked, rolled back, compacted). */
  private load(): void {
    for (const { subnet, lines } of loadJournals(this.dir, this.log)) {
      for (const pool of subnet.pools.values()) this.pools.set(pool.id, pool);
      this.subnets.set(subnet.cidr.text, subnet);
      this.journals.set(subnet.cidr.text, this.newJournal(subnet.cidr, lines));
      this.dues.loaded(subnet);
      for (const pool of subnet.pools.values()) this.rewatch(pool);
    }
  }

  /** The journal of `cidr`, whose file has `lines` lines (undefined: no file yet). */
  private newJournal(cidr: Cidr, lines: number | undefined): DurableLog {
    const key = cidr.text;
    const source = {
      snapshot: () => {
        const subnet = this.subnets.get(key);
        return subnet && !subnet.empty ? subnet.snapshot() : undefined;
      },
      liveLines: () => this.subnets.get(key)?.liveLines ?? 0,
    };
    return openJournal(join(this.dir, journalName(cidr)), source, this.log, lines);
  }

  private journal(cidr: Cidr): DurableLog {
    let journal = this.journals.get(cidr.text);
    if (!journal) this.journals.set(cidr.text, (journal = this.newJournal(cidr, undefined)));
    return journal;
  }

  /**
   * Saves a change already applied in memory; a failure becomes an error for people. `now`: the line is written
   * before any await (a process killed from here on keeps it), or, when that fails, by a rewrite from memory.
   */
  private async save(cidr: Cidr, line: string, options: AppendOptions & { now?: boolean } = {}): Promise<void> {
    const journal = this.journal(cidr);
    try {
      if (!options.now) await journal.append(line, options);
      else {
        let saved: Promise<void>;
        try {
          saved = journal.writeNow(line);
        } catch {
          saved = journal.append(line, { rewrite: true });
        }
        await saved;
      }
    } catch (err) {
      const outcome =
        err instanceof UnmarkedError
          ? 'it is held until tsmacvlan restarts, then released'
          : options.undo
            ? 'nothing was assigned'
            : 'the release holds until tsmacvlan restarts; it is saved with the next change that can be';
      throw new PluginError(`could not save the IPAM state to ${journal.path} (${(err as Error).message}); ${outcome}`);
    }
  }

  /** Refuses every request once close() has begun. */
  private refuseWhenClosing(): void {
    if (this.closed) throw new PluginError('tsmacvlan is shutting down; retry in a moment');
  }

  /** Forgets a pool and its subnet once nothing refers to them any more. */
  private tidy(pool: Pool): void {
    const subnet = pool.subnet;
    if (!subnet.pools.has(pool.id) && this.pools.get(pool.id) === pool) this.pools.delete(pool.id);
    if (subnet.empty && this.subnets.get(subnet.cidr.text) === subnet) this.subnets.delete(subnet.cidr.text);
  }

  private rewatch(pool: Pool): void {
    const parent = watchedParentOf(pool.options, pool.subnet.cidr.v6);
    for (let i = 0; parent && i < pool.refs; i++) void this.routers?.rewatch(parent);
  }

  async requestPool(request: RequestPoolArgs): Promise<{ poolId: string; pool: string }> {
    this.refuseWhenClosing();
    const { args, parent: watched } = await withRouterPrefix(request, this.routers);
    try {
      return await this.acquirePool(args);
    } catch (err) {
      if (watched) this.routers?.release(watched);
      throw err;
    }
  }

  private async acquirePool(args: RequestPoolArgs): Promise<{ poolId: string; pool: string }> {
    const { cidr, range } = parsePoolRequest(args);
    const options = args.options ?? {};
    probeOption(options);
    const clusterWide = wantsCluster(options, this.table !== undefined);
    const id = poolIdOf(cidr, range, options, clusterWide);

    let subnet = this.subnets.get(cidr.text);
    if (subnet) checkSameScope(subnet, cidr, clusterWide);
    else {
      for (const other of this.subnets.values()) {
        if (overlaps(other.cidr, cidr)) {
          const users = [...other.pools.keys()].join(', ');
          throw new PluginError(
            `--subnet ${cidr.text} overlaps subnet ${other.cidr.text}, which is in use (pool ${users}); use exactly ${other.cidr.text} (several networks may share it, each with its own --ip-range) or a subnet that does not overlap`,
          );
        }
      }
      subnet = new Subnet(cidr);
    }
    const { pool, line } = subnet.acquirePool({ id, ...(range && { range }), options });
    this.subnets.set(cidr.text, subnet);
    this.pools.set(id, pool);
    await this.save(cidr, line, {
      undo: () => {
        subnet.undoAcquire(pool);
        this.tidy(pool);
      },
      answered: { line: subnet.answeredAcquireLine(pool), apply: () => subnet.answeredAcquire(pool) },
    });
    this.log.info({ poolId: id, refs: pool.refs }, 'pool acquired');
    return { poolId: id, pool: cidr.text };
  }

  async releasePool(poolId: string): Promise<void> {
    this.refuseWhenClosing();
    const pool = this.poolToRelease(poolId);
    if (!pool) return;
    const subnet = pool.subnet;
    const clusterWide = isClusterPoolId(pool.id);
    if (clusterWide) this.cluster.tableFor(pool); // refused before anything changes when etcd is not configured
    const { line, dropped } = subnet.releasePool(pool);
    this.tidy(pool);
    const watched = watchedParentOf(pool.options, subnet.cidr.v6);
    if (watched) this.routers?.release(watched);
    // The claims go before the pool: a crash in between leaves a pool Docker no longer uses, not claims nobody frees.
    if (dropped) this.probed?.forget(pool);
    if (dropped && clusterWide) await this.cluster.releasePool(pool);
    await this.save(subnet.cidr, line, { rewrite: subnet.empty });
    this.log.info({ poolId, refs: pool.refs, dropped }, 'pool released');
  }

  /** Returns "address/prefixlen". */
  async requestAddress(
    poolId: string,
    address: string | undefined,
    options: Record<string, unknown> | null | undefined,
  ): Promise<string> {
    this.refuseWhenClosing();
    const pool = this.knownPool(poolId);
    const subnet = pool.subnet;
    const gateway = options?.RequestAddressType === GATEWAY_REQUEST;
    if (isClusterPoolId(pool.id)) return this.requestClusterAddress(pool, address, gateway);
    let value: bigint;
    let line: string;
    if (address) {
      value = addressOfPool(address, pool, gateway ? 'gateway' : 'address');
      // Docker sends aux addresses without options; containers' --ip with the MAC (or, on newer engines, without).
      const kind: Exclude<TakeKind, 'dynamic'> = gateway ? 'gateway' : options ? 'static' : 'aux';
      line = subnet.take(value, kind, pool);
    } else if (gateway) {
      value = subnet.lo;
      const holder = subnet.taken.get(value);
      if (holder && holder.kind !== 'gateway' && holder.kind !== 'device') {
        throw new PluginError(
          `no --gateway was given, and the first address of subnet ${subnet.cidr.text} (${subnet.text(value)}), which would be the gateway, is in use: ${subnet.describe(holder)}; pass --gateway`,
        );
      }
      line = subnet.take(value, 'gateway', pool);
    } else {
      try {
        ({ value, line } = this.probed?.applies(pool) ? await this.probed.takeLocal(pool) : subnet.takeDynamic(pool));
      } catch (err) {
        if (err instanceof ExhaustedError && err.line) {
          await this.journal(subnet.cidr)
            .append(err.line)
            .catch((saveErr: unknown) =>
              this.log.warn({ err: saveErr, poolId }, 'could not journal an exhausted search'),
            );
        }
        throw err;
      }
    }
    if (!gateway) this.forgotten?.taken(subnet, value);
    await this.save(subnet.cidr, line, {
      undo: () => subnet.undoTake(value, pool),
      answered: { line: subnet.answeredTakeLine(value, pool), apply: () => subnet.answeredTake(value, pool) },
    });
    if (address && !gateway) this.probed?.given(pool, value);
    return `${subnet.text(value)}/${subnet.cidr.prefix}`;
  }

  async releaseAddress(poolId: string, address: string): Promise<void> {
    this.refuseWhenClosing();
    const pool = this.poolToRelease(poolId);
    if (!pool) return;
    const subnet = pool.subnet;
    const value = addressOfPool(address, pool, 'address');
    this.probed?.released(pool, value);
    if (isClusterPoolId(pool.id)) {
      if (!(await this.cluster.release(pool, value)))
        this.log.debug({ poolId, address }, 'release of an address the cluster table shows no claim of; nothing to do');
      return;
    }
    const line = subnet.free(value, pool);
    if (!line) {
      this.log.debug({ poolId, address }, 'release of an address the pool does not hold; nothing to do');
      return;
    }
    await this.save(subnet.cidr, line, { now: true });
  }

  /** The network driver deleted an endpoint holding `address`: see ReleaseDues.note. */
  releaseDue(subnet: string, address: string, addressSpace: string | undefined): Promise<void> {
    return this.dues.note(subnet, address, addressSpace);
  }

  /**
   * An address of a cluster-wide pool, decided by the etcd table. Only the gateway is a shared reservation: engines
   * up to 28.x send a container's --ip exactly as an aux address (Options null), so sharing aux addresses would let
   * two hosts' containers get one --ip. Every given address but the gateway is taken by one host alone.
   */
  private async requestClusterAddress(pool: Pool, address: string | undefined, gateway: boolean): Promise<string> {
    const subnet = pool.subnet;
    let value: bigint | undefined;
    if (address) value = addressOfPool(address, pool, gateway ? 'gateway' : 'address');
    else if (gateway) value = subnet.lo;
    const vet = value === undefined ? this.probed?.vetter(pool) : undefined;
    const forgotten = gateway ? undefined : this.forgotten;
    const taken = await this.cluster.take(pool, value, gateway ? 'gateway' : 'container', vet, (v) =>
      forgotten?.taken(subnet, v),
    );
    if (vet) this.probed?.taken(pool, taken);
    if (value !== undefined && !gateway) this.probed?.given(pool, value);
    return `${subnet.text(taken)}/${subnet.cidr.prefix}`;
  }

  /** The pool named by `poolId`; an unknown one is refused. */
  private knownPool(poolId: string): Pool {
    const pool = this.pools.get(checkPoolId(poolId));
    if (!pool) {
      throw new PluginError(
        `pool ${poolId} is not known to tsmacvlan's IPAM (it was released, or its state was removed); recreate the network`,
      );
    }
    return pool;
  }

  /** The pool named by `poolId` for a release; undefined when it is unknown (releases are idempotent). */
  private poolToRelease(poolId: string): Pool | undefined {
    const pool = this.pools.get(checkPoolId(poolId));
    if (!pool) this.log.warn({ poolId }, 'release for an unknown pool; nothing to do');
    return pool;
  }

  /** A read-only view of every pool, for operators. */
  listPools(): PoolView[] {
    return [...this.pools.values()].map((pool) => ({
      poolId: pool.id,
      pool: pool.subnet.cidr.text,
      ...(pool.range && { subPool: pool.range.text }),
      v6: pool.subnet.v6,
      options: { ...pool.options },
      allocated: pool.allocated,
      refs: pool.refs,
    }));
  }

  /**
   * How full each range is, for the metrics (read on scrape): local pools' from memory; cluster-wide pools' from the
   * table's watched view (this host's claims and every host's), left out while that view loads.
   */
  rangeFills(): RangeFill[] {
    const fills: RangeFill[] = [];
    for (const subnet of this.subnets.values()) {
      if (![...subnet.pools.keys()].some(isClusterPoolId)) {
        fills.push(...localRangeFills(subnet));
        continue;
      }
      for (const lane of subnet.lanes.values()) {
        const holding = this.cluster.fill(subnet, lane);
        if (!holding) continue;
        const range = { subnet: subnet.cidr.text, range: lane.key || subnet.cidr.text, capacity: lane.size };
        fills.push({ ...range, scope: 'host', allocated: holding.mine });
        fills.push({ ...range, scope: 'cluster', allocated: holding.held });
      }
    }
    return fills;
  }

  /** Journal syncs, lines appended and snapshots (compactions) written since start; several changes may share a sync. */
  stats(): { syncs: number; lines: number; snapshots: number } {
    const total = { syncs: 0, lines: 0, snapshots: 0 };
    for (const journal of this.journals.values()) {
      total.syncs += journal.syncs;
      total.lines += journal.written;
      total.snapshots += journal.snapshots;
    }
    return total;
  }

  /** Waits for queued writes and closes the journal files. Requests after this fail. */
  async close(): Promise<void> {
    this.closed = true;
    this.dues.stop();
    this.forgotten?.stop();
    this.probed?.close();
    await Promise.all([...this.journals.values()].map((journal) => journal.close()));
  }
}
