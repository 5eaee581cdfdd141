// Releases roll forward: each is durable in the intent log before it is answered, then applied to etcd, now if etcd
// answers, else by a retry loop once it does. A release removes claims of this instance, each in a transaction that
// fails if the key changed since it was read (so another host's claim is never touched): one claim, or, for a pool's
// last ReleasePool, every claim of that pool, which new takes of the pool wait for.
import type { Logger } from 'pino';
import { crashPoint } from '../state/crash';
import { PluginError } from '../errors';
import { parseIp } from '../ip/address';
import { type ClusterKv, ClusterUnavailableError } from './etcd';
import type { IntentLine, IntentLog, Release } from './intents';
import { type Claim, addressKey, encodeClaims } from './keys';
import type { Held, SubnetView } from './view';
import { TimedQueue } from '../state/timed-queue';

export type { Release };

/** Retries of one release whose key keeps changing under it (other hosts joining or leaving a shared address). */
const MAX_ATTEMPTS = 8;
/** Pause between rounds of the retry loop while etcd does not answer. */
const RETRY_MS = 1000;

function newId(): string {
  return `r${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
}

/**
 * The queued releases by id, indexed for the takes that must wait for one: by pool, and by address (a rollback by
 * token, whose address the view must be asked for, is listed per subnet; there are few, only after failures).
 */
class Queued {
  private readonly byId = new Map<string, Release>();
  private readonly index = new Map<string, Set<string>>();
  /** Per subnet, the addresses of releases Docker asked for (by address and pool, not by token) still queued. */
  private readonly named = new Map<string, Set<bigint>>();

  get size(): number {
    return this.byId.size;
  }

  get(id: string): Release | undefined {
    return this.byId.get(id);
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  values(): IterableIterator<Release> {
    return this.byId.values();
  }

  keys(): IterableIterator<string> {
    return this.byId.keys();
  }

  set(id: string, release: Release): void {
    this.delete(id);
    this.byId.set(id, release);
    const key = indexKey(release);
    let ids = this.index.get(key);
    if (!ids) this.index.set(key, (ids = new Set()));
    ids.add(id);
    const address = namedAddress(release);
    if (address !== undefined) this.namedIn(release.subnet).add(address);
  }

  delete(id: string): void {
    const release = this.byId.get(id);
    if (!release) return;
    this.byId.delete(id);
    const key = indexKey(release);
    const ids = this.index.get(key);
    ids?.delete(id);
    if (ids?.size === 0) {
      this.index.delete(key);
      const address = namedAddress(release);
      if (address !== undefined) this.named.get(release.subnet)?.delete(address);
    }
  }

  /** The addresses of `subnet` with a release by address queued: a live set, kept as releases come and go. */
  namedIn(subnet: string): Set<bigint> {
    let addresses = this.named.get(subnet);
    if (!addresses) this.named.set(subnet, (addresses = new Set()));
    return addresses;
  }

  /** Ids of the releases of pool `ref`, of `address`, or by token, in `subnet`. */
  of(key: { subnet: string; pool?: string; address?: bigint }): Iterable<string> {
    return this.index.get(indexKey(key)) ?? [];
  }
}

/** The address a release Docker asked for names: it removes whichever claim of the pool the address holds then. */
function namedAddress(release: Release): bigint | undefined {
  if (release.at !== undefined || release.pool !== undefined || release.address === undefined) return undefined;
  return parseIp(release.address)?.value;
}

function indexKey(release: { subnet: string; pool?: string; address?: string | bigint }): string {
  if (release.pool !== undefined) return `${release.subnet} pool ${release.pool}`;
  const address = typeof release.address === 'string' ? parseIp(release.address)?.value : release.address;
  return address === undefined ? `${release.subnet} tokens` : `${release.subnet} ${address}`;
}

export class ReleaseQueue {
  private readonly queue = new Queued();
  /** Releases due later (see releaseLater): queued when they fall due. */
  private readonly later = new TimedQueue<Release>(
    (release) => this.enqueueKnown(release),
    () => undefined,
  );
  private readonly applying = new Map<string, Promise<void>>();
  /** Releases being made durable: none is applied before its line is on disk (a restart would apply it again). */
  private readonly saving = new Map<string, Promise<void>>();
  /** Tokens of takes whose outcome was unknown and that were not found: released if they ever show up. */
  private readonly orphans = new Set<string>();
  private down = false;
  private timer: NodeJS.Timeout | undefined;
  private looping: Promise<void> | undefined;
  private stopped = false;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly intents: IntentLog,
    private readonly log: Logger,
    private readonly instance: string,
    private readonly kv: ClusterKv,
    private readonly viewOf: (subnet: string) => Promise<SubnetView>,
    /** The takes of pool `ref` in `subnet` under way, which a pool's release waits for. */
    private readonly takesUnderWay: (subnet: string, ref: string) => Promise<unknown>[],
    unfinished: Release[],
  ) {
    for (const release of unfinished) {
      if ((release.after ?? 0) > Date.now()) this.later.add(release, release.after!);
      else this.queue.set(release.id, release);
    }
  }

  /**
   * Queues `release` (by token) to be applied at `release.after`, durable before it resolves: a release Docker owes
   * for an endpoint it deleted. Docker's own release of the claim, if it comes first, leaves it nothing to do.
   */
  async releaseLater(release: Release): Promise<void> {
    this.later.add(release, release.after!);
    try {
      await this.intents.writtenNow({ t: 'release', ...release });
    } catch (err) {
      this.later.remove(release);
      throw err;
    }
  }

  get size(): number {
    return this.queue.size;
  }

  lines(): IntentLine[] {
    return [...this.queue.values(), ...this.later.values()].map((release) => ({ t: 'release', ...release }));
  }

  /** Queues a release the log already implies (a take whose etcd outcome is unknown) and starts applying it. */
  enqueueKnown(release: Release): void {
    this.queue.set(release.id, release);
    this.kick();
  }

  /** A release Docker asked for; see ClusterTable.release. */
  async release(subnet: string, address: string, ref: string): Promise<boolean> {
    const release: Release = { id: newId(), subnet, address, ref };
    // Written first, before any wait: a process killed from here on keeps it (Docker would retry it with an empty
    // body, which says nothing).
    await this.record(release);
    crashPoint('cluster-release-saved');
    if (!this.down) {
      const view = await this.viewOf(subnet).catch((err: unknown) => this.unavailable(err));
      if (view && !this.target(view, release)) {
        this.done(release);
        return false;
      }
    }
    await this.applyNowOrLater(release);
    return true;
  }

  /**
   * The last ReleasePool of pool `ref` on this instance: releases every claim of this instance with that ref in
   * `subnet`, whatever Docker did not release (a ReleaseAddress lost to a crash). Takes of the pool made after this
   * call wait until it is applied, so it never touches a claim of a network created anew with the same pool.
   */
  async releasePool(subnet: string, ref: string): Promise<void> {
    const release: Release = { id: newId(), subnet, pool: ref };
    await this.record(release);
    crashPoint('cluster-pool-release-saved');
    await this.applyNowOrLater(release);
  }

  /**
   * Queues `release` and writes its line (at once: takes see it, a kill keeps it); resolves once it is synced, or
   * once the write failed. A release the log cannot hold (a full or failing disk) still goes ahead, queued in memory
   * only: it removes claims of this instance alone, so applying it unrecorded risks nothing but its loss if
   * tsmacvlan stops before etcd has it, while refusing it would lose it for good (Docker does not ask again).
   */
  private async record(release: Release): Promise<void> {
    this.queue.set(release.id, release);
    let saving: Promise<void>;
    try {
      saving = this.intents.writtenNow({ t: 'release', ...release });
    } catch (err) {
      saving = Promise.reject(err);
    }
    this.saving.set(release.id, saving);
    try {
      await saving;
    } catch (err) {
      this.log.error(
        { err: (err as Error).message, path: this.intents.path, release },
        'could not save a release in the cluster intent log; applying it unrecorded (lost if tsmacvlan stops before etcd has it)',
      );
    } finally {
      this.saving.delete(release.id);
    }
  }

  /** Durable now: whatever stops it reaching etcd, it stays queued and the answer is yes. */
  private async applyNowOrLater(release: Release): Promise<void> {
    if (!this.down) await this.apply(release.id).catch((err: unknown) => this.deferred(err));
    if (this.queue.has(release.id)) this.kick();
  }

  private deferred(err: unknown): void {
    if (err instanceof ClusterUnavailableError) this.unavailable(err);
    else this.log.warn({ err }, 'a release could not be applied to etcd yet; it stays queued');
  }

  private unavailable(err: unknown): undefined {
    if (!(err instanceof ClusterUnavailableError)) throw err;
    this.down = true;
    this.log.warn({ err: err.message }, 'etcd does not answer; releases are queued and applied when it does');
    return undefined;
  }

  /** The claim `release` removes, if the view shows it. */
  private target(view: SubnetView, release: Release): { address: bigint; held: Held; claim: Claim } | undefined {
    if (release.at !== undefined) return view.findToken(release.at);
    if (release.pool !== undefined) return this.claimOfPool(view, release.pool);
    const address = release.address === undefined ? undefined : parseIp(release.address)?.value;
    const held = address === undefined ? undefined : view.held.get(address);
    const claim = held?.claims?.filter((c) => c.owner === this.instance && c.ref === release.ref).pop();
    return held && claim && address !== undefined ? { address, held, claim } : undefined;
  }

  private claimOfPool(view: SubnetView, ref: string): { address: bigint; held: Held; claim: Claim } | undefined {
    for (const [address, held] of view.held) {
      const claim = held.claims?.find((c) => c.owner === this.instance && c.ref === ref);
      if (claim) return { address, held, claim };
    }
    return undefined;
  }

  /** Applies one queued release; concurrent calls for one release share one application. */
  private apply(id: string): Promise<void> {
    let running = this.applying.get(id);
    if (!running) {
      running = this.applyOnce(id).finally(() => this.applying.delete(id));
      this.applying.set(id, running);
    }
    return running;
  }

  private async applyOnce(id: string): Promise<void> {
    await this.saving.get(id)?.catch(() => undefined);
    const release = this.queue.get(id);
    if (!release) return;
    // A take of the pool that began before its release (Docker gave up waiting for it) lands first, then goes too.
    if (release.pool !== undefined) await Promise.allSettled(this.takesUnderWay(release.subnet, release.pool));
    const view = await this.viewOf(release.subnet);
    if (release.at !== undefined && !this.target(view, release)) {
      // A rollback of a take whose commit the watch may not have delivered yet: ask etcd itself.
      const { entries } = await this.kv.range(view.prefix);
      for (const entry of entries) view.put(entry);
    }
    // Each success removes one claim (a pool's release goes on to the next); each loss re-reads the key.
    for (let losses = 0; losses < MAX_ATTEMPTS;) {
      const target = this.target(view, release);
      if (!target) {
        // A rollback's take may yet show up (its outcome was unknown); a release due was made unneeded by Docker's.
        if (release.at !== undefined && release.after === undefined) this.orphans.add(release.at);
        return this.done(release);
      }
      const key = addressKey(this.kv.prefix, view.subnet, target.address);
      const remaining = target.held.claims!.filter((c) => c !== target.claim);
      const value = remaining.length > 0 ? encodeClaims(remaining) : undefined;
      const result = await this.kv.replace(key, target.held.modRevision, value);
      this.down = false;
      if (result.ok) {
        if (value === undefined) view.delete(key, result.revision);
        else view.put({ key, value, modRevision: result.revision });
        if (release.pool === undefined) return this.done(release);
        crashPoint('cluster-pool-claim-released');
        continue;
      }
      losses++;
      if (result.current) view.put(result.current);
      else view.delete(key, result.revision);
    }
    throw new PluginError(
      `could not release ${release.address ?? release.at ?? `the claims of pool ${release.pool}`} in subnet ${release.subnet}: it changed under each of ${MAX_ATTEMPTS} tries; it stays queued`,
    );
  }

  private done(release: Release): void {
    crashPoint('cluster-release-applied');
    this.intents.mark({ t: 'released', id: release.id });
    this.queue.delete(release.id);
    if (this.queue.size === 0) for (const wake of this.waiters.splice(0)) wake();
  }

  /** Applies any release of this instance still queued for `address` before a new take of it (a pool's: see take). */
  async settleOwn(view: SubnetView, address: bigint): Promise<void> {
    const subnet = view.subnet.text;
    for (const id of [...this.queue.of({ subnet, address })]) await this.apply(id);
    for (const id of [...this.queue.of({ subnet })]) {
      const release = this.queue.get(id);
      if (release && this.target(view, release)?.address === address) await this.apply(id);
    }
  }

  /**
   * Applies now every release of this instance queued for `subnet` but those of whole pools (which wait for the
   * pools' takes under way): rollbacks of takes whose outcome an outage hid, releases Docker asked for meanwhile.
   * Throws etcd's error when etcd does not answer. For a take that finds no free address in the view.
   */
  async settleSubnet(subnet: string): Promise<void> {
    const ids = [...this.queue.keys()].filter((id) => {
      const release = this.queue.get(id)!;
      return release.subnet === subnet && release.pool === undefined;
    });
    for (const id of ids) await this.apply(id);
  }

  /**
   * The addresses of `subnet` a release Docker asked for still names (a live set). A new take must not pick one: such
   * a release removes this instance's claim of the pool on the address, and if it was applied already but its answer
   * was lost (an etcd outage, a crash before the done mark), its next try would remove the new claim instead, under
   * a container using the address. Settled first (see settleSubnet), it finds nothing and is done.
   */
  namedAddresses(subnet: string): ReadonlySet<bigint> {
    return this.queue.namedIn(subnet);
  }

  /** A queued release of pool `ref` in `subnet`, which a new take of that pool must wait for. */
  pendingPool(subnet: string, ref: string): string | undefined {
    for (const id of this.queue.of({ subnet, pool: ref })) return id;
    return undefined;
  }

  /** Applies the queued release `id` now (a take waiting for it fails with etcd's error when etcd does not answer). */
  applyPending(id: string): Promise<void> {
    return this.apply(id);
  }

  /** A watch showed `address` changed: a claim of a take given up for lost that did commit is released now. */
  noticed(view: SubnetView, address: bigint): void {
    for (const claim of view.held.get(address)?.claims ?? []) {
      if (claim.owner !== this.instance || !this.orphans.delete(claim.at)) continue;
      this.log.warn({ subnet: view.subnet.text, at: claim.at }, 'a take reported as failed did commit; releasing it');
      const release: Release = { id: claim.at, subnet: view.subnet.text, at: claim.at };
      void this.record(release).then(() => this.kick());
    }
  }

  /** Starts the retry loop unless it runs. */
  kick(): void {
    if (this.stopped || this.looping || this.timer) return;
    this.looping = this.loop().finally(() => {
      this.looping = undefined;
      // A release queued after the loop's last look but before this ran found the loop still running: go again.
      if (this.queue.size > 0) this.kick();
    });
  }

  /** Applies every queued release once, including those queued meanwhile; on a failure, retries after a pause. */
  private async loop(): Promise<void> {
    const tried = new Set<string>();
    for (;;) {
      const id = [...this.queue.keys()].find((queued) => !tried.has(queued));
      if (id === undefined || this.stopped) return;
      tried.add(id);
      try {
        await this.apply(id);
      } catch (err) {
        if (!(err instanceof ClusterUnavailableError)) this.log.error({ err, id }, 'a queued release failed');
        else this.down = true;
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.kick();
        }, RETRY_MS);
        this.timer.unref();
        return;
      }
    }
  }

  /** Resolves when nothing is queued. */
  drained(): Promise<void> {
    if (this.queue.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.later.stop();
  }
}
