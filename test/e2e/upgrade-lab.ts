// What test/e2e/upgrade.test.ts upgrades under: one network of each kind on a switch of its own, a container on each,
// and a ping every 50 ms to each container (from its switch, and from the host through the host-access shim), whose
// replies say, by their sequence numbers, whether one was lost.
import { spawn, type ChildProcess } from 'node:child_process';
import { DhcpServer } from './dnsmasq';
import { dockerOk, runSleeper } from './docker';
import { createSwitch, type Switch } from './topology';

/** One ping every 50 ms to an address, from a namespace (a switch's) or this one; lost replies by sequence number. */
export class PingMonitor {
  private readonly replies = new Map<number, number>(); // icmp_seq -> when the reply came (ms)
  private readonly child: ChildProcess;
  private buffer = '';

  constructor(
    readonly name: string,
    readonly target: string,
    ns?: string,
  ) {
    const ping = ['ping', '-n', '-i', '0.05', '-W', '1', target];
    this.child = spawn(ns ? 'ip' : ping[0], ns ? ['netns', 'exec', ns, ...ping] : ping.slice(1), {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.buffer += d;
      const lines = this.buffer.split('\n');
      this.buffer = lines.pop()!;
      for (const line of lines) {
        const seq = /icmp_seq=(\d+) /.exec(line);
        if (seq) this.replies.set(Number(seq[1]), Date.now());
      }
    });
  }

  /** Resolves once a first reply came (the target answers before anything is measured). */
  async answering(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.size === 0) {
      if (Date.now() > deadline || this.child.exitCode !== null)
        throw new Error(`${this.name}: ${this.target} never answered a ping`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Stops it and reports the pings between its first and its last reply that got none (one still in flight when it
   * stopped is not counted), and until when replies came: that must be after what was measured.
   */
  async stop(): Promise<{ sent: number; lost: number[]; lastReplyAt: number }> {
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGINT');
    await exited;
    const seqs = [...this.replies.keys()].sort((a, b) => a - b);
    const [first, last] = [seqs[0] ?? 0, seqs[seqs.length - 1] ?? 0];
    const lost: number[] = [];
    for (let s = first; s <= last; s++) if (!this.replies.has(s)) lost.push(s);
    return { sent: last - first + 1, lost, lastReplyAt: Math.max(0, ...this.replies.values()) };
  }
}

export interface Site {
  kind: 'local IPAM' | 'cluster IPAM' | 'DHCP' | 'host access';
  network: string;
  sw: Switch;
  /** The container started before the upgrade, and its address on the network. */
  container: string;
  address: string;
  /** For the DHCP site: the LAN's server. */
  server?: DhcpServer;
}

/**
 * The four networks on `driver` (its IPAM for the local and cluster pools, null for DHCP, Docker's for host access),
 * each on a switch of its own in 10.232.7x.0/24, and a container on each. `prefix` names networks and containers.
 */
export async function createSites(driver: string, prefix: string): Promise<Site[]> {
  const sites: Site[] = [];
  const site = async (
    kind: Site['kind'],
    octet: number,
    args: (sw: Switch) => string[],
    ready?: (sw: Switch) => Promise<DhcpServer>,
  ) => {
    const sw = await createSwitch({ subnetPrefix: `10.232.${octet}` });
    const server = ready && (await ready(sw));
    const network = `${prefix}${kind.split(' ')[0].toLowerCase()}`;
    await dockerOk(['network', 'create', '-d', driver, '-o', `parent=${sw.parent}`, ...args(sw), network]);
    const container = `${network}-c1`;
    await runSleeper(container, { network });
    const address = await dockerOk([
      'inspect',
      '-f',
      `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`,
      container,
    ]);
    sites.push({ kind, network, sw, container, address, ...(server && { server }) });
  };
  const pool = (sw: Switch) => ['--subnet', sw.subnet, '--gateway', sw.bridgeIp];
  const range = (sw: Switch) => ['--ip-range', sw.subnet.replace('.0/24', '.128/25')];
  await site('local IPAM', 70, (sw) =>
    ['--ipam-driver', driver, '--ipam-opt', 'scope=host', ...pool(sw), ...range(sw)].concat(),
  );
  await site('cluster IPAM', 71, (sw) => ['--ipam-driver', driver, ...pool(sw), ...range(sw)]);
  await site(
    'DHCP',
    72,
    () => ['--ipam-driver', 'null', '-o', 'dhcp=true'],
    async (sw) => {
      const server = new DhcpServer();
      await server.start(sw, { range: { first: 100, last: 150 } });
      return server;
    },
  );
  await site('host access', 73, (sw) => [
    '-o',
    `host_access=${sw.subnet.replace('.0/24', '.250')}`,
    '--aux-address',
    `host=${sw.subnet.replace('.0/24', '.250')}`,
    ...pool(sw),
    ...range(sw),
  ]);
  return sites;
}

/** A monitor per site from its switch, and one from the host to the host-access container through the shim. */
export async function monitor(sites: Site[]): Promise<PingMonitor[]> {
  const monitors = sites.map((s) => new PingMonitor(`${s.kind} from the LAN`, s.address, s.sw.nsName));
  const hostAccess = sites.find((s) => s.kind === 'host access')!;
  monitors.push(new PingMonitor('host access from the host', hostAccess.address));
  for (const m of monitors) await m.answering();
  return monitors;
}
