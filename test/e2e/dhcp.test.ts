// DHCP networks under a real Docker Engine (`--ipam-driver null -o dhcp=true`), with Debian's dnsmasq as the LAN's
// server in the switch namespace: parallel starts get distinct leases, a --mac-address reservation is honoured, the
// default route is the router option, option 121 routes are installed, `docker rm` releases, a squatter's address is
// declined, and renewal at T1 reaches the server across a plugin kill -9.
import { afterEach, describe, expect, it } from 'vitest';
import { containerExec, dockerOk, eventually, run, runSleeper, uniqueName } from './docker';
import { CLI } from '../helpers/serve';
import { DRIVER, SOCKET, withPluginDaemon } from './plugin-daemon';
import { DhcpServer } from './dnsmasq';
import { createSwitch, type Switch } from './topology';

const PREFIX = 'tsmv-dhcp-';
const NET = '10.231.40';
const RANGE = { first: 100, last: 140 };
const RESERVED = { mac: '02:42:0a:e7:28:2a', address: `${NET}.42` };
/** A host on the LAN holds this address of the range; the server, which does not ping, offers it to this MAC. */
const SQUATTED = { mac: '02:42:0a:e7:28:78', address: `${NET}.120` };
/** The servers' T1 (option 58) for their 2-minute leases: dnsmasq's own would be half of it, 1 min. */
const T1_MS = 20_000;
const CLASSLESS = '10.232.0.0/16';

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

/**
 * Another host on the switch holding `address` (a namespace named after the switch's, so the lab removes it too), which
 * answers ARP for it. Returns its removal.
 */
async function squatter(sw: Switch, address: string): Promise<() => Promise<void>> {
  const ns = `${sw.nsName}-sq`;
  const link = `${sw.parent}q`;
  await run('ip', ['netns', 'add', ns]);
  const remove = async () => void (await run('ip', ['netns', 'del', ns], { allowFail: true }));
  try {
    await run('ip', ['link', 'add', link, 'netns', ns, 'type', 'veth', 'peer', 'name', `${link}s`, 'netns', sw.nsName]);
    await sw.exec(['ip', 'link', 'set', `${link}s`, 'master', sw.bridge, 'up']);
    await run('ip', ['-n', ns, 'addr', 'add', `${address}/24`, 'dev', link]);
    await run('ip', ['-n', ns, 'link', 'set', link, 'up']);
  } catch (error) {
    await remove();
    throw error;
  }
  return remove;
}

interface StatusLease {
  mac: string;
  address: string;
  expires: string;
  nextRenewal: string | null;
}

async function pluginLease(stateDir: string, mac: string): Promise<StatusLease | undefined> {
  const status = ['status', '--json', '--socket', SOCKET, '--state-dir', stateDir];
  const { leases } = JSON.parse((await run(process.execPath, [CLI, ...status])).stdout) as { leases: StatusLease[] };
  return leases.find((l) => l.mac === mac);
}

const inRange = (address: string) => {
  const last = Number(address.split('.')[3]);
  return address.startsWith(`${NET}.`) && last >= RANGE.first && last <= RANGE.last;
};

describe(`Docker with ${DRIVER} on a DHCP network`, () => {
  // After each test: its containers and networks go, and its switch (withPluginDaemon), then its server.
  const plugin = withPluginDaemon(PREFIX);
  const servers: DhcpServer[] = [];
  const squatters: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.stop();
    for (const remove of squatters.splice(0)) await remove();
  });

  /** A switch with a DHCP server on it, and a DHCP network of the plugin's on its parent. */
  async function lan(): Promise<{ sw: Switch; server: DhcpServer; network: string }> {
    const sw = await createSwitch({ subnetPrefix: NET });
    const server = new DhcpServer();
    servers.push(server);
    const options = { range: RANGE, reservations: [RESERVED, SQUATTED], classless: CLASSLESS };
    await server.start(sw, { ...options, renewalSeconds: T1_MS / 1000 });
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
    // The log first: dnsmasq rewrites its lease file in place, so a read can catch it empty halfway.
    const release = `DHCPRELEASE(${sw.bridge}) ${RESERVED.address} ${RESERVED.mac}`;
    await eventually(() => expect(server.log()).toContain(release), 10_000);
    await eventually(() => expect(server.leases().map((l) => l.mac)).not.toContain(RESERVED.mac), 10_000);
  });

  // One case for both, to spend the wait for T1 once. The server offers the squatted address (reserved
  // for the container's MAC): only the plugin's ARP check can refuse it, dnsmasq pings nothing (--no-ping).
  it("a squatter's address is declined, never given; the lease renews at T1, seen by the server, across a kill -9", async () => {
    const { sw, server, network } = await lan();
    squatters.push(await squatter(sw, SQUATTED.address));
    const name = uniqueName(PREFIX);
    await runSleeper(name, { network, extraArgs: ['--mac-address', SQUATTED.mac] });
    const { address } = await attachment(name, network);
    expect(address).not.toBe(SQUATTED.address);
    expect(inRange(address), address).toBe(true);
    expect(server.log()).toContain(`DHCPDECLINE(${sw.bridge}) ${SQUATTED.address} ${SQUATTED.mac}`);

    const acks = () => server.log().split(`DHCPACK(${sw.bridge}) ${address} ${SQUATTED.mac}`).length - 1;
    expect(acks()).toBe(1);
    const leased = (await pluginLease(plugin().stateDir, SQUATTED.mac))!;
    expect(leased).toMatchObject({ address: `${address}/24` });
    const renewAt = Date.parse(leased.nextRenewal!);
    // The server's T1, not half the lease (dnsmasq may take up to an eighth off it, its fuzz).
    const lifetime = Date.parse(leased.expires) - renewAt;
    expect(lifetime).toBeGreaterThanOrEqual(120_000 - T1_MS);
    expect(lifetime).toBeLessThanOrEqual(120_000 - T1_MS + T1_MS / 8 + 1000);

    await plugin().killAndRestart();
    // Resumed on the recorded schedule: nothing before T1 (a renewal at start would come well before the check, 5 s
    // ahead of T1), then the renewal (unicast: test/integration/dhcp), acknowledged by the server.
    await new Promise((resolve) => setTimeout(resolve, Math.max(renewAt - Date.now() - 5000, 0)));
    expect(acks()).toBe(1);
    await eventually(() => expect(acks()).toBe(2), 45_000);
    await eventually(async () => {
      const renewed = (await pluginLease(plugin().stateDir, SQUATTED.mac))!;
      expect(Date.parse(renewed.nextRenewal!)).toBeGreaterThan(renewAt);
    }, 10_000);
    expect((await containerExec(name, ['ip', '-4', 'addr', 'show', 'eth0'])).stdout).toContain(`${address}/24`);
  }, 150_000);
});
