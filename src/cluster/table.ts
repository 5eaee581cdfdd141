// The cluster allocation table: addresses of subnets shared by several hosts, taken and released in etcd. A take is
// one transaction that succeeds only if nobody holds the address; its candidate comes from a watched local view, so
// it costs one round trip unless another host raced for the same address. Creates roll back, deletes roll forward:
// see intents.ts for the local log that makes both survive a crash.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { crashPoint } from '../state/crash';
import { PluginError } from '../errors';
import { type Cidr, contains, formatIp, parseCidr } from '../ip/address';
import { DynamicTakes, type Own, settleWrite } from './dynamic-takes';
import { type ClusterKv, ClusterUnavailableError } from './etcd';
import { IntentLog, type IntentLine, readIntents, replay, rewriteIntents } from './intents';
import { type Claim, type ClaimKind, addressKey, describeHolder, encodeClaims, isShared, newToken } from './keys';
import { ReleaseQueue, type Release } from './releases';
import { type Held, type RangeHolding, SubnetView, type SubnetSummary } from './view';
import { type Forgotten, forgetInstance } from './admin';

export interface TableOptions {
  kv: ClusterKv;
  /** This instance's id: the owner of what it takes. Stable across restarts of one host. */
  instance: string;
  /** Where the intent log lives (created if missing). */
  stateDir: string;
  log: Logger;
}

export interface TakeRequest {
  subnet: Cidr;
  /** The addresses a dynamic take may pick from (the --ip-range, or the subnet's usable addresses). */
  lo: bigint;
  hi: bigint;
  /** A given address (gateway, aux, --ip); omitted: pick one in [lo, hi]. */
  address?: bigint;
  kind: ClaimKind;
  /** What it is for (endpoint or request key): releases name it. */
  ref: string;
  /** A dynamic take's check of each candidate against the LAN (see Range.vet). */
  vet?: (address: bigint) => Promise<string | undefined>;
  /** Told of the address in the turn the take stops being in flight (see releaseForgotten). */
  taken?: (address: bigint) => void;
}

/** Tries of a shared reservation whose key keeps changing under it (other hosts joining or leaving it). */
const MAX_ATTEMPTS = 32;

export class ClusterTable {
  private readonly views = new Map<string, Promise<SubnetView>>();
  /** The views loaded and watched now, for readers that must not wait (metrics). */
  private readonly loaded = new Map<string, SubnetView>();
  /** Takes between their intent and their answer, by token → subnet. */
  private readonly inflight = new Map<string, string>();
  /** Takes under way, for a pool's release to wait for. */
  private readonly underWay = new Set<{ subnet: string; ref: string; work: Promise<bigint> }>();
  /** Addresses a take of this instance is trying right now, per subnet: never two takes on one. */
  private readonly busy = new Map<string, Set<bigint>>();
  private readonly dynamic: DynamicTakes;
  private readonly releases: ReleaseQueue;
  private readonly intents: IntentLog;
  private closed = false;

  private constructor(
    private readonly kv: ClusterKv,
    readonly instance: string,
    private readonly log: Logger,
    path: string,
    unfinished: Release[],
  ) {
    this.dynamic = new DynamicTakes(kv, instance);
    this.intents = new IntentLog(
      path,
      () => this.liveLines(),
      () => this.inflight.size + this.releases.size,
      log,
      1 + unfinished.length, // as open() just rewrote it
    );
    this.releases = new ReleaseQueue(
      this.intents,
      log,
      instance,
      kv,
      (subnet) => this.view(subnet),
      (subnet, ref) => [...this.underWay].filter((t) => t.subnet === subnet && t.ref === ref).map((t) => t.work),
      unfinished,
    );
  }

  /**
   * Opens the table: takes a previous run never answered are queued for release, like releases it never finished,
   * and applied in the background as soon as etcd answers. Opening needs no etcd.
   */
  static open(options: TableOptions): ClusterTable {
    mkdirSync(options.stateDir, { recursive: true, mode: 0o700 });
    const path = join(options.stateDir, 'cluster-intents.log');
    const { takes, releases } = replay(readIntents(path, options.log));
    const unfinished: Release[] = [];
    for (const [at, subnet] of takes) {
      options.log.warn(
        { subnet, at },
        'rolling back a cluster take never answered (tsmacvlan stopped before answering)',
      );
      unfinished.push({ id: at, subnet, at });
    }
    for (const [id, release] of releases) unfinished.push({ ...release, id });
    rewriteIntents(
      path,
      unfinished.map((r) => ({ t: 'release', ...r })),
    );
    const table = new ClusterTable(options.kv, options.instance, options.log, path, unfinished);
    table.releases.kick();
    return table;
  }

  private liveLines(): IntentLine[] {
    const takes: IntentLine[] = [...this.inflight].map(([at, subnet]) => ({ t: 'take', at, subnet }));
    return [...takes, ...this.releases.lines()];
  }

  /** The watched view of `subnet`: one range read and a watch from just after it, the first time it is used. */
  view(subnetText: string): Promise<SubnetView> {
    let loading = this.views.get(subnetText);
    if (!loading) {
      loading = this.loadView(subnetText);
      this.views.set(subnetText, loading);
      loading.catch(() => this.views.delete(subnetText));
    }
    return loading;
  }

  private async loadView(subnetText: string): Promise<SubnetView> {
    const parsed = parseCidr(subnetText);
    if (!parsed.ok) throw new Error(`subnet ${subnetText} is not valid: ${parsed.why}`);
    const view = new SubnetView(parsed.cidr, this.kv.prefix);
    const { entries, revision } = await this.kv.range(view.prefix);
    view.load(entries, revision);
    for (const address of view.held.keys()) this.releases.noticed(view, address);
    const watch = await this.kv.watch(view.prefix, revision + 1n, {
      put: (entry) => {
        const address = view.put(entry);
        if (address !== undefined) this.releases.noticed(view, address);
      },
      delete: (key, rev) => view.delete(key, rev),
      lost: (err) => {
        this.log.warn({ subnet: subnetText, err }, 'watch of a cluster subnet lost; it is read again on next use');
        this.views.delete(subnetText);
        if (this.loaded.get(subnetText) === view) this.loaded.delete(subnetText);
        this.watches.delete(watch);
        void watch.cancel().catch(() => undefined);
      },
    });
    this.watches.add(watch);
    if (this.closed) await watch.cancel();
    else this.loaded.set(subnetText, view);
    return view;
  }

  private readonly watches = new Set<{ cancel(): Promise<void> }>();

  /** Takes an address for `request`; resolves just before the caller answers with it (the answered mark is written). */
  async take(request: TakeRequest): Promise<bigint> {
    if (this.closed) throw new PluginError('tsmacvlan is shutting down; retry in a moment');
    checkRequest(request);
    const subnet = request.subnet.text;
    const view = await this.view(subnet);
    // A release of this pool still queued (the network removed, now created again) goes first, or it could take
    // this claim too. Checked and registered with no wait in between.
    for (let id: string | undefined; (id = this.releases.pendingPool(subnet, request.ref));)
      await this.releases.applyPending(id);
    const taking = { subnet, ref: request.ref, work: this.takeIn(view, request) };
    this.underWay.add(taking);
    try {
      return await taking.work;
    } finally {
      this.underWay.delete(taking);
    }
  }

  private async takeIn(view: SubnetView, request: TakeRequest): Promise<bigint> {
    const subnet = view.subnet.text;
    const at = newToken();
    this.inflight.set(at, subnet);
    // Written before the transaction is sent, so a kill after the commit finds it; synced meanwhile, since the etcd
    // round trip is the longer wait (a power cut before the sync can only leave a claim held until its pool goes).
    let synced: Promise<Error | undefined>;
    try {
      synced = this.intents.writtenNow({ t: 'take', at, subnet }).then(
        () => undefined,
        (err: unknown) => err as Error,
      );
    } catch (err) {
      this.inflight.delete(at);
      throw new PluginError(
        `could not save the cluster intent log ${this.intents.path} (${(err as Error).message}); nothing was assigned`,
      );
    }
    crashPoint('cluster-intent-saved');
    const claim: Claim = { owner: this.instance, kind: request.kind, ref: request.ref, at };
    let address: bigint;
    try {
      if (request.address === undefined)
        address = await this.dynamic.takeFresh(view, request, claim, this.ownOf(subnet), () =>
          this.releases.settleSubnet(subnet),
        );
      else if (isShared(request.kind)) address = await this.takeShared(view, request.address, claim);
      else address = await this.takeGiven(view, request.address, claim);
    } catch (err) {
      this.inflight.delete(at);
      // An etcd failure leaves the outcome unknown: the take may have committed, so it is released by its token.
      if (err instanceof ClusterUnavailableError) this.releases.enqueueKnown({ id: at, subnet, at });
      else this.markDropped(at);
      throw err;
    }
    const unsynced = await synced;
    if (unsynced) {
      this.inflight.delete(at);
      this.releases.enqueueKnown({ id: at, subnet, at });
      throw new PluginError(
        `could not save the cluster intent log ${this.intents.path} (${unsynced.message}); the address is released again, nothing was assigned`,
      );
    }
    crashPoint('cluster-committed');
    try {
      this.intents.mark({ t: 'answered', at });
    } catch (err) {
      // Unmarked, the next start would roll it back under a container using it: roll it back now instead.
      this.inflight.delete(at);
      this.releases.enqueueKnown({ id: at, subnet, at });
      throw new PluginError(
        `could not write to the cluster intent log ${this.intents.path} (${(err as Error).message}); the address is released again, nothing was assigned`,
      );
    }
    request.taken?.(address);
    this.inflight.delete(at);
    crashPoint('cluster-answered');
    return address;
  }

  /** A take that did not commit: the mark only spares the next start a lookup, so failing to write it is harmless. */
  private markDropped(at: string): void {
    try {
      this.intents.mark({ t: 'dropped', at });
    } catch (err) {
      this.log.warn({ err, at }, 'could not mark a failed cluster take in the intent log; the next start looks it up');
    }
  }

  /** What this host's dynamic takes of `subnet` must pass over (see DynamicTakes.take). */
  private ownOf(subnet: string): Own {
    return { busy: this.busyOf(subnet), withheld: this.releases.namedAddresses(subnet) };
  }

  private busyOf(subnet: string): Set<bigint> {
    let set = this.busy.get(subnet);
    if (!set) this.busy.set(subnet, (set = new Set()));
    return set;
  }

  private async takeGiven(view: SubnetView, address: bigint, claim: Claim): Promise<bigint> {
    await this.releases.settleOwn(view, address);
    const busy = this.busyOf(view.subnet.text);
    if (busy.has(address)) throw this.inUse(view, address, 'another request of this host is taking it right now');
    const key = addressKey(this.kv.prefix, view.subnet, address);
    const value = encodeClaims([claim]);
    // A device's claim gives way to an address given by name: an --aux-address keeps such a device's address, and
    // a container's --ip is checked against the LAN at CreateEndpoint.
    const held = view.held.get(address);
    const device = held?.claims?.length === 1 && held.claims[0]!.kind === 'device' ? held : undefined;
    busy.add(address);
    try {
      const result = device ? await this.kv.replace(key, device.modRevision, value) : await this.kv.create(key, value);
      if (settleWrite(view, key, address, claim, result, value)) return address;
    } finally {
      busy.delete(address);
    }
    throw this.inUse(view, address, describeHolder(view.held.get(address)?.claims));
  }

  private inUse(view: SubnetView, address: bigint, holder: string): PluginError {
    return new PluginError(
      `address ${formatIp(view.subnet.v6, address)} of subnet ${view.subnet.text} is in use across the cluster (${holder}); choose another address, or leave it out to get a free one`,
    );
  }

  /** Gateway and aux: every host's request joins the shared reservation; a container's address is refused. */
  private async takeShared(view: SubnetView, address: bigint, claim: Claim): Promise<bigint> {
    const key = addressKey(this.kv.prefix, view.subnet, address);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const held = view.held.get(address);
      const claims = held?.claims;
      if (held && (!claims || !isShared(claims[0].kind))) throw this.inUse(view, address, describeHolder(claims));
      const value = encodeClaims([...(claims ?? []), claim]);
      const result = held ? await this.kv.replace(key, held.modRevision, value) : await this.kv.create(key, value);
      if (settleWrite(view, key, address, claim, result, value)) return address;
    }
    throw new PluginError(
      `could not join the shared reservation of ${formatIp(view.subnet.v6, address)} in subnet ${view.subnet.text}: it changed under each of ${MAX_ATTEMPTS} tries; retry`,
    );
  }

  /**
   * Releases this instance's claim `ref` on `address`: durable here before it resolves, applied to etcd now if etcd
   * answers, else queued and applied when it does. Resolves false when the view shows no such claim.
   */
  async release(subnet: Cidr, address: bigint, ref: string): Promise<boolean> {
    if (this.closed) throw new PluginError('tsmacvlan is shutting down; retry in a moment');
    return this.releases.release(subnet.text, formatIp(subnet.v6, address), ref);
  }

  /**
   * The network driver deleted the endpoint holding `address`: Docker's ReleaseAddress for it is due, and if it has
   * not come by `by` (a crash cut it short), the claim is released then, by its token, so nothing else is touched.
   * Only this instance's one endpoint claim on the address; durable here before it resolves.
   */
  async releaseDue(subnet: Cidr, address: bigint, by: number): Promise<void> {
    if (this.closed) return;
    const view = await this.view(subnet.text);
    const mine = view.held.get(address)?.claims?.filter((c) => c.owner === this.instance && c.kind === 'container');
    if (mine?.length !== 1) return; // released already, or claims of several pools: none is clearly the endpoint's
    const { at } = mine[0];
    await this.releases.releaseLater({ id: `due-${at}`, subnet: subnet.text, at, after: by });
  }

  /**
   * Releases this instance's container claims in `subnet` (only `address`'s, when given) that `forgotten` says no
   * endpoint uses: addresses Docker took and never used (ipam/forgotten-takes.ts). Takes in flight are never among
   * them; `forgotten` is asked in the same turn as the claims are read, and each claim goes by its token, so a claim
   * made since is untouched. Durable here before it resolves; resolves the addresses released.
   */
  async releaseForgotten(
    subnet: Cidr,
    address: bigint | undefined,
    forgotten: (address: bigint) => boolean,
  ): Promise<bigint[]> {
    if (this.closed) return [];
    const view = await this.view(subnet.text);
    const found: { address: bigint; at: string }[] = [];
    const consider = (value: bigint, held: Held | undefined) => {
      const mine = held?.claims?.filter((c) => c.owner === this.instance && c.kind === 'container');
      if (mine?.length !== 1 || this.inflight.has(mine[0].at) || !forgotten(value)) return;
      found.push({ address: value, at: mine[0].at });
    };
    if (address !== undefined) consider(address, view.held.get(address));
    else for (const [value, held] of view.held) consider(value, held);
    const now = Date.now();
    await Promise.all(
      found.map(({ at }) => this.releases.releaseLater({ id: `forgotten-${at}`, subnet: subnet.text, at, after: now })),
    );
    return found.map((f) => f.address);
  }

  /**
   * The last ReleasePool of pool `ref` on this instance: every claim of this instance with that ref in `subnet` is
   * released (durable before it resolves, applied now or when etcd answers). Other instances' claims stay.
   */
  async releasePool(subnet: Cidr, ref: string): Promise<void> {
    if (this.closed) throw new PluginError('tsmacvlan is shutting down; retry in a moment');
    await this.releases.releasePool(subnet.text, ref);
  }

  /** Who holds what in [lo, hi] of `subnet`, from the watched view (status). */
  async summary(subnet: Cidr, lo: bigint, hi: bigint): Promise<SubnetSummary> {
    return (await this.view(subnet.text)).summary(lo, hi);
  }

  /**
   * How full [lo, hi] of `subnet` is, from the watched view, without waiting: undefined while the view is not loaded
   * (it is asked for then, so a later call has it).
   */
  fill(subnet: Cidr, lo: bigint, hi: bigint): RangeHolding | undefined {
    const view = this.loaded.get(subnet.text);
    if (view) return view.fill(lo, hi, this.instance);
    if (!this.closed) this.view(subnet.text).catch(() => undefined);
    return undefined;
  }

  /** Every held address of [lo, hi] of `subnet` with its claims: which instance holds what (status). */
  async holdings(subnet: Cidr, lo: bigint, hi: bigint): Promise<{ address: string; claims: Claim[] | undefined }[]> {
    return (await this.view(subnet.text)).holdings(lo, hi);
  }

  /** The candidates the next dynamic takes of `request` would try (see DynamicTakes.upcoming). */
  async upcoming(request: TakeRequest, n: number): Promise<bigint[]> {
    const view = await this.view(request.subnet.text);
    return this.dynamic.upcoming(view, request, this.ownOf(request.subnet.text), n);
  }

  /** This instance's device claims in [lo, hi] of `subnet`: what its probes found held, to be probed again. */
  async deviceClaims(subnet: Cidr, lo: bigint, hi: bigint): Promise<{ address: bigint; claim: Claim }[]> {
    const view = await this.view(subnet.text);
    const found: { address: bigint; claim: Claim }[] = [];
    for (const [address, held] of view.held) {
      const claim = held.claims?.[0];
      if (address >= lo && address <= hi && claim?.kind === 'device' && claim.owner === this.instance)
        found.push({ address, claim });
    }
    return found;
  }

  /** Lists (dryRun) or frees what instance `id`, gone for good, held (gc --cluster --forget-instance). */
  forgetInstance(id: string, dryRun: boolean): Promise<Forgotten[]> {
    return forgetInstance(this.kv, this.instance, id, dryRun);
  }

  /** Releases queued and not yet applied to etcd (etcd down, or being applied). */
  get pendingReleases(): number {
    return this.releases.size;
  }

  /** Resolves once the release queue is empty (tests; bounded by the caller). */
  drained(): Promise<void> {
    return this.releases.drained();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.releases.stop();
    await Promise.all([...this.watches].map((w) => w.cancel().catch(() => undefined)));
    await this.intents.close();
  }
}

/** The service validates what Docker sent; this guards the table's keys against a caller's mistake. */
function checkRequest(request: TakeRequest): void {
  const { subnet, lo, hi, address } = request;
  if (
    lo > hi ||
    !contains(subnet, lo) ||
    !contains(subnet, hi) ||
    (address !== undefined && !contains(subnet, address))
  )
    throw new Error(
      `cluster take outside subnet ${subnet.text}: ${lo}-${hi}${address === undefined ? '' : ` at ${address}`}`,
    );
}
