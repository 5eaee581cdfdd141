// A LAN for DHCP tests: a switch namespace with a bridge and Debian's dnsmasq as the LAN's server, a veth parent in
// the test's own namespace (with an address of the subnet, so nothing routes out), and namespaces standing for
// a container and a squatter host. Everything is named with one random prefix and removed by close().
import { type ChildProcess, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  DNSMASQ,
  type LeaseLine,
  dnsmasqLeases,
  dnsmasqListening,
  dnsmasqLog,
  dnsmasqLogFile,
  hostsFileReads,
  startDnsmasq,
} from './dnsmasq';
import { ip } from './net';

export type { LeaseLine };

export const SUBNET = { router: '10.77.0.1', parent: '10.77.0.2', first: '10.77.0.100', last: '10.77.0.120' };
export const CLASSLESS_ROUTE = { destination: '10.99.0.0/16', gateway: SUBNET.router };

export function requireTool(file: string, debianPackage: string): void {
  if (!existsSync(file))
    throw new Error(`${file} is missing: apt-get install ${debianPackage} (the DHCP tests need it)`);
}

export function inNs(ns: string, ...args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export class DhcpLab {
  readonly prefix: string;
  readonly switchNs: string;
  readonly parent: string;
  readonly dir: string;
  private readonly namespaces: string[] = [];
  private readonly ports: string[] = [];
  private dnsmasq: ChildProcess | undefined;

  /** Builds the switch and the parent (starts no server yet); what was made is removed if a step fails. */
  static async create(namePrefix = 'tmvD'): Promise<DhcpLab> {
    requireTool(DNSMASQ, 'dnsmasq-base');
    const lab = new DhcpLab(namePrefix + randomBytes(3).toString('hex'));
    try {
      lab.build();
      return lab;
    } catch (error) {
      await lab.close();
      throw error;
    }
  }

  private constructor(prefix: string) {
    this.prefix = prefix;
    this.switchNs = `${prefix}sw`;
    this.parent = `${prefix}p`;
    this.dir = mkdtempSync(path.join(tmpdir(), `${prefix}-`));
  }

  private build(): void {
    this.addNs(this.switchNs);
    inNs(this.switchNs, 'ip', 'link', 'set', 'lo', 'up');
    inNs(this.switchNs, 'ip', 'link', 'add', 'br0', 'type', 'bridge');
    inNs(this.switchNs, 'ip', 'addr', 'add', `${SUBNET.router}/24`, 'dev', 'br0');
    inNs(this.switchNs, 'ip', 'link', 'set', 'br0', 'up');
    this.plug(this.parent, null);
    ip('addr', 'add', `${SUBNET.parent}/24`, 'dev', this.parent);
    writeFileSync(this.hostsFile, '');
  }

  get parentIndex(): number {
    // Not /sys/class/net: sysfs shows the namespace it was mounted in, not ours.
    return (JSON.parse(ip('-j', 'link', 'show', this.parent)) as { ifindex: number }[])[0]!.ifindex;
  }

  get hostsFile(): string {
    return path.join(this.dir, 'hosts');
  }

  get logFile(): string {
    return dnsmasqLogFile(this.dir);
  }

  /** Starts dnsmasq (see dnsmasq.ts) with SUBNET's range and router and CLASSLESS_ROUTE, and waits until it listens. */
  async startServer(extraArgs: string[] = []): Promise<void> {
    const { first, last, router } = SUBNET;
    const setup = { ns: this.switchNs, bridge: 'br0', first, last, router, classless: CLASSLESS_ROUTE, extraArgs };
    this.dnsmasq = startDnsmasq({ ...setup, hostsFile: this.hostsFile, dir: this.dir });
    for (let i = 0; i < 100 && !dnsmasqListening(this.dir); i++) await sleep(50);
    if (!dnsmasqListening(this.dir)) throw new Error(`dnsmasq did not start: ${this.serverLog()}`);
  }

  /** Stops the server and waits until it is gone: the LAN has no DHCP server any more. */
  async stopServer(): Promise<void> {
    const server = this.dnsmasq;
    if (!server?.pid || server.exitCode !== null || server.signalCode !== null) return;
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
  }

  /** Reserves an address for a MAC on the server, and waits until the server has re-read its hosts file. */
  async reserve(mac: string, address: string): Promise<void> {
    // dnsmasq reads anything else after the MAC as a host name: the line would reserve no address at all.
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(String(address)))
      throw new Error(`reserve ${mac}: '${address}' is not an IPv4 address`);
    const before = hostsFileReads(this.dir, this.hostsFile);
    writeFileSync(this.hostsFile, `${mac},${address}\n`, { flag: 'a' });
    process.kill(this.dnsmasq!.pid!, 'SIGHUP');
    for (let i = 0; i < 100 && hostsFileReads(this.dir, this.hostsFile) === before; i++) await sleep(20);
    if (hostsFileReads(this.dir, this.hostsFile) === before)
      throw new Error(`dnsmasq did not re-read ${this.hostsFile} after SIGHUP`);
  }

  /** The switch bridge's IPv6 link-local address (dnsmasq's router address), once the kernel has assigned it. */
  async bridgeLinkLocal(): Promise<string | undefined> {
    for (let i = 0; i < 100; i++) {
      const links = JSON.parse(inNs(this.switchNs, 'ip', '-j', '-6', 'addr', 'show', 'dev', 'br0'));
      const infos: { local: string; scope: string }[] = links.flatMap((l: { addr_info?: [] }) => l.addr_info ?? []);
      const local = infos.find((info) => info.scope === 'link')?.local;
      if (local) return local;
      await sleep(50);
    }
    return undefined;
  }

  serverLog(): string {
    return dnsmasqLog(this.dir);
  }

  /** The server's lease file (see `released` before reading it after a release). */
  serverLeases(): LeaseLine[] {
    return dnsmasqLeases(this.dir);
  }

  /**
   * Waits (bounded) until the server has logged the DHCPRELEASE of each lease and its lease file holds none of them;
   * returns what is still missing. The log is the witness: dnsmasq rewrites its lease file in place (truncate, then
   * write), so a read can catch it empty halfway, and a wait on the file alone ended early (the flake of issue 16).
   */
  async released(leases: readonly Pick<LeaseLine, 'mac' | 'address'>[], timeoutMs = 10_000) {
    const missing = () => {
      const log = this.serverLog();
      const unlogged = leases.filter((l) => !log.includes(`DHCPRELEASE(br0) ${l.address} ${l.mac}`));
      // Read after the log says all are released: any rewrite from then on holds none of them.
      const onServer = this.serverLeases();
      const kept = leases.filter((l) => onServer.some((s) => s.mac === l.mac && s.address === l.address));
      return { unlogged, kept };
    };
    const deadline = Date.now() + timeoutMs;
    let left = missing();
    while ((left.unlogged.length > 0 || left.kept.length > 0) && Date.now() < deadline) {
      await sleep(20);
      left = missing();
    }
    return left;
  }

  /** A namespace holding `address` on a port of the switch, answering ARP (IPv6: neighbour solicitations) for it. */
  squatter(address: string): void {
    const ns = `${this.prefix}sq`;
    this.addNs(ns);
    this.plug(`${this.prefix}q`, ns);
    const v6 = address.includes(':');
    // nodad: the address answers at once, as a device's that has long held it.
    const cidr = v6 ? [`${address}/64`, 'nodad'] : [`${address}/24`];
    inNs(ns, 'ip', 'addr', 'add', cidr[0]!, 'dev', `${this.prefix}q`, ...cidr.slice(1));
  }

  /** Another port of the switch in the test's own namespace, named `${prefix}${name}`: to send frames onto the LAN. */
  port(name: string): string {
    const link = `${this.prefix}${name}`;
    this.ports.push(link);
    this.plug(link, null);
    return link;
  }

  /** A macvlan with `mac` on the parent, moved into a namespace of its own, standing for a container. */
  container(name: string, mac: string): string {
    const ns = `${this.prefix}${name}`;
    const link = `${this.prefix}m${name}`;
    this.addNs(ns);
    ip('link', 'add', 'link', this.parent, 'name', link, 'address', mac, 'type', 'macvlan', 'mode', 'bridge');
    ip('link', 'set', link, 'netns', ns);
    inNs(ns, 'ip', 'link', 'set', link, 'up');
    return ns;
  }

  async close(): Promise<void> {
    if (this.dnsmasq?.pid && this.dnsmasq.exitCode === null) {
      const exited = new Promise((resolve) => this.dnsmasq!.once('exit', resolve));
      this.dnsmasq.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
    }
    for (const ns of this.namespaces.reverse()) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // already gone
      }
    }
    for (const link of [this.parent, ...this.ports]) {
      try {
        ip('link', 'del', link);
      } catch {
        // went with the switch namespace
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private addNs(ns: string): void {
    ip('netns', 'add', ns);
    this.namespaces.push(ns);
  }

  /** A veth from the switch's bridge to `ns` (null: the test's own namespace). */
  private plug(name: string, ns: string | null): void {
    const peer = `${name}s`;
    ip('link', 'add', name, 'type', 'veth', 'peer', 'name', peer, 'netns', this.switchNs);
    inNs(this.switchNs, 'ip', 'link', 'set', peer, 'master', 'br0', 'up');
    if (ns) {
      ip('link', 'set', name, 'netns', ns);
      inNs(ns, 'ip', 'link', 'set', name, 'up');
    } else ip('link', 'set', name, 'up');
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
