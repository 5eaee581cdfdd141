// A real etcd cluster for tests: members of Debian's etcd-server, started as child processes and stopped by their
// PIDs. Each member listens on the given host (loopback of the test's namespace, or an address on the lab LAN).
// For benches only (test/bench/cluster-docker.ts), to tell the machine's disk from the code:
//   TSMV_ETCD_DATA_ROOT  where the members' data dirs are made (default: the OS temp dir), e.g. /dev/shm (tmpfs)
//   TSMV_ETCD_METRICS    etcd's --metrics level (etcd's default: basic); `extensive` adds per-method gRPC latencies
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const ETCD = '/usr/bin/etcd';
const ETCDCTL = '/usr/bin/etcdctl';
const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface MemberSpec {
  name: string;
  host: string;
  clientPort: number;
  peerPort: number;
}

interface Member extends MemberSpec {
  child: ChildProcess | undefined;
  output: string;
}

/** Fails with what to install when the tools are missing: a test that needs etcd never skips silently. */
export function requireEtcd(): void {
  for (const [tool, pkg] of [
    [ETCD, 'etcd-server'],
    [ETCDCTL, 'etcd-client'],
  ]) {
    if (!existsSync(tool)) throw new Error(`${tool} is missing: install Debian's ${pkg} (apt-get install ${pkg})`);
  }
}

/** Server side of TLS on the client port: members require client certificates signed by `ca`. */
export interface ServerTls {
  ca: string;
  cert: string;
  key: string;
}

export class EtcdCluster {
  readonly dir: string;
  private readonly members: Member[];

  /** `prefix` names the temp dir and the cluster token, so two clusters on one machine never mix. */
  constructor(
    readonly prefix: string,
    specs: MemberSpec[],
    private readonly tls?: ServerTls,
  ) {
    requireEtcd();
    this.dir = mkdtempSync(join(process.env.TSMV_ETCD_DATA_ROOT || tmpdir(), `${prefix}-etcd-`));
    this.members = specs.map((spec) => ({ ...spec, child: undefined, output: '' }));
  }

  /** `count` members on `host`, client ports from `basePort`, peer ports right after them. */
  static onHost(prefix: string, host: string, basePort: number, count = 3, tls?: ServerTls): EtcdCluster {
    const specs = Array.from({ length: count }, (_, i) => ({
      name: `${prefix}m${i}`,
      host,
      clientPort: basePort + i,
      peerPort: basePort + count + i,
    }));
    return new EtcdCluster(prefix, specs, tls);
  }

  get endpoints(): string[] {
    return this.members.map((m) => `${this.tls ? 'https' : 'http'}://${m.host}:${m.clientPort}`);
  }

  endpoint(i: number): string {
    return this.endpoints[i];
  }

  async start(): Promise<void> {
    for (let i = 0; i < this.members.length; i++) this.startMember(i);
    await this.waitHealthy(this.endpoints, 30_000);
  }

  /**
   * Starts (or restarts, with its data) member `i`; `existing` for a member added to a running cluster (an empty data
   * dir that must join the others rather than found a cluster of its own).
   */
  startMember(i: number, state: 'new' | 'existing' = 'new'): void {
    const m = this.members[i];
    if (m.child) throw new Error(`etcd member ${m.name} is already running (pid ${m.child.pid})`);
    const cluster = this.members.map((o) => `${o.name}=http://${o.host}:${o.peerPort}`).join(',');
    const client = `${this.tls ? 'https' : 'http'}://${m.host}:${m.clientPort}`;
    const peer = `http://${m.host}:${m.peerPort}`;
    const child = spawn(
      ETCD,
      [
        `--name=${m.name}`,
        `--data-dir=${join(this.dir, m.name)}`,
        `--listen-client-urls=${client}`,
        `--advertise-client-urls=${client}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=${cluster}`,
        `--initial-cluster-state=${state}`,
        `--initial-cluster-token=${this.prefix}`,
        '--log-level=warn',
        ...(process.env.TSMV_ETCD_METRICS ? [`--metrics=${process.env.TSMV_ETCD_METRICS}`] : []),
        ...(this.tls
          ? [
              `--cert-file=${this.tls.cert}`,
              `--key-file=${this.tls.key}`,
              `--trusted-ca-file=${this.tls.ca}`,
              '--client-cert-auth',
            ]
          : []),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    m.output = '';
    const keep = (d: Buffer) => (m.output = (m.output + d.toString()).slice(-20_000));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.on('exit', () => {
      if (m.child === child) m.child = undefined;
    });
    m.child = child;
  }

  /** SIGKILLs member `i` (by the PID this helper started) and waits for it to be gone. */
  async killMember(i: number): Promise<void> {
    const child = this.members[i].child;
    if (!child) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await gone;
  }

  /**
   * Member `i` loses its data: SIGKILLed, its data dir wiped, and removed from the cluster by the others (etcd's
   * runtime reconfiguration: a member whose data is gone must not come back under its old id). The cluster runs on
   * the others until `rejoinMember`.
   */
  async loseMember(i: number): Promise<void> {
    await this.killMember(i);
    rmSync(join(this.dir, this.members[i].name), { recursive: true, force: true });
    await this.reconfigure(i, async (id) => {
      if (id !== undefined) await this.ctl(this.othersOf(i), ['member', 'remove', id]);
      return id === undefined;
    });
  }

  /** Member `i`, removed by `loseMember`, added back as a new member and started on its empty data dir. */
  async rejoinMember(i: number, timeoutMs = 60_000): Promise<void> {
    const peer = `http://${this.members[i].host}:${this.members[i].peerPort}`;
    await this.reconfigure(i, async (id) => {
      if (id === undefined)
        await this.ctl(this.othersOf(i), ['member', 'add', this.members[i].name, `--peer-urls=${peer}`]);
      return id !== undefined;
    });
    this.startMember(i, 'existing');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return void (await this.ctl([this.endpoint(i)], ['endpoint', 'health']));
      } catch (err) {
        if (Date.now() > deadline)
          throw new Error(
            `${this.members[i].name} did not rejoin: ${(err as Error).message}\n${this.members[i].output}`,
          );
        await sleep(300);
      }
    }
  }

  /**
   * Tries a membership change until member `i`'s peer URL is (or is not) in the member list, as `step` says once it
   * sees the member's id (undefined when it is not listed): a change whose answer was lost is seen on the next try,
   * and a leader killed just before is replaced within an election.
   */
  private async reconfigure(i: number, step: (id: string | undefined) => Promise<boolean>): Promise<void> {
    const peer = `http://${this.members[i].host}:${this.members[i].peerPort}`;
    let last: unknown;
    for (let tries = 0; tries < 40; tries++) {
      try {
        // `member list` lines: id, status, name, peer URLs, client URLs, is learner (ids in hex, as remove takes them).
        const { stdout } = await this.ctl(this.othersOf(i), ['member', 'list']);
        const line = stdout.split('\n').find((l) => l.split(', ')[3]?.split(',').includes(peer));
        if (await step(line?.split(', ')[0])) return;
      } catch (err) {
        last = err;
      }
      await sleep(500);
    }
    throw new Error(`etcd membership of ${this.members[i].name} did not change: ${(last as Error)?.message}`);
  }

  private othersOf(i: number): string[] {
    return this.endpoints.filter((_, j) => j !== i && this.members[j].child);
  }

  /** etcdctl without blocking the event loop (the soak's clients run beside the nemesis). */
  private ctl(endpoints: string[], args: string[]): Promise<{ stdout: string }> {
    return execFileP(
      ETCDCTL,
      [`--endpoints=${endpoints.join(',')}`, ...this.ctlTls(), '--command-timeout=3s', ...args],
      {
        env: { ...process.env, ETCDCTL_API: '3' },
        timeout: 10_000,
      },
    );
  }

  /** The index of the member that leads now, by asking the running members. */
  leader(): number {
    const up = this.members.map((m, i) => ({ m, i })).filter(({ m }) => m.child);
    const r = spawnSync(
      ETCDCTL,
      [
        `--endpoints=${up.map(({ i }) => this.endpoint(i)).join(',')}`,
        ...this.ctlTls(),
        'endpoint',
        'status',
        '-w',
        'json',
      ],
      { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' }, timeout: 5_000 },
    );
    const statuses = JSON.parse(r.stdout || '[]') as { Status: { header: { member_id: number }; leader: number } }[];
    const at = statuses.findIndex((s) => s.Status.header.member_id === s.Status.leader);
    if (at < 0) throw new Error(`no etcd member says it leads: ${r.stderr}${r.stdout}`);
    return up[at].i;
  }

  running(i: number): boolean {
    return this.members[i].child !== undefined;
  }

  /** Waits until every endpoint in `endpoints` answers a health check (a write through raft). */
  async waitHealthy(endpoints: string[], timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = spawnSync(
        ETCDCTL,
        [`--endpoints=${endpoints.join(',')}`, ...this.ctlTls(), '--command-timeout=2s', 'endpoint', 'health'],
        {
          encoding: 'utf8',
          env: { ...process.env, ETCDCTL_API: '3' },
          timeout: 5_000,
        },
      );
      if (r.status === 0) return;
      if (Date.now() > deadline) {
        const logs = this.members.map((m) => `--- ${m.name}\n${m.output.slice(-3000)}`).join('\n');
        throw new Error(
          `etcd at ${endpoints.join(',')} not healthy after ${timeoutMs} ms: ${r.stderr}${r.stdout}\n${logs}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** etcdctl's TLS flags: the server's own certificate also serves as a client one (it allows clientAuth). */
  private ctlTls(): string[] {
    return this.tls ? [`--cacert=${this.tls.ca}`, `--cert=${this.tls.cert}`, `--key=${this.tls.key}`] : [];
  }

  /** Stops every member and removes the data dirs; safe to call twice, and after a failed start. */
  async stop(): Promise<void> {
    for (let i = 0; i < this.members.length; i++) await this.killMember(i);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
