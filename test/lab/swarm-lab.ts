// A Docker Swarm over the multi-host lab (test/lab/multi-host.ts): every host gets the managed plugin (plugin/create.sh
// --reuse: the rootfs test/e2e/provision.sh exported to plugin/build, installed into each host's engine) pointed at
// the lab's etcd with `docker plugin set`: https only, the CA and client certificate in the `tls` directory of the
// plugin's state (its propagated mount), as docs/swarm.md says to do; then h1 inits a swarm on its LAN address and the
// others join on theirs.
// The swarm's traffic (2377, 7946) stays on the lab's bridge. `destroy` removes the engines (and with them the swarm
// and the plugins), then the rest of the lab.
import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, watch } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EtcdKv, type KvEntry } from '../../src/cluster/etcd';
import { decodeClaims, type Claim } from '../../src/cluster/keys';
import { DOCKER_CLIENT, engineProgram } from './engine';
import { type LabHost, MultiHostLab } from './multi-host';

const execFileP = promisify(execFile);
const REPO = join(__dirname, '../..');

/** Swarm needs the same plugin name on every node; this one is never a real install's. */
export const SWARM_PLUGIN = 'tsmv-swarm:latest';

export interface Claimed {
  address: string;
  claims: Claim[];
}

export class SwarmLab {
  /** The etcd prefix of this lab's plugins: everything they write is under it. */
  readonly etcdPrefix: string;

  private constructor(
    readonly lab: MultiHostLab,
    private readonly binDir?: string,
  ) {
    this.etcdPrefix = `/${lab.run}-swarm`;
  }

  get hosts(): LabHost[] {
    return this.lab.hosts;
  }

  /** `count` hosts with the managed plugin on the lab's etcd, in one swarm whose manager is h1. */
  static async create(count: number, binDir?: string): Promise<SwarmLab> {
    const lab = await MultiHostLab.create(count, binDir, { legacyPlugins: false, tls: true });
    const swarm = new SwarmLab(lab, binDir);
    try {
      for (const host of swarm.hosts) await swarm.installPlugin(host);
      await swarm.formSwarm();
      return swarm;
    } catch (err) {
      await swarm.destroy();
      throw err;
    }
  }

  private readonly pluginIds = new Map<string, string>();

  /** The plugin's state directory on `host`: its propagated mount, under the host engine's data root. */
  stateDir(host: LabHost): string {
    const id = this.pluginIds.get(host.name);
    if (!id) throw new Error(`no plugin installed on ${host.name} yet`);
    return host.engine.managedPluginStateDir(id);
  }

  /** The plugin's instance id on `host` (the owner of its claims in etcd). */
  instanceOf(host: LabHost): string {
    return readFileSync(join(this.stateDir(host), 'instance'), 'utf8').trim();
  }

  private async installPlugin(host: LabHost): Promise<void> {
    try {
      await execFileP('bash', [join(REPO, 'plugin/create.sh'), '--reuse', SWARM_PLUGIN], {
        timeout: 300_000,
        env: {
          ...process.env,
          DOCKER: DOCKER_CLIENT,
          DOCKER_HOST: host.engine.host,
          TSMACVLAN_BUILD_PREFIX: 'tsmv-pkg-', // the prefix provision.sh built plugin/build with (part of its stamp)
        },
      });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      throw new Error(
        `plugin/create.sh on ${host.name} failed; plugin/build must be up to date, as test/e2e/provision.sh leaves ` +
          `it (the lab cannot reach the npm registry to build): ${e.stderr?.trim() || e.message}\n${e.stdout ?? ''}`,
      );
    }
    this.pluginIds.set(host.name, (await host.docker('plugin', 'inspect', '-f', '{{.Id}}', SWARM_PLUGIN)).trim());
    // The TLS files go into the `tls` directory of the plugin's state (/var/lib/tsmacvlan/tls inside it).
    const tlsDir = join(this.stateDir(host), 'tls');
    mkdirSync(tlsDir, { recursive: true, mode: 0o700 });
    const { endpoints, ca, cert, key } = this.lab.etcdSettings;
    const files = [
      ['CA', 'ca.pem', ca!],
      ['CERT', 'client.pem', cert!],
      ['KEY', 'client-key.pem', key!],
    ];
    for (const [, name, from] of files) copyFileSync(from, join(tlsDir, name));
    const tls = files.map(([setting, name]) => `TSMACVLAN_ETCD_${setting}=/var/lib/tsmacvlan/tls/${name}`);
    const prefix = `TSMACVLAN_ETCD_PREFIX=${this.etcdPrefix}`;
    await host.docker('plugin', 'set', SWARM_PLUGIN, `TSMACVLAN_ETCD=${endpoints.join(',')}`, prefix, ...tls);
    await host.docker('plugin', 'enable', SWARM_PLUGIN);
  }

  private async formSwarm(): Promise<void> {
    const [manager, ...workers] = this.hosts;
    const listen = (host: LabHost) => ['--advertise-addr', host.address, '--listen-addr', `${host.address}:2377`];
    await manager.docker('swarm', 'init', ...listen(manager));
    // No port is published, so no routing mesh: without ingress, no node makes an ingress sandbox or docker_gwbridge.
    execFileSync(DOCKER_CLIENT, ['-H', manager.engine.host, 'network', 'rm', 'ingress'], {
      input: 'y\n',
      stdio: ['pipe', 'ignore', 'pipe'],
      timeout: 60_000,
    });
    const token = (await manager.docker('swarm', 'join-token', '-q', 'worker')).trim();
    for (const worker of workers)
      await worker.docker('swarm', 'join', '--token', token, ...listen(worker), `${manager.address}:2377`);
    await waitUntil(
      async () => {
        const states = (await manager.docker('node', 'ls', '--format', '{{.Status}}')).split('\n').filter(Boolean);
        return states.length === this.hosts.length && states.every((s) => s === 'Ready');
      },
      60_000,
      'every node Ready in the swarm',
    );
  }

  /** The swarm node id of `host`. */
  async nodeId(host: LabHost): Promise<string> {
    return (await host.docker('info', '-f', '{{.Swarm.NodeID}}')).trim();
  }

  /** The PID of the plugin's process on `host`, from the task that host's containerd runs for it. */
  async pluginPid(host: LabHost): Promise<number> {
    const id = (await host.docker('plugin', 'inspect', '-f', '{{.Id}}', SWARM_PLUGIN)).trim();
    const socket = join(host.engine.execRoot, 'containerd', 'containerd.sock');
    const ctr = engineProgram('ctr', this.binDir);
    const { stdout } = await execFileP(ctr, ['--address', socket, '--namespace', 'plugins.moby', 'task', 'ls'], {
      timeout: 30_000,
    });
    const row = stdout.split('\n').find((line) => line.split(/\s+/)[0] === id);
    const pid = Number(row?.split(/\s+/)[1]);
    if (!row || !/RUNNING/.test(row) || !(pid > 0))
      throw new Error(`the plugin ${id} does not run on ${host.name}: containerd's tasks are\n${stdout}`);
    return pid;
  }

  /**
   * SIGKILLs `host`'s plugin the moment etcd records a new container claim of it in `subnet`, while `act` runs (which
   * should make the node start a task): the address is taken, Docker has not yet had (or just had) the answer.
   * Waits until the process is gone; dockerd then starts the plugin again by itself. The pid and the address.
   */
  async killPluginOnClaim(
    host: LabHost,
    subnet: string,
    act: () => Promise<unknown>,
  ): Promise<{ pid: number; address: string }> {
    const owner = this.instanceOf(host);
    const prefix = this.addressesPrefix(subnet);
    const kv = this.kv();
    let cancel = async () => {};
    try {
      const { revision } = await kv.range(prefix);
      const killed = await this.killPluginWhen(host, act, (kill, fail) => {
        const put = (e: KvEntry) => {
          if ((decodeClaims(e.value) ?? []).some((c) => c.kind === 'container' && c.owner === owner))
            kill(e.key.slice(prefix.length));
        };
        kv.watch(prefix, revision + 1n, { put, delete: () => {}, lost: fail }).then((w) => (cancel = w.cancel), fail);
      });
      return { pid: killed.pid, address: killed.what };
    } finally {
      await cancel();
      await kv.close();
    }
  }

  /**
   * SIGKILLs `host`'s plugin the moment it writes a new endpoint record, while `act` runs: CreateEndpoint is under
   * way, so Docker has its address from RequestAddress and must release it when the start fails. The pid and record.
   */
  async killPluginOnEndpoint(host: LabHost, act: () => Promise<unknown>): Promise<{ pid: number; record: string }> {
    const watcher = watch(join(this.stateDir(host), 'endpoints'));
    try {
      const killed = await this.killPluginWhen(host, act, (kill, fail) => {
        watcher.on('change', (_, file) => kill(String(file)));
        watcher.on('error', fail);
      });
      return { pid: killed.pid, record: killed.what };
    } finally {
      watcher.close();
    }
  }

  /** Arms `trigger` (which calls `kill` once it sees its moment), runs `act`, waits up to 60 s for the kill. */
  private async killPluginWhen(
    host: LabHost,
    act: () => Promise<unknown>,
    trigger: (kill: (what: string) => void, fail: (err: Error) => void) => void,
  ): Promise<{ pid: number; what: string }> {
    const pid = await this.pluginPid(host);
    let fired = false;
    const killed = new Promise<string>((resolve, reject) => {
      const kill = (what: string) => {
        if (fired) return; // once: the pid is not ours to signal after it exits
        fired = true;
        process.kill(pid, 'SIGKILL');
        resolve(what);
      };
      trigger(kill, reject);
    });
    killed.catch(() => {}); // awaited below, after `act`: a trigger that failed meanwhile is reported there
    await act();
    const what = await withTimeout(killed, 60_000, `the moment to kill the plugin on ${host.name}`);
    await waitUntil(() => !isAlive(pid), 30_000, `plugin process ${pid} on ${host.name} to exit`);
    return { pid, what };
  }

  /** Every address of `subnet` (e.g. 10.201.0.0/24) held in etcd under this lab's prefix, with its claims. */
  async claims(subnet: string): Promise<Claimed[]> {
    const kv = this.kv();
    try {
      const prefix = this.addressesPrefix(subnet);
      const { entries } = await kv.range(prefix);
      return entries.map((e) => ({
        address: e.key.slice(prefix.length),
        claims: decodeClaims(e.value) ?? [],
      }));
    } finally {
      await kv.close();
    }
  }

  private kv(): EtcdKv {
    return new EtcdKv({ ...this.lab.etcdSettings, prefix: this.etcdPrefix });
  }

  private addressesPrefix(subnet: string): string {
    return `${this.etcdPrefix}/v1/subnets/${subnet.replace('/', '_')}/addresses/`;
  }

  /** Every key under this lab's etcd prefix. */
  async etcdKeys(): Promise<string[]> {
    const kv = this.kv();
    try {
      return (await kv.range(`${this.etcdPrefix}/`)).entries.map((e) => e.key);
    } finally {
      await kv.close();
    }
  }

  /** Polls `ready` until it holds; fails naming `what` after `timeoutMs`. Errors it throws end it. */
  waitFor(ready: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    return waitUntil(ready, timeoutMs, what);
  }

  async destroy(): Promise<void> {
    await this.lab.destroy();
  }
}

async function waitUntil(ready: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
