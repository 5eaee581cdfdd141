// Debian's dnsmasq as the LAN's DHCP server on a test switch's bridge (in the switch's namespace): DHCP only, no ping
// of its own (--no-ping: only the plugin's ARP check can catch a conflict), 2-minute leases (its minimum), the router
// option, and reservations by MAC.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { eventually } from './docker';
import type { Switch } from './topology';

const DNSMASQ = '/usr/sbin/dnsmasq';

export interface Reservation {
  mac: string;
  address: string;
}

export interface ServerOptions {
  /** The last octets of the dynamic range in the switch's /24. */
  range: { first: number; last: number };
  reservations?: Reservation[];
  /** An option 121 route through the switch, e.g. '10.232.0.0/16'. */
  classless?: string;
}

export class DhcpServer {
  readonly dir = mkdtempSync(join(tmpdir(), 'tsmv-dnsmasq-'));
  private child: ChildProcess | undefined;

  async start(sw: Switch, { range, reservations = [], classless }: ServerOptions): Promise<void> {
    if (!existsSync(DNSMASQ)) throw new Error(`${DNSMASQ} is missing: apt-get install dnsmasq-base`);
    writeFileSync(this.hostsFile, reservations.map((r) => `${r.mac},${r.address}\n`).join(''));
    const net = sw.bridgeIp.split('.').slice(0, 3).join('.');
    const args = [
      '--keep-in-foreground',
      '--conf-file=/dev/null',
      '--port=0',
      '--no-ping',
      '--user=root',
      `--interface=${sw.bridge}`,
      '--bind-interfaces',
      '--dhcp-authoritative',
      `--dhcp-range=${net}.${range.first},${net}.${range.last},255.255.255.0,2m`,
      `--dhcp-option=option:router,${sw.bridgeIp}`,
      ...(classless ? [`--dhcp-option=121,${classless},${sw.bridgeIp}`] : []),
      `--dhcp-leasefile=${join(this.dir, 'leases')}`,
      `--dhcp-hostsfile=${this.hostsFile}`,
      `--pid-file=${join(this.dir, 'pid')}`,
      '--log-dhcp',
      `--log-facility=${join(this.dir, 'log')}`,
    ];
    this.child = spawn('ip', ['netns', 'exec', sw.nsName, DNSMASQ, ...args], { stdio: 'ignore' });
    await eventually(() => expect(this.log()).toContain('DHCP, IP range'), 10_000);
  }

  /** Adds a reservation and waits until the server has re-read its hosts file (SIGHUP). */
  async reserve({ mac, address }: Reservation): Promise<void> {
    const reads = () => this.log().split(`read ${this.hostsFile}`).length;
    const before = reads();
    writeFileSync(this.hostsFile, `${mac},${address}\n`, { flag: 'a' });
    this.child!.kill('SIGHUP'); // `ip netns exec` execs dnsmasq: the child's pid is the server's
    await eventually(() => expect(reads()).toBeGreaterThan(before), 10_000);
  }

  log(): string {
    const file = join(this.dir, 'log');
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  /** The lease file; dnsmasq rewrites it in place, so after a release wait on the log first. */
  leases(): Reservation[] {
    const file = join(this.dir, 'leases');
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => ({ mac: line.split(' ')[1]!, address: line.split(' ')[2]! }));
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child?.pid && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private get hostsFile(): string {
    return join(this.dir, 'hosts');
  }
}
