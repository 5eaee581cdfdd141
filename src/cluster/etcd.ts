// The etcd connection of the cluster table, behind a narrow interface (one method = one round trip) so the table
// can be counted, and tried against a fake in unit tests. Every call has a deadline; every failure becomes an error
// that names etcd, its endpoints and what to check.
import { readFileSync } from 'node:fs';
import { ConsecutiveBreaker, ExponentialBackoff, circuitBreaker, handleWhen } from 'cockatiel';
import type { Etcd3, IKeyValue, IOptions, Watcher } from 'etcd3';
import { PluginError } from '../errors';
import { DurationHistogram } from '../stats/duration-histogram';
import { checkSettings, type EtcdSettings } from './etcd-settings';
import { normalPrefix } from './keys';

export { checkSettings, type EtcdSettings };

export interface KvEntry {
  key: string;
  value: string;
  modRevision: bigint;
}

/** A compare-and-set's outcome, with the store's revision: written, or not, with the key as it is (undefined: absent). */
export type TxnResult = { ok: true; revision: bigint } | { ok: false; revision: bigint; current: KvEntry | undefined };

export interface WatchEvents {
  put(entry: KvEntry): void;
  delete(key: string, revision: bigint): void;
  /** The watch ended and will not resume (e.g. its revision was compacted): read the range anew. */
  lost(err: Error): void;
}

export interface ClusterKv {
  /** Endpoints and prefix, for messages. */
  readonly endpoints: string[];
  readonly prefix: string;
  range(prefix: string): Promise<{ entries: KvEntry[]; revision: bigint }>;
  /** Writes `value` only if nobody holds `key` (its create revision is 0). */
  create(key: string, value: string): Promise<TxnResult>;
  /** Replaces `key` with `value` (or deletes it when undefined) only if it was not modified since `modRevision`. */
  replace(key: string, modRevision: bigint, value: string | undefined): Promise<TxnResult>;
  /** Events of keys under `prefix` from `fromRevision` on, in order. */
  watch(prefix: string, fromRevision: bigint, events: WatchEvents): Promise<{ cancel(): Promise<void> }>;
  close(): Promise<void>;
}

export const DEFAULT_PREFIX = '/tsmacvlan';
const DEFAULT_TIMEOUT_MS = 5000;
/** Longest single attempt within a call's deadline: a little more than an election takes with etcd's defaults. */
const ATTEMPT_MS = 1000;
const RETRY_PAUSE_MS = 50;
/** Time the loop could not run that is given back to an attempt; lateness below STALL_MIN_MS is normal jitter. */
const STALL_GRACE_MS = 1000;
const STALL_MIN_MS = 20;
const GRPC_MARGIN_MS = 500;
const FAIL_FAST_MS = 1000;
const HOST_PAUSE_MS = 500;
const WATCH_RETRY_MAX_MS = 1000;
/** A call's whole time, retries included: from a member's sub-millisecond answer to a deadline of several seconds. */
export const CALL_BOUNDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** TLS and permission failures do not go away by asking again. */
function retryable(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return !/ssl|tls|certificate|handshake|unauthenticated|permission denied|authentication/i.test(message);
}

/** Etcd could not do what was asked: unreachable, quorum lost, TLS or permission trouble. */
export class ClusterUnavailableError extends PluginError {}

/** Turns any failure of a call into a message for people: what failed, where, and what to check. */
export function describeEtcdFailure(err: unknown, endpoints: string[], timeoutMs: number, what: string): string {
  // gRPC's messages may span lines (OpenSSL's) and end in an empty "Resolution note:".
  const raw = (err instanceof Error ? err.message : String(err))
    .replace(/\s+/g, ' ')
    .replace(/\.? Resolution note: ?$/, '')
    .trim();
  // The client stops calling members that failed several times in a row, for a few seconds.
  const message = /circuit breaker is open/.test(raw) ? 'no member answered its last calls' : raw;
  const where = `etcd at ${endpoints.join(',')}`;
  const health = `etcdctl --endpoints=${endpoints.join(',')} endpoint health`;
  if (/ssl|tls|certificate|handshake|wrong version number/i.test(message)) {
    return `${what} failed: TLS with ${where} failed (${message}); check --etcd-ca, --etcd-cert and --etcd-key, and that the endpoints use https://`;
  }
  if (/unauthenticated|permission denied|authentication/i.test(message)) {
    return `${what} failed: ${where} refused the request (${message}); check the client certificate's user and its role on the prefix`;
  }
  if (/deadline|timed out|no leader|leader changed|too many requests/i.test(message)) {
    return `${what} failed: ${where} did not answer within ${timeoutMs} ms (${message}); a majority of its members may be down (quorum lost) or unreachable: check '${health}'. No address is handed out without etcd`;
  }
  if (/unavailable|connect|refused|no connection|no member answered|ECONN|EHOSTUNREACH|ENOTFOUND/i.test(message)) {
    return `${what} failed: could not reach ${where} (${message}); check that its members run (a majority must, or quorum is lost) and that the endpoints are right: '${health}'. No address is handed out without etcd`;
  }
  return `${what} failed: ${where} answered with an error (${message}); check '${health}'`;
}

function readPem(path: string | undefined, flag: string): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read ${flag} ${path} (${(err as Error).message}); give a PEM file readable by tsmacvlan`);
  }
}

function entryOf(kv: IKeyValue): KvEntry {
  return { key: kv.key.toString(), value: kv.value.toString(), modRevision: BigInt(kv.mod_revision) };
}

/**
 * etcd3 and its gRPC stack load when a cluster is configured, not with this file: a plugin without etcd starts
 * without parsing them, the larger part of its start on a slow CPU (an arm64 plugin under emulation, docs/arm64.md).
 */
function etcd3(): typeof import('etcd3') {
  return require('etcd3') as typeof import('etcd3');
}

export class EtcdKv implements ClusterKv {
  readonly endpoints: string[];
  readonly prefix: string;
  readonly timeoutMs: number;
  private readonly client: Etcd3;
  private failed: { at: number; err: unknown } | undefined;
  /** The call trying etcd while others fail fast: whether etcd answered it. */
  private scout: Promise<boolean> | undefined;
  /** When etcd last answered a call: a call that fails while others got answers does not make others fail fast. */
  private answeredAt = 0;
  /** Calls made (each one round trip unless the client retried on another member), for tests, status and bench. */
  calls = 0;
  /** How long each call took as the table waited for it, failures included (the metrics read it). */
  readonly durations = new DurationHistogram(CALL_BOUNDS);

  constructor(settings: EtcdSettings) {
    checkSettings(settings);
    this.endpoints = settings.endpoints;
    this.prefix = normalPrefix(settings.prefix ?? DEFAULT_PREFIX);
    this.timeoutMs = settings.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const { Etcd3, isRecoverableError } = etcd3();
    const options: IOptions = {
      hosts: settings.endpoints,
      dialTimeout: this.timeoutMs,
      // The client skips a member after 3 failures in a row; by default for 5 s, which, after an election that
      // failed calls on every member, would refuse everything for longer than a call's whole deadline.
      faultHandling: {
        host: () =>
          circuitBreaker(handleWhen(isRecoverableError), {
            halfOpenAfter: HOST_PAUSE_MS,
            breaker: new ConsecutiveBreaker(3),
          }),
        // A watch reconnects at most this long after etcd is back (etcd3's default waits up to 30 s), so views
        // are current again soon after an outage.
        // (etcd3's type wants a first step, not the factory its own default passes; it only ever calls next().)
        watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: WATCH_RETRY_MAX_MS }).next(),
      },
    };
    const ca = readPem(settings.ca, '--etcd-ca');
    if (ca) {
      options.credentials = {
        rootCertificate: ca,
        privateKey: readPem(settings.key, '--etcd-key'),
        certChain: readPem(settings.cert, '--etcd-cert'),
      };
    }
    this.client = new Etcd3(options);
  }

  /** One call, timed into `durations`: see attempts. */
  private call<T>(what: string, run: (grpcDeadline: Date, attemptEnd: Date) => Promise<T>): Promise<T> {
    return this.durations.time(() => this.attempts(what, run));
  }

  /**
   * Runs one call within the deadline, in attempts of at most ATTEMPT_MS: a request sent to a member just as the
   * leader died is never answered, and a new attempt after the election succeeds. Attempts are safe to repeat: a
   * take or release that did commit is recognised by its token on the next attempt. Failures become people's errors.
   *
   * `run` gets gRPC's deadline and the attempt's. gRPC judges its deadline in the loop's timer phase, before the
   * replies waiting in the socket are read: after the loop was busy (a burst of requests, a long GC) it would fail
   * calls etcd had answered in time, or count against etcd the time a request waited in this process to be sent. So
   * the attempt's verdict is withDeadline's: given after the loop has read what arrived, with the time the loop could
   * not run given back (up to STALL_GRACE_MS). gRPC's deadline comes after that, only to end abandoned attempts
   * (which also tells the client's per-member breaker that a member does not answer).
   */
  private async attempts<T>(what: string, run: (grpcDeadline: Date, attemptEnd: Date) => Promise<T>): Promise<T> {
    // Just after a call failed for its whole deadline with etcd answering nothing, requests waiting their turn must
    // not each wait a deadline of their own: one call at a time (the scout) tries etcd, the others wait for its
    // outcome and fail with it, or go on once it got an answer (etcd is back: the first request after an outage is
    // not refused for the outage's failure).
    const failed = this.failed;
    if (failed && Date.now() - failed.at < FAIL_FAST_MS) {
      if (this.scout) {
        if (!(await this.scout))
          throw new ClusterUnavailableError(
            describeEtcdFailure((this.failed ?? failed).err, this.endpoints, this.timeoutMs, what),
          );
      } else {
        let outcome!: (answered: boolean) => void;
        this.scout = new Promise<boolean>((resolve) => (outcome = resolve));
        try {
          const result = await this.attemptsNow(what, run);
          outcome(true);
          return result;
        } catch (err) {
          outcome(false);
          throw err;
        } finally {
          this.scout = undefined;
        }
      }
    }
    return this.attemptsNow(what, run);
  }

  private async attemptsNow<T>(what: string, run: (grpcDeadline: Date, attemptEnd: Date) => Promise<T>): Promise<T> {
    const started = Date.now();
    const end = started + this.timeoutMs;
    for (;;) {
      this.calls++;
      try {
        const attemptEnd = new Date(Math.min(end, Date.now() + ATTEMPT_MS));
        const grpcDeadline = new Date(attemptEnd.getTime() + STALL_GRACE_MS + GRPC_MARGIN_MS);
        const answer = run(grpcDeadline, attemptEnd);
        const result = await withDeadline(answer, attemptEnd, `no answer to ${what}`, STALL_GRACE_MS);
        this.answeredAt = Date.now();
        this.failed = undefined;
        return result;
      } catch (err) {
        if (Date.now() + RETRY_PAUSE_MS >= end || !retryable(err)) {
          if (this.answeredAt < started) this.failed = { at: Date.now(), err };
          throw new ClusterUnavailableError(describeEtcdFailure(err, this.endpoints, this.timeoutMs, what));
        }
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
      }
    }
  }

  /**
   * Whether etcd answers a linearizable read (which needs a quorum) within `timeoutMs`: the metrics' etcd_up, asked at
   * each scrape. Outside call(): it counts in neither `calls` nor `durations`, and never makes requests fail fast.
   */
  async answers(timeoutMs: number): Promise<boolean> {
    const deadline = new Date(Date.now() + timeoutMs);
    const read = this.client.get(`${this.prefix}/v1/probe`).options({ deadline }).exec();
    try {
      await withDeadline(read, deadline, 'a probe');
      return true;
    } catch {
      return false;
    }
  }

  range(prefix: string): Promise<{ entries: KvEntry[]; revision: bigint }> {
    return this.call(`reading ${prefix}`, async (deadline) => {
      const res = await this.client.getAll().prefix(prefix).options({ deadline }).exec();
      return { entries: res.kvs.map(entryOf), revision: BigInt(res.header.revision) };
    });
  }

  create(key: string, value: string): Promise<TxnResult> {
    return this.call(`taking ${key}`, async (deadline) => {
      const res = await this.client
        .if(key, 'Create', '==', 0)
        .then(this.client.put(key).value(value))
        .else(this.client.get(key))
        .options({ deadline })
        .commit();
      return this.outcome(res.succeeded, res.header.revision, res.responses[0]?.response_range?.kvs);
    });
  }

  replace(key: string, modRevision: bigint, value: string | undefined): Promise<TxnResult> {
    return this.call(`${value === undefined ? 'releasing' : 'updating'} ${key}`, async (deadline) => {
      const write = value === undefined ? this.client.delete().key(key) : this.client.put(key).value(value);
      const res = await this.client
        .if(key, 'Mod', '==', modRevision.toString())
        .then(write)
        .else(this.client.get(key))
        .options({ deadline })
        .commit();
      return this.outcome(res.succeeded, res.header.revision, res.responses[0]?.response_range?.kvs);
    });
  }

  private outcome(succeeded: boolean, revision: string, kvs: IKeyValue[] | undefined): TxnResult {
    if (succeeded) return { ok: true, revision: BigInt(revision) };
    const kv = kvs?.[0];
    return { ok: false, revision: BigInt(revision), current: kv ? entryOf(kv) : undefined };
  }

  async watch(prefix: string, fromRevision: bigint, events: WatchEvents): Promise<{ cancel(): Promise<void> }> {
    const watcher: Watcher = await this.call(`watching ${prefix}`, (_, attemptEnd) =>
      openWatch(this.client.watch().prefix(prefix).startRevision(fromRevision.toString()).create(), attemptEnd),
    );
    watcher.on('put', (kv) => events.put(entryOf(kv)));
    watcher.on('delete', (kv) => events.delete(kv.key.toString(), BigInt(kv.mod_revision)));
    watcher.on('error', (err) =>
      events.lost(new ClusterUnavailableError(describeEtcdFailure(err, this.endpoints, this.timeoutMs, 'a watch'))),
    );
    return { cancel: () => watcher.cancel() };
  }

  async close(): Promise<void> {
    this.client.close();
  }
}

/**
 * Rejects when `deadline` passes first, but only once the loop has polled after the timer (timers run before the
 * poll phase, setImmediate callbacks after it): a reply already waiting when the loop was stalled wins. A timer that
 * fires late means the loop could not run: that time (up to `graceMs` in all) is given back before the verdict.
 */
function withDeadline<T>(promise: Promise<T>, deadline: Date, message: string, graceMs = 0): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    let due = deadline.getTime();
    let given = 0;
    const verdict = () => {
      const stalled = Math.min(Date.now() - due, graceMs - given);
      if (stalled < STALL_MIN_MS) return reject(new Error(`deadline exceeded: ${message}`));
      given += stalled;
      due = Date.now() + stalled;
      timer = setTimeout(() => setImmediate(verdict), stalled);
    };
    timer = setTimeout(() => setImmediate(verdict), due - Date.now());
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Opens a watch within `deadline`; one that opens too late is cancelled, never left running unseen. */
function openWatch(opening: Promise<Watcher>, deadline: Date): Promise<Watcher> {
  let abandoned = false;
  opening.then(
    (watcher) => abandoned && void watcher.cancel(),
    () => undefined,
  );
  return withDeadline(opening, deadline, 'the watch was not accepted in time').catch((err: unknown) => {
    abandoned = true;
    throw err;
  });
}
