// The multi-host lab: N Docker hosts on one LAN, inside the e2e lab's own namespace. Each host is a network namespace
// `<run>-h<i>` with its own dockerd (test/lab/engine.sh) and its own `tsmacvlan serve --etcd` (driver `<run>h<i>`:
// legacy plugin sockets share /run/docker/plugins). A bridge in the switch namespace `<run>-sw` is the LAN: a veth
// `eth1` into each host, one into the lab's namespace, where the 3 etcd members listen (http, or https with `tls`).
// test/lab/swarm-lab.ts makes the hosts without legacy plugins and installs the managed one on each. No default route
// anywhere: every address is on the LAN's own subnet. `destroy` removes all of it, also after a failed `create`.
// For benches only: TSMV_LAB_STATE_ROOT puts the plugins' state dirs there instead of the lab dir (e.g. /dev/shm, a
// tmpfs, to tell the machine's disk from the code); the lab removes them too.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EtcdKv, type KvEntry } from '../../src/cluster/etcd';
import { decodeClaims } from '../../src/cluster/keys';
import { CLI, post } from '../helpers/serve';
import { EtcdCluster } from './etcd';
import { makeTls, type TlsFiles } from './tls';
import { DOCKER_CLIENT, Engine } from './engine';
import { runId } from './lab';

const execFileP = promisify(execFile);

export const LAN = '10.201.0.0/24';
const LAB_LINK = 'mhlan0';
const ETCD_HOSTS = ['10.201.0.2', '10.201.0.3', '10.201.0.4'];
const LAB_DIR = join(process.env.TSMV_LAB_DIR ?? '/var/tmp', 'multi-host');

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
}

export interface LabHost {
  name: string;
  netns: string;
  /** Its address on eth1. */
  address: string;
  engine: Engine;
  /** The plugin's driver name on this host (also its IPAM driver). */
  driver: string;
  stateDir: string;
  plugin: ChildProcess | undefined;
  output: string;
  /** Runs the docker client against this host's engine; rejects with its output when it fails. */
  docker(...args: string[]): Promise<string>;
}

export class MultiHostLab {
  readonly run = runId();
  readonly switchNs = `${this.run}-sw`;
  readonly hosts: LabHost[] = [];
  readonly etcd: EtcdCluster;
  /** The lab's own directory (plugin state, logs): removed by `destroy`. */
  readonly dir = LAB_DIR;
  /** Where the plugins' state dirs are: the lab dir, or TSMV_LAB_STATE_ROOT/<run> (removed by `destroy` as well). */
  private readonly stateRoot = process.env.TSMV_LAB_STATE_ROOT
    ? join(process.env.TSMV_LAB_STATE_ROOT, `${this.run}-state`)
    : LAB_DIR;
  /** Host namespaces made so far, in order (a host whose engine failed to start has one too). */
  private readonly namespaces: string[] = [];
  private madeSwitch = false;
  private madeLabLink = false;
  /** tmpfs mounts under the plugins' state dirs (`stateTmpfsMb`), unmounted by `destroy`. */
  private readonly mounts: string[] = [];
  private stateTmpfsMb = 0;
  /** Settings of the plugins' environment besides etcd's (`pluginEnv`). */
  private pluginEnv: NodeJS.ProcessEnv = {};

  /** With `tls`, the etcd members serve https and require client certificates signed by its CA. */
  private constructor(readonly tls?: TlsFiles) {
    this.etcd = new EtcdCluster(
      `${this.run}e`,
      ETCD_HOSTS.map((host, i) => ({ name: `${this.run}m${i}`, host, clientPort: 2379, peerPort: 2380 })),
      tls && { ca: tls.ca, cert: tls.serverCert, key: tls.serverKey },
    );
  }

  /** The settings a client of the lab's etcd needs (the CA and the client certificate when it serves TLS). */
  get etcdSettings(): { endpoints: string[]; ca?: string; cert?: string; key?: string } {
    const { endpoints } = this.etcd;
    return this.tls
      ? { endpoints, ca: this.tls.ca, cert: this.tls.clientCert, key: this.tls.clientKey }
      : { endpoints };
  }

  /**
   * `count` hosts, each with a dockerd from `binDir` (default: the lab's engine) and, unless `legacyPlugins` is false (test/lab/swarm-lab.ts
   * installs the managed plugin instead), a `tsmacvlan serve` instance on the lab's etcd; with `tls`, etcd serves
   * https only, to clients with a certificate of the lab's CA; with `stateTmpfsMb`, each plugin's state dir is a tmpfs of
   * that size (the soak fills one to see a full disk); `pluginEnv` is added to each legacy plugin's environment.
   */
  static async create(
    count: number,
    binDir?: string,
    { legacyPlugins = true, tls = false, stateTmpfsMb = 0, pluginEnv = {} as NodeJS.ProcessEnv } = {},
  ): Promise<MultiHostLab> {
    if (tls) mkdirSync(LAB_DIR, { recursive: true });
    const lab = new MultiHostLab(tls ? makeTls(LAB_DIR, 'etcd', ...ETCD_HOSTS) : undefined);
    lab.stateTmpfsMb = stateTmpfsMb;
    lab.pluginEnv = pluginEnv;
    try {
      lab.makeLan();
      await lab.etcd.start();
      for (let i = 1; i <= count; i++) await lab.addHost(i, binDir, legacyPlugins);
      return lab;
    } catch (err) {
      await lab.destroy();
      throw err;
    }
  }

  private makeLan(): void {
    mkdirSync(this.dir, { recursive: true });
    ip('netns', 'add', this.switchNs);
    this.madeSwitch = true;
    ip('-n', this.switchNs, 'link', 'set', 'lo', 'up');
    ip('-n', this.switchNs, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', this.switchNs, 'link', 'set', 'br0', 'up');
    ip('link', 'add', LAB_LINK, 'type', 'veth', 'peer', 'name', 'lab', 'netns', this.switchNs);
    this.madeLabLink = true;
    ip('-n', this.switchNs, 'link', 'set', 'lab', 'master', 'br0', 'up');
    for (const host of ETCD_HOSTS) ip('addr', 'add', `${host}/24`, 'dev', LAB_LINK);
    ip('link', 'set', LAB_LINK, 'up');
  }

  private async addHost(i: number, binDir: string | undefined, legacyPlugin: boolean): Promise<void> {
    const netns = `${this.run}-h${i}`;
    ip('netns', 'add', netns);
    this.namespaces.push(netns);
    ip('-n', netns, 'link', 'set', 'lo', 'up');
    ip('-n', this.switchNs, 'link', 'add', `h${i}`, 'type', 'veth', 'peer', 'name', 'eth1', 'netns', netns);
    ip('-n', this.switchNs, 'link', 'set', `h${i}`, 'master', 'br0', 'up');
    const address = `10.201.0.${10 + i}`;
    ip('-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'eth1');
    ip('-n', netns, 'link', 'set', 'eth1', 'up');
    const engine = await Engine.start(join(process.env.TSMV_LAB_DIR ?? this.dir, `h${i}`), netns, binDir);
    const docker = async (...args: string[]) => {
      try {
        return (await execFileP(DOCKER_CLIENT, ['-H', engine.host, ...args], { timeout: 120_000 })).stdout;
      } catch (err) {
        const e = err as { stderr?: string; message: string };
        throw new Error(`docker (host h${i}) ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
      }
    };
    const host: LabHost = {
      name: `h${i}`,
      netns,
      address,
      engine,
      driver: `${this.run}h${i}`,
      stateDir: join(this.stateRoot, `state-h${i}`),
      plugin: undefined,
      output: '',
      docker,
    };
    this.hosts.push(host);
    if (this.stateTmpfsMb) {
      mkdirSync(host.stateDir, { recursive: true });
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${this.stateTmpfsMb}m`, 'tsmv-lab-state', host.stateDir]);
      this.mounts.push(host.stateDir);
    }
    execFileSync('bash', [join(__dirname, 'test-image.sh')], {
      env: { ...process.env, DOCKER_HOST: engine.host },
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 120_000,
    });
    if (legacyPlugin) await this.startPlugin(host);
  }

  private socketOf(host: LabHost): string {
    return `/run/docker/plugins/${host.driver}.sock`;
  }

  /** The host's plugin in its namespace (nsenter execs node: the child's pid is the plugin's). */
  private async startPlugin(host: LabHost): Promise<void> {
    const args = ['serve', '--socket', this.socketOf(host), '--state-dir', host.stateDir, '--log-level', 'warn'];
    const child = spawn('nsenter', [`--net=/run/netns/${host.netns}`, '--', process.execPath, CLI, ...args], {
      env: { ...process.env, ...this.pluginEnv, ...this.etcdEnv() },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    host.plugin = child;
    child.stdout!.on('data', (d) => (host.output += d));
    child.stderr!.on('data', (d) => (host.output += d));
    for (let tries = 0; tries < 200; tries++) {
      if (child.exitCode !== null) throw new Error(`plugin of ${host.name} exited: ${host.output}`);
      const answered = await post(this.socketOf(host), 'Plugin.Activate').then(
        (r) => r.status === 200,
        () => false,
      );
      if (answered) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`plugin of ${host.name} does not answer on ${this.socketOf(host)}: ${host.output}`);
  }

  /** The plugin's etcd settings as its environment (`serve` reads TSMACVLAN_ETCD*). */
  private etcdEnv(): NodeJS.ProcessEnv {
    const { endpoints, ca, cert, key } = this.etcdSettings;
    const tls = ca ? { TSMACVLAN_ETCD_CA: ca, TSMACVLAN_ETCD_CERT: cert, TSMACVLAN_ETCD_KEY: key } : {};
    return { TSMACVLAN_ETCD: endpoints.join(','), ...tls };
  }

  /** SIGKILLs the host's plugin (the PID this lab started) and waits until it is gone. */
  async killPlugin(host: LabHost): Promise<void> {
    const child = host.plugin;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /**
   * SIGKILLs the host's plugin the moment etcd records a new container claim of it in the lab's subnet, while `act`
   * runs (a `docker run` on that host): the address is committed and Docker has not had, or has just had, the answer
   * — the crash path of an allocation, not a kill before it or after it. Waits (60 s at most) for that moment and for
   * the plugin to be gone; the address claimed, and what `act` resolved to or the error it threw.
   */
  async killPluginOnClaim<T>(host: LabHost, act: () => Promise<T>): Promise<{ address: string; outcome: T | Error }> {
    const owner = readFileSync(join(host.stateDir, 'instance'), 'utf8').trim();
    const kv = new EtcdKv(this.etcdSettings);
    const prefix = `${kv.prefix}/v1/subnets/${LAN.replace('/', '_')}/addresses/`;
    let cancel = async () => {};
    try {
      const { entries, revision } = await kv.range(prefix);
      const before = new Set(entries.map((e) => e.key));
      const killed = new Promise<string>((resolve, reject) => {
        const put = (e: KvEntry) => {
          if (
            before.has(e.key) ||
            !(decodeClaims(e.value) ?? []).some((c) => c.kind === 'container' && c.owner === owner)
          )
            return;
          before.add(e.key); // once
          host.plugin?.kill('SIGKILL');
          resolve(e.key.slice(prefix.length));
        };
        kv.watch(prefix, revision + 1n, { put, delete: () => {}, lost: reject }).then(
          (w) => (cancel = w.cancel),
          reject,
        );
      });
      killed.catch(() => {}); // awaited below, after `act`
      const outcome = await act().catch((err: Error) => err);
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no container claim of ${host.name} in etcd within 60 s`)), 60_000);
      });
      const address = await Promise.race([killed, late]).finally(() => clearTimeout(timer));
      await this.killPlugin(host);
      return { address, outcome };
    } finally {
      await cancel();
      await kv.close();
    }
  }

  /** Starts the host's plugin again (after killPlugin), on the same socket and state directory. */
  async restartPlugin(host: LabHost): Promise<void> {
    await this.startPlugin(host);
  }

  private async stopPlugin(host: LabHost): Promise<void> {
    const child = host.plugin;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const late = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(late);
  }

  /** Removes containers, engines, plugins, etcd, links and namespaces; safe after a failed create, and twice. */
  async destroy(): Promise<void> {
    const errors: string[] = [];
    const attempt = async (what: string, step: () => unknown) => {
      try {
        await step();
      } catch (err) {
        errors.push(`${what}: ${(err as Error).message}`);
      }
    };
    for (const host of this.hosts) await attempt(`engine of ${host.name}`, () => host.engine.remove());
    for (const host of this.hosts) await attempt(`plugin of ${host.name}`, () => this.stopPlugin(host));
    await attempt('etcd', () => this.etcd.stop());
    for (const mount of this.mounts.splice(0)) await attempt(`umount ${mount}`, () => execFileSync('umount', [mount]));
    this.hosts.splice(0);
    for (const netns of this.namespaces.splice(0)) await attempt(netns, () => ip('netns', 'del', netns));
    if (this.madeLabLink) await attempt(LAB_LINK, () => ip('link', 'del', LAB_LINK));
    if (this.madeSwitch) await attempt(this.switchNs, () => ip('netns', 'del', this.switchNs));
    this.madeLabLink = this.madeSwitch = false;
    rmSync(this.dir, { recursive: true, force: true });
    rmSync(this.stateRoot, { recursive: true, force: true });
    if (errors.length) throw new Error(`multi-host lab clean-up: ${errors.join('; ')}`);
  }
}
