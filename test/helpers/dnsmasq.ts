// Debian's dnsmasq as a test LAN's DHCP server, run in the switch namespace on its bridge: DHCP only (no DNS), no
// ping of its own (--no-ping: only the plugin's ARP check can catch a conflict), 2-minute leases (its minimum), the
// router option, an optional option 121 route, and reservations by MAC from a hosts file it re-reads on SIGHUP.
// The files it writes (leases, log, pid) go into `dir`.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const DNSMASQ = '/usr/sbin/dnsmasq';

export interface DnsmasqSetup {
  /** The switch namespace and its bridge. */
  ns: string;
  bridge: string;
  /** The dynamic range's first and last addresses, in a /24. */
  first: string;
  last: string;
  router: string;
  classless?: { destination: string; gateway: string };
  hostsFile: string;
  dir: string;
  /** More options, e.g. --dhcp-ignore-clid (a server that keys leases on chaddr alone). */
  extraArgs?: string[];
}

export interface LeaseLine {
  expires: number;
  mac: string;
  address: string;
  /** The client identifier the lease was asked with (colon hex), or '*'. */
  clientId: string;
}

/** Starts the server; the child is dnsmasq itself (`ip netns exec` execs it), so signals to its pid reach it. */
export function startDnsmasq(setup: DnsmasqSetup): ChildProcess {
  if (!existsSync(DNSMASQ)) throw new Error(`${DNSMASQ} is missing: apt-get install dnsmasq-base`);
  const { classless } = setup;
  const args = [
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--port=0',
    '--no-ping',
    '--user=root',
    `--interface=${setup.bridge}`,
    '--bind-interfaces',
    '--dhcp-authoritative',
    `--dhcp-range=${setup.first},${setup.last},255.255.255.0,2m`,
    `--dhcp-option=option:router,${setup.router}`,
    ...(classless ? [`--dhcp-option=121,${classless.destination},${classless.gateway}`] : []),
    `--dhcp-leasefile=${join(setup.dir, 'leases')}`,
    `--dhcp-hostsfile=${setup.hostsFile}`,
    `--pid-file=${join(setup.dir, 'pid')}`,
    '--log-dhcp',
    `--log-facility=${dnsmasqLogFile(setup.dir)}`,
    ...(setup.extraArgs ?? []),
  ];
  return spawn('ip', ['netns', 'exec', setup.ns, DNSMASQ, ...args], { stdio: 'ignore' });
}

export function dnsmasqLogFile(dir: string): string {
  return join(dir, 'dnsmasq.log');
}

export function dnsmasqLog(dir: string): string {
  const file = dnsmasqLogFile(dir);
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

/** Whether the server has started listening (its log says so). */
export function dnsmasqListening(dir: string): boolean {
  return dnsmasqLog(dir).includes('DHCP, IP range');
}

/** How many times the server has read `hostsFile` (it logs each read): to wait for a SIGHUP's re-read. */
export function hostsFileReads(dir: string, hostsFile: string): number {
  return dnsmasqLog(dir).split(`read ${hostsFile}`).length - 1;
}

/** The lease file. dnsmasq rewrites it in place, so after a release wait on the log before reading it. */
export function dnsmasqLeases(dir: string): LeaseLine[] {
  const file = join(dir, 'leases');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [expires, mac, address, , clientId] = line.split(' ');
      return { expires: Number(expires), mac: mac!, address: address!, clientId: clientId ?? '*' };
    });
}
