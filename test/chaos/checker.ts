// The soak's checker (test/chaos/soak.ts). It shares no code with the plugin: it judges what tcpdump saw on the lab's
// switch, what the clients saw Docker answer, and what etcd, the plugins' state dirs and the kernel hold at the end.
// Everything here is pure (text and history in, findings out), so that its unit test proves it can fail.

/** One frame on the wire that says "this IP is mine": an ARP sender, an ARP reply's `is-at`, or an IP source. */
export interface WireClaim {
  /** Seconds (tcpdump's -tt). */
  t: number;
  mac: string;
  ip: string;
}

const MAC = '[0-9a-f]{2}(?::[0-9a-f]{2}){5}';
const IPV4 = '\\d{1,3}(?:\\.\\d{1,3}){3}';
const HEAD = new RegExp(`^(\\d+\\.\\d+) (${MAC}) > (${MAC}), ethertype (\\S+) \\(0x[0-9a-f]{4}\\), length \\d+: (.*)$`);
const ARP_REQUEST = new RegExp(`Request who-has ${IPV4}(?: \\(${MAC}\\))? tell (${IPV4})`);
const ARP_REPLY = new RegExp(`Reply (${IPV4}) is-at (${MAC})`);
const IP_SOURCE = new RegExp(`^(${IPV4})(?:\\.\\d+)? > `);

/** The claims in the text of `tcpdump -e -n -tt -l` (ARP and IPv4); other lines are ignored. */
export function parseWire(text: string): WireClaim[] {
  const claims: WireClaim[] = [];
  for (const line of text.split('\n')) {
    const head = HEAD.exec(line.trim());
    if (!head) continue;
    const [, t, src, , type, rest] = head;
    if (type === 'ARP') {
      const reply = ARP_REPLY.exec(rest);
      if (reply) claims.push({ t: Number(t), mac: reply[2], ip: reply[1] });
      const request = ARP_REQUEST.exec(rest);
      if (request && request[1] !== '0.0.0.0') claims.push({ t: Number(t), mac: src, ip: request[1] });
    } else if (type === 'IPv4') {
      const source = IP_SOURCE.exec(rest);
      if (source && source[1] !== '0.0.0.0') claims.push({ t: Number(t), mac: src, ip: source[1] });
    }
  }
  return claims;
}

/** Two MACs that claimed one IP at one moment: `first` claimed it before and after `second` did. */
export interface WireDuplicate {
  ip: string;
  first: string;
  second: string;
  /** When `second` claimed it, and when `first` claimed it again. */
  from: number;
  to: number;
}

/**
 * Duplicates on the wire among the claims of addresses `inScope` accepts. An address moves from one container to
 * the next all the time, so a change of MAC alone proves nothing; a MAC that claims an IP again after another MAC did
 * (A, B, A) was holding it while the other one claimed it: both at once. Every container of the soak claims its
 * address about once a second, so two holders at once interleave within seconds.
 */
export function wireDuplicates(claims: WireClaim[], inScope: (ip: string) => boolean): WireDuplicate[] {
  const found: WireDuplicate[] = [];
  const byIp = new Map<string, WireClaim[]>();
  for (const c of claims) {
    if (!inScope(c.ip)) continue;
    const list = byIp.get(c.ip) ?? [];
    list.push(c);
    byIp.set(c.ip, list);
  }
  for (const [ip, list] of byIp) {
    list.sort((a, b) => a.t - b.t);
    // For each MAC, when another MAC last claimed the IP after this MAC's latest claim.
    const last = new Map<string, number>();
    const reported = new Set<string>();
    for (const c of list) {
      const mine = last.get(c.mac);
      if (mine !== undefined) {
        for (const [mac, t] of last) {
          const pair = `${c.mac} ${mac}`;
          if (mac !== c.mac && t > mine && !reported.has(pair)) {
            reported.add(pair);
            found.push({ ip, first: c.mac, second: mac, from: t, to: c.t });
          }
        }
      }
      last.set(c.mac, c.t);
    }
  }
  return found;
}

/** What a client saw of one `docker run` (times in ms since the soak began). */
export interface RunRecord {
  host: number;
  name: string;
  asked: number;
  answered: number;
  ok: boolean;
  /** The refusal's first meaningful line. */
  error?: string;
  ip?: string;
  mac?: string;
  /** When its `docker rm -f` was asked and succeeded (undefined: never removed). */
  removeAsked?: number;
  removed?: number;
  probe?: boolean;
}

/** A fault as the nemesis ran it (ms since the soak began); `healed` undefined while it lasts. */
export interface FaultRecord {
  kind: string;
  /** Host index it hit, or undefined for the etcd cluster as a whole. */
  host?: number;
  started: number;
  healed?: number;
}

/** A refusal's class: what its message says is wrong. */
export function refusalClass(message: string): string {
  if (/no free address/i.test(message)) return 'full';
  if (/ENOSPC|no space left/i.test(message)) return 'disk full';
  if (/etcd|quorum/i.test(message)) return 'etcd';
  if (/Cannot connect to the Docker daemon|docker\.sock/i.test(message)) return 'dockerd down';
  if (/plugin|\.sock|connection refused|EOF/i.test(message)) return 'plugin unreachable';
  if (/deadline|timed? ?out|timeout/i.test(message)) return 'timeout';
  return 'other';
}

/** The kinds of fault that explain a refusal of each class, besides a full range. */
const EXPLAINED_BY: Record<string, RegExp> = {
  etcd: /^(etcd|partition|isolate)/,
  'disk full': /^disk/,
  'dockerd down': /^dockerd/,
  'plugin unreachable': /^(plugin|dockerd)/,
  timeout: /./,
  other: /./,
};

/** How long after a fault heals a refusal may still be its doing (a client's retry, Docker's own back-off). */
export const AFTERMATH_MS = 15_000;

/** The plugin's graces (its TSMACVLAN_ENDPOINT_GRACE_S and TSMACVLAN_RELEASE_GRACE_S in the soak), in ms. */
export interface Graces {
  endpointMs: number;
  releaseMs: number;
}

/**
 * How long after a fault heals the plugins may still hold the address of a container whose life it overlapped, by the
 * fault's kind, as docs/state.md promises: after a crash of the host's plugin or engine, until what Docker forgot is
 * found (an endpoint or an address after the endpoint grace, its release after the release grace); after etcd was out
 * of the host's reach (or its disk full), until its queued releases reach etcd. Undefined: no hold (hosts cut from
 * each other still reach etcd).
 */
export function holdAfterHeal(kind: string, graces: Graces): number | undefined {
  if (kind === 'plugin-kill' || kind === 'dockerd-restart') return graces.endpointMs + graces.releaseMs;
  if (/^(etcd|partition-etcd|isolate|disk)/.test(kind)) return AFTERMATH_MS;
  return undefined;
}

/**
 * Until when `run`'s address may be held: its removal, or later when a fault on its host (or on etcd) overlapped its
 * life (see holdAfterHeal). Infinity while it is not removed.
 */
export function heldUntil(run: RunRecord, faults: FaultRecord[], graces: Graces): number {
  let until = run.removed ?? Infinity;
  for (const f of faults) {
    const lag = holdAfterHeal(f.kind, graces);
    if (lag === undefined || (f.host !== undefined && f.host !== run.host)) continue;
    if (f.started > until || (f.healed ?? Infinity) < run.asked) continue;
    until = Math.max(until, (f.healed ?? Infinity) + lag);
  }
  return until;
}

/**
 * Containers that may hold an address of the range at some moment of [from, to]: every one asked for before `to` and
 * not yet removed at `from` (an unanswered run or a failed `rm` may hold one), or removed but still within what a fault
 * on its host lets the plugins hold (heldUntil; without `faults`, Docker's view alone).
 */
export function maxHolders(
  runs: RunRecord[],
  from: number,
  to: number,
  except?: RunRecord,
  faults: FaultRecord[] = [],
  graces: Graces = { endpointMs: 0, releaseMs: 0 },
): number {
  return runs.filter((r) => r !== except && r.asked <= to && heldUntil(r, faults, graces) >= from).length;
}

export interface Refusal {
  run: RunRecord;
  class: string;
  accurate: boolean;
  why?: string;
}

/**
 * Judges every refused run: "full" only when the containers across the hosts could hold `rangeSize` addresses while it
 * was asked (Docker's view, and what faults let the plugins hold after a removal: maxHolders); any other refusal only while (or just after) a fault that explains it hit its host or etcd.
 */
export function judgeRefusals(
  runs: RunRecord[],
  faults: FaultRecord[],
  rangeSize: number,
  end: number,
  graces: Graces = { endpointMs: 0, releaseMs: 0 },
): Refusal[] {
  return runs
    .filter((r) => !r.ok)
    .map((run) => {
      const cls = refusalClass(run.error ?? '');
      if (cls === 'full') {
        const could = maxHolders(runs, run.asked, run.answered, run, faults, graces);
        return could >= rangeSize
          ? { run, class: cls, accurate: true }
          : { run, class: cls, accurate: false, why: `called full with at most ${could} of ${rangeSize} held` };
      }
      const explains = EXPLAINED_BY[cls];
      const during = faults.some(
        (f) =>
          explains.test(f.kind) &&
          (f.host === undefined || f.host === run.host) &&
          f.started <= run.answered &&
          (f.healed ?? end) + AFTERMATH_MS >= run.asked,
      );
      return during
        ? { run, class: cls, accurate: true }
        : { run, class: cls, accurate: false, why: 'no fault to explain it' };
    });
}

/** One request to Docker (a run or an rm) and how long it took (ms since the soak began). */
export interface Op {
  host: number;
  what: string;
  asked: number;
  answered: number;
}

/**
 * Requests that hung: answered more than `deadlineMs` after they were asked, or after the last fault that was in
 * place on their host (or on etcd) while they waited healed: Docker waits for a plugin that is down, and that wait is
 * the fault's, not a hang.
 */
export function hungRequests(ops: Op[], faults: FaultRecord[], deadlineMs: number): string[] {
  return ops
    .map((op) => {
      const heals = faults
        .filter((f) => (f.host === undefined || f.host === op.host) && f.started <= op.answered)
        .map((f) => f.healed ?? op.answered)
        .filter((healed) => healed >= op.asked);
      const from = Math.max(op.asked, ...heals);
      return { op, waited: op.answered - from };
    })
    .filter(({ waited }) => waited > deadlineMs)
    .map(
      ({ op, waited }) => `${op.what} on h${op.host + 1}: ${op.answered - op.asked} ms, ${waited} ms past any fault`,
    );
}

/** Two containers Docker gave one address while both were certainly up (`deaths`: per host, when its dockerd died). */
export function dockerDuplicates(runs: RunRecord[], deaths: Map<number, number[]>): string[] {
  const up = runs
    .filter((r) => r.ok && r.ip)
    .map((r) => {
      const death = (deaths.get(r.host) ?? []).find((t) => t >= r.answered);
      const until = Math.min(r.removeAsked ?? Infinity, death ?? Infinity);
      return { r, from: r.answered, until };
    });
  const found: string[] = [];
  const byIp = new Map<string, typeof up>();
  for (const u of up) byIp.set(u.r.ip!, [...(byIp.get(u.r.ip!) ?? []), u]);
  for (const [ip, list] of byIp) {
    list.sort((a, b) => a.from - b.from);
    for (let i = 1; i < list.length; i++)
      for (let j = 0; j < i; j++)
        if (list[j].until > list[i].from)
          found.push(
            `${ip}: ${list[j].r.name} (h${list[j].r.host + 1}) and ${list[i].r.name} (h${list[i].r.host + 1})`,
          );
  }
  return found;
}
