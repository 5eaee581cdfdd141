// DHCP networks under a real Docker Engine (`--ipam-driver null -o dhcp=true`), with Debian's dnsmasq as the LAN's
// server in the switch namespace: parallel starts get distinct leases, a --mac-address reservation is honoured, the
// default route is the router option, option 121 routes are installed, `docker rm` releases.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { containerExec, dockerOk, eventually, runSleeper, uniqueName } from './docker';
import { DRIVER, withPluginDaemon } from './plugin-daemon';
import { createSwitch, type Switch } from './topology';

const PREFIX = 'tsmv-dhcp-';
const DNSMASQ = '/usr/sbin/dnsmasq';
const NET = '10.231.40';
const RANGE = { first: 100, last: 140 };
const RESERVED = { mac: '02:42:0a:e7:28:2a', address: `${NET}.42` };
const CLASSLESS = '10.232.0.0/16';

/** dnsmasq on the switch's bridge: DHCP only, no ping of its own, 2-minute leases, one reservation by MAC. */
class Server {
  readonly dir = mkdtempSync(join(tmpdir(), 'tsmv-dnsmasq-'));
  private child: ChildProcess | undefined;

  async start(sw: Switch): Promise<void> {
    if (!existsSync(DNSMASQ)) throw new Error(`${DNSMASQ} is missing: apt-get install dnsmasq-base`);
    writeFileSync(join(this.dir, 'hosts'), `${RESERVED.mac},${RESERVED.address}\n`);
    const args = [
      '--keep-in-foreground',
      '--conf-file=/dev/null',
      '--port=0',
      '--no-ping',
      '--user=root',
      `--interface=${sw.bridge}`,
      '--bind-interfaces',
      '--dhcp-authoritative',
      `--dhcp-range=${NET}.${RANGE.first},${NET}.${RANGE.last},255.255.255.0,2m`,
      `--dhcp-option=option:router,${sw.bridgeIp}`,
      `--dhcp-option=121,${CLASSLESS},${sw.bridgeIp}`,
      `--dhcp-leasefile=${join(this.dir, 'leases')}`,
      `--dhcp-hostsfile=${join(this.dir, 'hosts')}`,
      `--pid-file=${join(this.dir, 'pid')}`,
      '--log-dhcp',
      `--log-facility=${join(this.dir, 'log')}`,
    ];
    this.child = spawn('ip', ['netns', 'exec', sw.nsName, DNSMASQ, ...args], { stdio: 'ignore' });
    await eventually(() => expect(this.log()).toContain('DHCP, IP range'), 10_000);
  }

  log(): string {
    const file = join(this.dir, 'log');
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  leases(): { mac: string; address: string }[] {
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
}

interface Attached {
  name: string;
  mac: string;
  address: string;
}

async function attachment(name: string, network: string): Promise<Attached> {
  const format = `{{with index .NetworkSettings.Networks "${network}"}}{{.MacAddress}} {{.IPAddress}}{{end}}`;
  const [mac, address] = (await dockerOk(['inspect', '-f', format, name])).split(' ');
  return { name, mac: mac!, address: address! };
}

const inRange = (address: string) => {
  const last = Number(address.split('.')[3]);
  return address.startsWith(`${NET}.`) && last >= RANGE.first && last <= RANGE.last;
};

describe(`Docker with ${DRIVER} on a DHCP network`, () => {
  // After each test: its containers and networks go, and its switch (withPluginDaemon), then its server.
  withPluginDaemon(PREFIX);
  const servers: Server[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.stop();
  });

  /** A switch with a DHCP server on it, and a DHCP network of the plugin's on its parent. */
  async function lan(): Promise<{ sw: Switch; server: Server; network: string }> {
    const sw = await createSwitch({ subnetPrefix: NET });
    const server = new Server();
    servers.push(server);
    await server.start(sw);
    const network = uniqueName(PREFIX);
    const create = ['network', 'create', '-d', DRIVER, '--ipam-driver', 'null', '-o', `parent=${sw.parent}`];
    await dockerOk([...create, '-o', 'dhcp=true', network]);
    return { sw, server, network };
  }

  it('refuses --subnet with the default IPAM, saying what to type instead', async () => {
    const sw = await createSwitch({ subnetPrefix: NET });
    const refused = await dockerOk([
      'network',
      'create',
      '-d',
      DRIVER,
      '--subnet',
      `${NET}.0/24`,
      '-o',
      `parent=${sw.parent}`,
      '-o',
      'dhcp=true',
      uniqueName(PREFIX),
    ]).catch((err: Error) => err.message);
    expect(refused).toMatch(/create it with --ipam-driver null and without --subnet/);
  });

  it('containers started in parallel get distinct addresses from the range, each leased on the server for its MAC', async () => {
    const { server, network } = await lan();
    const names = Array.from({ length: 6 }, () => uniqueName(PREFIX));
    await Promise.all(names.map((name) => runSleeper(name, { network })));
    const attached = await Promise.all(names.map((name) => attachment(name, network)));
    expect(new Set(attached.map((a) => a.address)).size).toBe(names.length);
    for (const a of attached) {
      expect(inRange(a.address), a.address).toBe(true);
      expect(server.leases()).toContainEqual({ mac: a.mac, address: a.address });
      // What Docker configured inside is what was leased.
      expect((await containerExec(a.name, ['ip', '-4', 'addr', 'show', 'eth0'])).stdout).toContain(`${a.address}/24`);
    }
  });

  it('the default route is the router option, option 121 is a route, and the server is reachable', async () => {
    const { sw, network } = await lan();
    const name = uniqueName(PREFIX);
    await runSleeper(name, { network });
    const routes = (await containerExec(name, ['ip', '-4', 'route'])).stdout;
    const router = sw.bridgeIp.replace(/\./g, '\\.');
    expect(routes).toMatch(new RegExp(`^default via ${router} dev eth0`, 'm'));
    expect(routes).toMatch(new RegExp(`^${CLASSLESS.replace(/\./g, '\\.')} via ${router}`, 'm'));
    expect((await containerExec(name, ['ping', '-c', '1', '-W', '2', sw.bridgeIp], { allowFail: true })).code).toBe(0);
  });

  it('a --mac-address reservation on the server is honoured, and docker rm releases the lease', async () => {
    const { sw, server, network } = await lan();
    const name = uniqueName(PREFIX);
    await runSleeper(name, { network, extraArgs: ['--mac-address', RESERVED.mac] });
    expect(await attachment(name, network)).toEqual({ name, mac: RESERVED.mac, address: RESERVED.address });
    expect(server.leases()).toContainEqual({ mac: RESERVED.mac, address: RESERVED.address });
    await dockerOk(['rm', '-f', name]);
    await eventually(() => expect(server.leases().map((l) => l.mac)).not.toContain(RESERVED.mac), 10_000);
    expect(server.log()).toContain(`DHCPRELEASE(${sw.bridge}) ${RESERVED.address} ${RESERVED.mac}`);
  });
});
