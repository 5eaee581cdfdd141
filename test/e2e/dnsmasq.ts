// The LAN's DHCP server for the e2e tests: dnsmasq (test/helpers/dnsmasq.ts) on a test switch's bridge, with a
// range given by last octets, the switch as router, and reservations by MAC.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { dnsmasqLeases, dnsmasqListening, dnsmasqLog, hostsFileReads, startDnsmasq } from '../helpers/dnsmasq';
import { eventually } from './docker';
import type { Switch } from './topology';
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
  /** Option 58, T1 in seconds, instead of half the 2-minute lease (dnsmasq takes the option when it is > 2 s). */
  renewalSeconds?: number;
}

export class DhcpServer {
  readonly dir = mkdtempSync(join(tmpdir(), 'tsmv-dnsmasq-'));
  private child: ChildProcess | undefined;

  async start(sw: Switch, { range, reservations = [], classless, renewalSeconds }: ServerOptions): Promise<void> {
    writeFileSync(this.hostsFile, reservations.map((r) => `${r.mac},${r.address}\n`).join(''));
    const net = sw.bridgeIp.split('.').slice(0, 3).join('.');
    this.child = startDnsmasq({
      ns: sw.nsName,
      bridge: sw.bridge,
      first: `${net}.${range.first}`,
      last: `${net}.${range.last}`,
      router: sw.bridgeIp,
      classless: classless ? { destination: classless, gateway: sw.bridgeIp } : undefined,
      hostsFile: this.hostsFile,
      dir: this.dir,
      extraArgs: renewalSeconds ? [`--dhcp-option=option:T1,${renewalSeconds}`] : [],
    });
    await eventually(() => expect(dnsmasqListening(this.dir)).toBe(true), 10_000);
  }

  /** Adds a reservation and waits until the server has re-read its hosts file (SIGHUP). */
  async reserve({ mac, address }: Reservation): Promise<void> {
    const before = hostsFileReads(this.dir, this.hostsFile);
    writeFileSync(this.hostsFile, `${mac},${address}\n`, { flag: 'a' });
    this.child!.kill('SIGHUP');
    await eventually(() => expect(hostsFileReads(this.dir, this.hostsFile)).toBeGreaterThan(before), 10_000);
  }

  log(): string {
    return dnsmasqLog(this.dir);
  }

  /** The lease file; dnsmasq rewrites it in place, so after a release wait on the log first. */
  leases(): Reservation[] {
    return dnsmasqLeases(this.dir).map(({ mac, address }) => ({ mac, address }));
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
