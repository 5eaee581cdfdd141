// The fault soak (issue 28): 3 Docker hosts and 3 etcd members of the multi-host lab, one network per host on one
// cluster-wide range near full, clients that start and remove containers on every host without pause, a seeded
// nemesis (test/chaos/nemesis.ts), and a checker that trusts nothing of the plugin's (test/chaos/checker.ts): tcpdump
// on the lab's switch, Docker's answers, etcd's raw keys (etcdctl), the plugins' state dirs and the hosts' links.
import { execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  dockerDuplicates,
  hungRequests,
  judgeRefusals,
  maxHolders,
  type Graces,
  parseWire,
  refusalClass,
  type Op,
  type RunRecord,
  wireDuplicates,
} from './checker';
// Each container claims its address on the wire about once a second: ARP for an address nobody holds.
import { CLAIMER, Nemesis } from './nemesis';
import { describePlan, planFaults, prng } from './schedule';
import { DOCKER_CLIENT } from '../lab/engine';
import { LAN, MultiHostLab } from '../lab/multi-host';

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const IMAGE = process.env.TSMV_TEST_IMAGE ?? 'tsmacvlan-test/busybox:latest';
const RANGE_BASE = 128;
const RANGE_SIZE = 16; // --ip-range 10.201.0.128/28
/** The plugins' graces in the soak (the checker allows for them after a crash: see holdAfterHeal). */
const GRACES: Graces = { endpointMs: 20_000, releaseMs: 31_000 };
const inRange = (ip: string) => {
  const m = /^10\.201\.0\.(\d+)$/.exec(ip);
  return !!m && Number(m[1]) >= RANGE_BASE && Number(m[1]) < RANGE_BASE + RANGE_SIZE;
};
/** A request answered longer than this after it was asked, or after its host's last fault healed, hung. */
export const DEADLINE_MS = 30_000;
/** After a fault heals, the first `docker run` that has room succeeds within this. */
export const RECOVERY_MS = 5_000;

export interface SoakOptions {
  minutes: number;
  seed: number;
  workersPerHost?: number;
  meanFaultGapMs?: number;
  log?: (line: string) => void;
}

export interface SoakReport {
  seed: number;
  minutes: number;
  faultsByKind: Record<string, number>;
  runs: number;
  starts: number;
  refusalsByClass: Record<string, number>;
  refusalsByMessage: Record<string, number>;
  inaccurateRefusals: string[];
  hung: string[];
  probes: { after: string; ms: number; ok: boolean; room: boolean; error?: string }[];
  slowRecoveries: string[];
  wireClaims: number;
  wireDuplicates: string[];
  dockerDuplicates: string[];
  leakedClaims: string[];
  leakedRecords: string[];
  leakedLinks: string[];
  /** Containers started at the end on a range emptied of everything: the whole range, if nothing leaked. */
  refill: number;
  findings: string[];
}

/** Docker's answer, and the message a user reads when it refuses (its first line that is not a warning). */
async function docker(host: string, args: string[]): Promise<{ ok: boolean; out: string; error?: string }> {
  try {
    const { stdout } = await execFileP(DOCKER_CLIENT, ['-H', host, ...args], { timeout: 180_000 });
    return { ok: true, out: stdout.trim() };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const lines = (e.stderr || e.message).split('\n').map((l) => l.trim());
    return { ok: false, out: '', error: lines.find((l) => l && !/^WARNING/.test(l)) ?? e.message };
  }
}

/** The message without what differs from one request to the next (names, ids, numbers of this moment). */
function messageKey(message: string): string {
  return message
    .replace(/[0-9a-f]{12,64}/g, '<id>')
    .replace(/c\d+-\d+-\d+|probe\d+|fill\d+/g, '<name>')
    .replace(/\d+ by this host, \d+ hosts/g, '<n> by this host, <n> hosts')
    .replace(/\d+ ms/g, '<n> ms')
    .slice(0, 220);
}

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const log = options.log ?? ((line: string) => console.log(line));
  const durationMs = options.minutes * 60_000;
  const workers = options.workersPerHost ?? 5;
  const plan = planFaults(options.seed, durationMs, 3, options.meanFaultGapMs ?? 7_000);
  log(
    `chaos: seed ${options.seed}, ${options.minutes} min, ${workers} clients per host, ${plan.length} faults planned:`,
  );
  log(describePlan(plan));
  // Graces short enough that what a crashed engine forgot is gone within the 60 s the end waits for leftovers: an
  // endpoint after 20 s, then its address after 31 s (more than Docker's 30 s of retries); an address a lingering
  // process answered for (a device holding) is probed again every 20 s instead of 300.
  const pluginEnv = {
    TSMACVLAN_ENDPOINT_GRACE_S: String(GRACES.endpointMs / 1000),
    TSMACVLAN_RELEASE_GRACE_S: String(GRACES.releaseMs / 1000),
    TSMACVLAN_PROBE_RECHECK_SECONDS: '20',
  };
  const lab = await MultiHostLab.create(3, process.env.TSMV_ENGINE_BIN, { stateTmpfsMb: 16, pluginEnv });
  const wire = { text: '' };
  const tcpdump = spawn(
    'ip',
    ['netns', 'exec', lab.switchNs, 'tcpdump', '-i', 'br0', '-e', '-n', '-tt', '-l', 'arp or ip'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  tcpdump.stdout!.on('data', (d) => (wire.text += d));
  try {
    for (const host of lab.hosts) {
      const subnet = `--subnet ${LAN} --gateway 10.201.0.1 --ip-range 10.201.0.${RANGE_BASE}/28`;
      await host.docker(
        ...`network create -d ${host.driver} --ipam-driver ${host.driver} -o parent=eth1 ${subnet} lan`.split(' '),
      );
    }
    return await soak(lab, plan, durationMs, workers, options, log, wire);
  } finally {
    if (tcpdump.exitCode === null) tcpdump.kill('SIGTERM');
    await lab.destroy();
  }
}

async function soak(
  lab: MultiHostLab,
  plan: ReturnType<typeof planFaults>,
  durationMs: number,
  workers: number,
  options: SoakOptions,
  log: (line: string) => void,
  wire: { text: string },
): Promise<SoakReport> {
  const t0 = Date.now();
  const now = () => Date.now() - t0;
  const runs: RunRecord[] = [];
  const findings: string[] = [];
  const ops: Op[] = [];
  let macs = 0;
  let stopping = false;

  /** One `docker run` of the soak, recorded; removes what a refused one left. */
  const start = async (h: number, name: string, probe = false): Promise<RunRecord> => {
    const mac = `0a:${(h + 1).toString(16).padStart(2, '0')}:${(++macs)
      .toString(16)
      .padStart(8, '0')
      .replace(/(..)(?!$)/g, '$1:')}`;
    const run: RunRecord = { host: h, name, mac, asked: now(), answered: 0, ok: false, probe };
    runs.push(run);
    const host = lab.hosts[h].engine.host;
    const args = ['run', '-d', '--name', name, '--network', 'lan', '--mac-address', mac, IMAGE, 'sh', '-c', CLAIMER];
    const r = await docker(host, args);
    run.answered = now();
    ops.push({ host: h, what: `docker run ${name}`, asked: run.asked, answered: run.answered });
    run.ok = r.ok;
    if (r.ok) {
      const ip = await docker(host, [
        'inspect',
        '-f',
        '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}',
        name,
      ]);
      run.ip = ip.out || undefined;
      if (run.ip && !inRange(run.ip)) findings.push(`${name} got ${run.ip}, outside the range`);
    } else run.error = r.error;
    return run;
  };
  const remove = async (run: RunRecord): Promise<void> => {
    run.removeAsked = now();
    for (;;) {
      const asked = now();
      const r = await docker(lab.hosts[run.host].engine.host, ['rm', '-f', run.name]);
      ops.push({ host: run.host, what: `docker rm ${run.name}`, asked, answered: now() });
      if (r.ok || /No such container/i.test(r.error ?? '')) break;
      await sleep(1_000);
    }
    run.removed = now();
  };

  const client = async (h: number, w: number) => {
    const rand = prng(options.seed * 97 + h * 31 + w);
    for (let seq = 1; !stopping; seq++) {
      const run = await start(h, `c${h + 1}-${w}-${seq}`);
      if (run.ok) await sleep(500 + rand() * 3_500);
      await remove(run);
      if (!run.ok) await sleep(300 + rand() * 700);
    }
  };

  // After a fault heals with no other in place on a host it hit: one `docker run` there, timed.
  const probes: SoakReport['probes'] = [];
  const probing = new Set<number>();
  let probeSeq = 0;
  const probe = async (after: string, h: number) => {
    if (probing.has(h) || stopping) return;
    probing.add(h);
    try {
      const run = await start(h, `probe${++probeSeq}`, true);
      const room = maxHolders(runs, run.asked, run.answered, run, nemesis.faults, GRACES) < RANGE_SIZE;
      // A fault that came while it ran: not a recovery to judge.
      const hit = nemesis.faults.some(
        (f) =>
          (f.host === undefined || f.host === h) && f.started <= run.answered && (f.healed ?? Infinity) > run.asked,
      );
      if (!hit) probes.push({ after, ms: run.answered - run.asked, ok: run.ok, room, error: run.error });
      await remove(run);
    } finally {
      probing.delete(h);
    }
  };

  const nemesis: Nemesis = new Nemesis(lab, t0, log, (healed, quietHosts) => {
    for (const h of quietHosts) void probe(healed.kind, h);
  });
  const clients = lab.hosts.flatMap((_, h) => Array.from({ length: workers }, (_, w) => client(h, w)));
  const faults = nemesis.run(plan, () => stopping);
  const progress = setInterval(() => {
    const ok = runs.filter((r) => r.ok).length;
    log(
      `chaos: +${Math.round(now() / 1000)}s ${ok} started, ${runs.length - ok} refused, ${nemesis.faults.length} faults`,
    );
  }, 30_000);
  await sleep(durationMs);
  stopping = true;
  clearInterval(progress);
  await faults;
  await Promise.all(clients);
  while (probing.size) await sleep(200);
  const end = now();
  log(`chaos: clients stopped and faults healed at +${Math.round(end / 1000)}s; checking`);

  const leaks = await leftovers(lab, log);
  const refill = await refillRange(lab, start, remove, findings);
  const afterRefill = await leftovers(lab, log);
  await sleep(1_500); // the last frames reach tcpdump
  const claims = parseWire(wire.text);
  const rel = (t: number) => `+${(t - t0 / 1000).toFixed(1)}s`;
  const wireDups = wireDuplicates(claims, inRange).map(
    (d) => `${d.ip}: ${d.first} and ${d.second} between ${rel(d.from)} and ${rel(d.to)}`,
  );
  if (process.env.TSMV_CHAOS_HISTORY)
    writeFileSync(
      process.env.TSMV_CHAOS_HISTORY,
      JSON.stringify({ runs, faults: nemesis.faults, probes, ops, plugins: lab.hosts.map((h) => h.output) }, null, 1),
    );
  const refusals = judgeRefusals(runs, nemesis.faults, RANGE_SIZE, end, GRACES);
  const count = (keys: string[]) => keys.reduce<Record<string, number>>((m, k) => ((m[k] = (m[k] ?? 0) + 1), m), {});
  const slowRecoveries = probes
    .filter((p) => p.room && (!p.ok || p.ms > RECOVERY_MS))
    .map((p) => `after ${p.after}: ${p.ok ? `started in ${p.ms} ms` : `refused after ${p.ms} ms: ${p.error}`}`);
  return {
    seed: options.seed,
    minutes: options.minutes,
    faultsByKind: count(nemesis.faults.map((f) => f.kind)),
    runs: runs.length,
    starts: runs.filter((r) => r.ok).length,
    refusalsByClass: count(refusals.map((r) => r.class)),
    refusalsByMessage: count(refusals.map((r) => messageKey(r.run.error ?? ''))),
    inaccurateRefusals: refusals
      .filter((r) => !r.accurate)
      .map((r) => `${r.run.name} at +${(r.run.asked / 1000).toFixed(1)}s (${r.why}): ${r.run.error}`),
    hung: hungRequests(ops, nemesis.faults, DEADLINE_MS),
    probes,
    slowRecoveries,
    wireClaims: claims.length,
    wireDuplicates: wireDups,
    dockerDuplicates: dockerDuplicates(runs, nemesis.deaths),
    leakedClaims: [...leaks.claims, ...afterRefill.claims],
    leakedRecords: [...leaks.records, ...afterRefill.records],
    leakedLinks: [...leaks.links, ...afterRefill.links],
    refill,
    findings,
  };
}

/** What is left once every container is gone: etcd's claims in the range, endpoint records, links. Waits 60 s at most. */
async function leftovers(lab: MultiHostLab, log: (line: string) => void) {
  for (const host of lab.hosts) {
    const left = await docker(host.engine.host, ['ps', '-aq']);
    if (left.out) log(`chaos: containers left on ${host.name}: ${left.out.split('\n').join(' ')}`);
  }
  const deadline = Date.now() + 60_000;
  for (;;) {
    const found = { claims: await rawClaims(lab), records: endpointRecords(lab), links: await extraLinks(lab) };
    if (Date.now() > deadline || found.claims.length + found.records.length + found.links.length === 0) return found;
    await sleep(2_000);
  }
}

/** etcd's keys of addresses in the range, read with etcdctl (not the plugin's client). */
async function rawClaims(lab: MultiHostLab): Promise<string[]> {
  const { stdout } = await execFileP(
    '/usr/bin/etcdctl',
    [`--endpoints=${lab.etcd.endpoints.join(',')}`, 'get', '--prefix', '/', '--print-value-only=false'],
    { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 30_000, maxBuffer: 64 * 1024 * 1024 },
  );
  // Key and value alternate, one line each: a leaked claim is reported with who held it and as what.
  const lines = stdout.split('\n');
  const claims: string[] = [];
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const key = lines[i];
    if (key.includes('/subnets/10.201.0.0_24/') && inRange(key.slice(key.lastIndexOf('/') + 1)))
      claims.push(`${key} ${lines[i + 1].slice(0, 300)}`);
  }
  return claims;
}

function endpointRecords(lab: MultiHostLab): string[] {
  return lab.hosts.flatMap((host) => {
    let files: string[] = [];
    try {
      files = readdirSync(join(host.stateDir, 'endpoints'));
    } catch {
      // no endpoint ever recorded
    }
    // With its content and the plugin's lines about it: the lab, and so the file, is gone once the report is read.
    return files
      .filter((f) => f.endsWith('.json'))
      .map((f) => {
        let content = '';
        try {
          content = readFileSync(join(host.stateDir, 'endpoints', f), 'utf8').trim();
        } catch (err) {
          content = `(unreadable: ${(err as Error).message})`;
        }
        const id = f.slice(0, -'.json'.length);
        const said = host.output.split('\n').filter((line) => line.includes(id));
        return `${host.name}: endpoints/${f} ${content}${said.length ? `; the plugin said: ${said.join(' | ')}` : ''}`;
      });
  });
}

/** Links in the hosts' namespaces besides lo and the LAN's eth1 (a container's link left behind). */
async function extraLinks(lab: MultiHostLab): Promise<string[]> {
  const all: string[] = [];
  for (const host of lab.hosts) {
    const { stdout } = await execFileP('ip', ['-n', host.netns, '-o', 'link', 'show']);
    for (const line of stdout.split('\n')) {
      const name = /^\d+: ([^:@]+)/.exec(line)?.[1];
      if (name && name !== 'lo' && name !== 'eth1') all.push(`${host.name}: ${name}`);
    }
  }
  return all;
}

/** Fills the emptied range from all hosts: every address must start once, and one more must be refused as full. */
async function refillRange(
  lab: MultiHostLab,
  start: (h: number, name: string) => Promise<RunRecord>,
  remove: (run: RunRecord) => Promise<void>,
  findings: string[],
): Promise<number> {
  const started: RunRecord[] = [];
  await Promise.all(
    lab.hosts.map(async (_, h) => {
      for (let i = h; i < RANGE_SIZE; i += lab.hosts.length) {
        const run = await start(h, `fill${i}`);
        if (run.ok) started.push(run);
        else {
          findings.push(`refill: fill${i} on h${h + 1} refused: ${run.error}`);
          await remove(run);
        }
      }
    }),
  );
  const extra = await start(0, 'fill-extra');
  if (extra.ok) findings.push(`refill: a container beyond the range's ${RANGE_SIZE} started, with ${extra.ip}`);
  else if (refusalClass(extra.error ?? '') !== 'full')
    findings.push(`refill: the extra one refused with: ${extra.error}`);
  await remove(extra);
  for (const run of started) await remove(run);
  return started.length;
}

/** The findings that fail the soak, one line each. */
export function failures(report: SoakReport): string[] {
  const lines = (what: string, list: string[]) => list.map((l) => `${what}: ${l}`);
  return [
    ...lines('duplicate on the wire', report.wireDuplicates),
    ...lines('duplicate in Docker', report.dockerDuplicates),
    ...lines('leaked claim', report.leakedClaims),
    ...lines('leaked record', report.leakedRecords),
    ...lines('leaked link', report.leakedLinks),
    ...lines('inaccurate refusal', report.inaccurateRefusals),
    ...lines('hung', report.hung),
    ...lines('slow recovery', report.slowRecoveries),
    ...lines('finding', report.findings),
    ...(report.refill === RANGE_SIZE ? [] : [`only ${report.refill} of ${RANGE_SIZE} started on the emptied range`]),
    ...(report.wireClaims > 0 ? [] : ['tcpdump saw no claim at all: the wire check saw nothing']),
  ];
}
