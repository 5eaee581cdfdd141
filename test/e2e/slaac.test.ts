// IPv6 from the LAN's router under Docker 28 (`--ipam-driver null --ipv6 -o dhcp=true`), with Debian's dnsmasq on the
// switch as DHCPv4 server and IPv6 router (`enable-ra`, a `ra-only` prefix: SLAAC): the container gets the SLAAC
// address of its MAC beside its DHCPv4 lease, its default IPv6 route via the router's link-local address, and pings
// the router over IPv6; with a DHCPv6 range instead (the M flag), the container gets an address leased by dnsmasq,
// which `docker rm` releases; with the plugin's IPAM and `--ipam-opt ipv6=slaac`, the network's IPv6 pool is the
// router's prefix and the container's default route goes via the router, and when dnsmasq is reconfigured to
// deprecate that prefix, `status` marks the pool, its network and the container's endpoint, and `doctor` warns.
// Docker 20.10 to 27 refuse --ipv6 with the null IPAM (vitest.config.ts runs this on 28+).
import { describe, expect, it } from 'vitest';
import { formatIp, parseIp } from '../../src/ip/address';
import { slaacAddress } from '../../src/ra/slaac';
import { CLI } from '../helpers/serve';
import { containerExec, dockerOk, eventually, ping, run, runSleeper, uniqueName, waitFor } from './docker';
import { DhcpServer } from './dnsmasq';
import { DRIVER, SOCKET, withPluginDaemon } from './plugin-daemon';
import { createSwitch } from './topology';

const PREFIX = 'v6-slaac-';
const V6 = 'fd31:231:61::';
const MAC = '02:42:0a:e7:3d:07';

interface PrefixLost {
  prefix: string;
  parent: string;
  state: string;
  since: string;
}

interface Status {
  networks: { id: string; prefixLost: PrefixLost | null }[];
  endpoints: { id: string; prefixLost: PrefixLost | null }[];
  pools: { pool: string; routerPrefix: { parent: string; state: string; since: string | null } | null }[];
}

describe(`Docker with ${DRIVER}: SLAAC on a DHCP network with --ipv6`, () => {
  const plugin = withPluginDaemon(PREFIX);
  const cli = async (command: string) =>
    JSON.parse(
      (
        await run(process.execPath, [CLI, command, '--json', '--socket', SOCKET, '--state-dir', plugin().stateDir], {
          allowFail: true,
        })
      ).stdout,
    );

  it('the container gets the SLAAC address of its MAC, a default route via the router, and pings it', async () => {
    const sw = await createSwitch({ subnetPrefix: '10.231.61', ipv6Prefix: V6 });
    const server = new DhcpServer();
    try {
      await server.start(sw, {
        range: { first: 100, last: 120 },
        extraArgs: ['--enable-ra', `--dhcp-range=::,constructor:${sw.bridge},ra-only,64,10m`],
      });
      const network = uniqueName(PREFIX);
      const create = [
        'network',
        'create',
        '-d',
        DRIVER,
        '--ipam-driver',
        'null',
        '--ipv6',
        '-o',
        `parent=${sw.parent}`,
      ];
      await dockerOk([...create, '-o', 'dhcp=true', network]);
      const name = uniqueName(PREFIX);
      await runSleeper(name, { network, extraArgs: ['--mac-address', MAC] });
      const expected = formatIp(true, slaacAddress(parseIp(V6)!.value, MAC));
      const format = `{{(index .NetworkSettings.Networks "${network}").GlobalIPv6Address}}`;
      expect(await dockerOk(['inspect', '-f', format, name])).toBe(expected);
      expect((await containerExec(name, ['ip', '-6', 'addr', 'show', 'eth0'])).stdout).toContain(`${expected}/64`);
      expect((await containerExec(name, ['ip', '-6', 'route'])).stdout).toMatch(
        /^default via fe80::[0-9a-f:]+ dev eth0/m,
      );
      expect((await containerExec(name, ['ip', '-4', 'addr', 'show', 'eth0'])).stdout).toMatch(
        /inet 10\.231\.61\.1\d\d\//,
      );
      await waitFor(() => ping(name, sw.bridgeIp6!), 20_000, { intervalMs: 500, what: `${name} to reach the router` });
    } finally {
      await server.stop();
    }
  }, 90_000);

  it('with the M flag the container gets a DHCPv6 address from the server, pings the router, and rm releases it', async () => {
    const v6 = 'fd31:231:62::';
    const sw = await createSwitch({ subnetPrefix: '10.231.62', ipv6Prefix: v6 });
    const server = new DhcpServer();
    try {
      await server.start(sw, {
        range: { first: 100, last: 120 },
        extraArgs: ['--enable-ra', `--dhcp-range=${v6}10,${v6}ff,64,2m`],
      });
      const network = uniqueName(PREFIX);
      const create = ['network', 'create', '-d', DRIVER, '--ipam-driver', 'null', '--ipv6'];
      await dockerOk([...create, '-o', `parent=${sw.parent}`, '-o', 'dhcp=true', network]);
      const name = uniqueName(PREFIX);
      await runSleeper(name, { network });
      const format = `{{(index .NetworkSettings.Networks "${network}").GlobalIPv6Address}}`;
      const address = await dockerOk(['inspect', '-f', format, name]);
      expect(address).toMatch(/^fd31:231:62::[1-9a-f][0-9a-f]?$/);
      expect(server.log()).toMatch(new RegExp(`DHCPREPLY\\(${sw.bridge}\\) ${address} 00:03:00:01:`));
      expect((await containerExec(name, ['ip', '-6', 'addr', 'show', 'eth0'])).stdout).toContain(`${address}/64`);
      expect((await containerExec(name, ['ip', '-6', 'route'])).stdout).toMatch(
        /^default via fe80::[0-9a-f:]+ dev eth0/m,
      );
      await waitFor(() => ping(name, sw.bridgeIp6!), 20_000, { intervalMs: 500, what: `${name} to reach the router` });
      await dockerOk(['rm', '-f', name]);
      await waitFor(async () => server.log().includes(`DHCPRELEASE(${sw.bridge})`), 10_000, {
        intervalMs: 200,
        what: 'dnsmasq to log the release',
      });
    } finally {
      await server.stop();
    }
  }, 90_000);
  it("--ipam-driver with --ipam-opt ipv6=slaac: the pool is the router's prefix; the container gets an address in it and pings the router", async () => {
    const sw = await createSwitch({ subnetPrefix: '10.231.63', ipv6Prefix: V6 });
    const server = new DhcpServer();
    try {
      await server.start(sw, {
        range: { first: 100, last: 120 },
        extraArgs: ['--enable-ra', `--dhcp-range=::,constructor:${sw.bridge},ra-only,64,10m`],
      });
      const network = uniqueName(PREFIX);
      await dockerOk([
        'network',
        'create',
        '-d',
        DRIVER,
        '--ipv6',
        '--ipam-driver',
        DRIVER,
        '--ipam-opt',
        'ipv6=slaac',
        '--ipam-opt',
        `parent=${sw.parent}`,
        '-o',
        `parent=${sw.parent}`,
        '--subnet',
        '10.231.63.0/24',
        '--ip-range',
        '10.231.63.128/25',
        network,
      ]);
      const subnets = await dockerOk([
        'network',
        'inspect',
        '-f',
        '{{range .IPAM.Config}}{{.Subnet}} {{end}}',
        network,
      ]);
      expect(subnets.split(' ')).toContain(`${V6}/64`);
      const name = uniqueName(PREFIX);
      await runSleeper(name, { network });
      const format = `{{(index .NetworkSettings.Networks "${network}").GlobalIPv6Address}}`;
      expect(await dockerOk(['inspect', '-f', format, name])).toMatch(new RegExp(`^${V6}[0-9a-f]+$`));
      expect((await containerExec(name, ['ip', '-6', 'route'])).stdout).toMatch(
        /^default via fe80::[0-9a-f:]+ dev eth0/m,
      );
      await waitFor(() => ping(name, sw.bridgeIp6!), 20_000, { intervalMs: 500, what: `${name} to reach the router` });
    } finally {
      await server.stop();
    }
  }, 90_000);

  it('--ipam-opt ipv6=slaac: a prefix the router deprecates (dnsmasq reconfigured) shows in status and doctor', async () => {
    const v6 = 'fd31:231:65::';
    const prefix = `${v6}/64`;
    const sw = await createSwitch({ subnetPrefix: '10.231.65', ipv6Prefix: v6 });
    const ra = (lifetime: string) => ['--enable-ra', `--dhcp-range=::,constructor:${sw.bridge},ra-only,64,${lifetime}`];
    let server = new DhcpServer();
    try {
      await server.start(sw, { range: { first: 100, last: 120 }, extraArgs: ra('10m') });
      const network = uniqueName(PREFIX);
      const slaacPool = ['--ipam-driver', DRIVER, '--ipam-opt', 'ipv6=slaac', '--ipam-opt', `parent=${sw.parent}`];
      const create = ['network', 'create', '-d', DRIVER, '--ipv6', ...slaacPool, '-o', `parent=${sw.parent}`];
      await dockerOk([...create, '--subnet', '10.231.65.0/24', network]);
      const name = uniqueName(PREFIX);
      await runSleeper(name, { network });
      const ids = `{{.Id}} {{(index .NetworkSettings.Networks "${network}").EndpointID}}`;
      const [, endpointId] = (await dockerOk(['inspect', '-f', ids, name])).split(' ');
      const networkId = await dockerOk(['network', 'inspect', '-f', '{{.Id}}', network]);
      let status = (await cli('status')) as Status;
      expect(status.pools.find((p) => p.pool === prefix)?.routerPrefix).toEqual({
        parent: sw.parent,
        state: 'valid',
        since: null,
      });
      expect(status.endpoints.find((e) => e.id === endpointId)?.prefixLost).toBeNull();

      // The router reconfigured: the same prefix, now with a preferred lifetime of 0 (dnsmasq's "deprecated").
      await server.stop();
      server = new DhcpServer();
      await server.start(sw, { range: { first: 100, last: 120 }, extraArgs: ra('deprecated') });
      await eventually(async () => {
        status = (await cli('status')) as Status;
        expect(status.pools.find((p) => p.pool === prefix)?.routerPrefix?.state).toBe('deprecated');
      }, 60_000);
      const lost = { prefix, parent: sw.parent, state: 'deprecated', since: expect.any(String) };
      expect(status.networks.find((n) => n.id === networkId)?.prefixLost).toEqual(lost);
      expect(status.endpoints.find((e) => e.id === endpointId)?.prefixLost).toEqual(lost);
      const { checks } = (await cli('doctor')) as { checks: { id: string; status: string; fix?: string }[] };
      expect(checks.find((c) => c.id === `ipv6-pool-prefix:${prefix}`)).toMatchObject({
        status: 'WARN',
        fix: expect.stringContaining('recreate the network'),
      });
    } finally {
      await server.stop();
    }
  }, 150_000);
});
