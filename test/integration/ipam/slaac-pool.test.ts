// --ipam-opt ipv6=slaac against Debian's dnsmasq as the LAN's router (`enable-ra`, an `ra-only` prefix), through the
// plugin's HTTP API as Docker calls it: RequestPool without an IPv6 --subnet answers the advertised /64, its addresses
// are handed out and probed as any pool's (a squatter's never given), the IPv4 pool of the same network is untouched
// by the option, a prefix the router withdraws is journaled with the pool and shown by status and doctor, and a parent
// with no router fails within the bounded wait saying what to check; a missing parent option says what to type.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readState } from '../../../src/inspect/state-snapshot';
import { parseIp } from '../../../src/ip/address';
import { PacketSocket } from '../../../src/kernel/packet-socket';
import { DhcpLab, inNs, sleep } from '../../helpers/dhcp-lab';
import { assertPrivateNetns, deleteLink, ip, vethPair } from '../../helpers/net';
import { startPlugin, type TestPlugin } from '../../helpers/plugin';
import { buildRouterAdvert } from '../../helpers/ra-frames';
import { CLI } from '../../helpers/serve';

const id = () => randomBytes(32).toString('hex');
const GW = { RequestAddressType: 'com.docker.network.gateway' };
const PREFIX = 'fd7a:0:0:1::';

let lab: DhcpLab;
let plugin: TestPlugin;
let silent: string;
let routerLinkLocal: string | undefined;
const wait = process.env.TSMACVLAN_RA_WAIT_SECONDS;

beforeAll(async () => {
  assertPrivateNetns();
  lab = await DhcpLab.create('v6iP');
  inNs(lab.switchNs, 'ip', '-6', 'addr', 'add', `${PREFIX}1/64`, 'dev', 'br0', 'nodad');
  await lab.startServer(['--enable-ra', '--dhcp-range=::,constructor:br0,ra-only,64,10m']);
  routerLinkLocal = await lab.bridgeLinkLocal();
  lab.squatter(`${PREFIX}2`);
  silent = `${lab.prefix}n`;
  vethPair(silent);
  // The wait for a router's advertisement is read at each RequestPool: 10 s (the default) where the router answers, so
  // a loaded machine cannot make it miss; 2 s where none does (below).
  process.env.TSMACVLAN_RA_WAIT_SECONDS = '10';
  plugin = await startPlugin(undefined, { ipv6: true, probe: true });
}, 30_000);

afterAll(async () => {
  if (wait === undefined) delete process.env.TSMACVLAN_RA_WAIT_SECONDS;
  else process.env.TSMACVLAN_RA_WAIT_SECONDS = wait;
  await plugin?.destroy();
  if (silent) deleteLink(silent);
  await lab?.close();
});

async function ok(method: string, body: unknown): Promise<any> {
  const { status, json } = await plugin.call(method, body);
  if (status !== 200) throw new Error(`${method}: ${json?.Err}`);
  return json;
}

const poolRequest = (options: Record<string, string>, v6 = true, pool = '') =>
  plugin.call('IpamDriver.RequestPool', { AddressSpace: 'local', Pool: pool, SubPool: '', Options: options, V6: v6 });

describe('--ipam-opt ipv6=slaac: the IPv6 pool from the LAN router', () => {
  it("RequestPool answers the router's /64; its addresses are probed: the squatter's is never given", async () => {
    const options = { ipv6: 'slaac', parent: lab.parent };
    const v4 = await ok('IpamDriver.RequestPool', {
      AddressSpace: 'local',
      Pool: '10.77.0.0/24',
      SubPool: '10.77.0.128/25',
      Options: options,
      V6: false,
    });
    expect(v4.Pool).toBe('10.77.0.0/24');
    const res = await poolRequest(options);
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(res.json.Pool).toBe(`${PREFIX}/64`);
    const poolId = res.json.PoolID as string;
    const gw = await ok('IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: GW });
    const networkId = id();
    await ok('NetworkDriver.CreateNetwork', {
      NetworkID: networkId,
      Options: { 'com.docker.network.enable_ipv6': true, 'com.docker.network.generic': { parent: lab.parent } },
      IPv4Data: [],
      IPv6Data: [{ AddressSpace: 'local', Pool: res.json.Pool, Gateway: gw.Address }],
    });
    const given: string[] = [];
    for (let i = 0; i < 3; i++)
      given.push((await ok('IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: null })).Address);
    for (const address of given) expect(address).toMatch(new RegExp(`^${PREFIX}[0-9a-f]+/64$`));
    expect(given).not.toContain(`${PREFIX}2/64`);
    expect(new Set(given).size).toBe(3);
    // Join gives the router by its link-local address as the IPv6 gateway; through it the container reaches the router.
    const endpointId = id();
    const address = given[0]!;
    await ok('NetworkDriver.CreateEndpoint', {
      NetworkID: networkId,
      EndpointID: endpointId,
      Interface: { AddressIPv6: address, MacAddress: '02:7a:00:00:00:01' },
      Options: {},
    });
    const joined = await ok('NetworkDriver.Join', { NetworkID: networkId, EndpointID: endpointId, Options: {} });
    expect(joined.GatewayIPv6).toBe(routerLinkLocal);
    const ns = `${lab.prefix}c`;
    ip('netns', 'add', ns);
    try {
      const link = joined.InterfaceName.SrcName;
      ip('link', 'set', link, 'netns', ns);
      inNs(ns, 'ip', 'addr', 'add', address, 'dev', link, 'nodad');
      inNs(ns, 'ip', 'link', 'set', link, 'up');
      inNs(ns, 'ip', '-6', 'route', 'add', 'default', 'via', joined.GatewayIPv6, 'dev', link);
      expect(() => inNs(ns, 'ping', '-6', '-c', '1', '-W', '3', `${PREFIX}1`)).not.toThrow();
    } finally {
      ip('netns', 'del', ns);
    }
  });

  it('a prefix the router withdraws is journaled with the pool: status marks it, doctor warns with what to do', async () => {
    const poolOf = () => readState(plugin.stateDir).pools.find((p) => p.pool === `${PREFIX}/64`);
    expect(poolOf()?.routerPrefix).toEqual({ parent: lab.parent, state: 'valid', since: null });
    // The router (its MAC and link-local address) says the prefix is valid no more, from another port of the switch.
    const port = lab.port('w');
    const index = JSON.parse(ip('-j', 'link', 'show', port))[0].ifindex as number;
    const routerMac = JSON.parse(inNs(lab.switchNs, 'ip', '-j', 'link', 'show', 'br0'))[0].address;
    const withdraw = buildRouterAdvert({
      routerMac,
      router: parseIp(routerLinkLocal!)!.value,
      prefixes: [{ prefix: parseIp(PREFIX)!.value, length: 64, validSeconds: 0, preferredSeconds: 0 }],
    });
    const socket = new PacketSocket(
      () => undefined,
      (error) => console.error(error),
    );
    try {
      for (let i = 0; i < 60 && poolOf()?.routerPrefix?.state !== 'withdrawn'; i++) {
        if (i % 10 === 0) socket.send(index, withdraw);
        await sleep(50);
      }
    } finally {
      socket.close();
    }
    const lost = poolOf()?.routerPrefix;
    expect(lost).toMatchObject({ parent: lab.parent, state: 'withdrawn', since: expect.any(String) });
    const text = execFileSync(process.execPath, [CLI, 'status', '--state-dir', plugin.stateDir], { encoding: 'utf8' });
    expect(text).toContain(`${PREFIX}/64 (router on ${lab.parent}: withdrawn since ${lost!.since})`);
    expect(text).toMatch(new RegExp(`${PREFIX}/64 \\(prefix withdrawn\\) +1$`, 'm')); // the network's row
    expect(text).toMatch(new RegExp(`${PREFIX}[0-9a-f]+/64 \\(prefix withdrawn\\)$`, 'm')); // the endpoint's
    const doctor = spawnSync(process.execPath, [CLI, 'doctor', '--json', '--state-dir', plugin.stateDir], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    const check = JSON.parse(doctor.stdout).checks.find(
      (c: { id: string }) => c.id === `ipv6-pool-prefix:${PREFIX}/64`,
    );
    expect(check).toMatchObject({
      status: 'WARN',
      message: expect.stringContaining(`no longer offers ${PREFIX}/64`),
      fix: expect.stringContaining('recreate the network'),
    });
  });

  it('no router on the parent: RequestPool fails within the bounded wait, naming the parent and what to check', async () => {
    process.env.TSMACVLAN_RA_WAIT_SECONDS = '2';
    const started = Date.now();
    const res = await poolRequest({ ipv6: 'slaac', parent: silent }).finally(
      () => (process.env.TSMACVLAN_RA_WAIT_SECONDS = '10'),
    );
    expect(res.status).toBe(500);
    expect(res.json.Err).toContain(
      `no IPv6 router advertised a prefix for SLAAC (A flag, /64) on ${silent} within 2 s`,
    );
    expect(res.json.Err).toContain(`check that a router sends advertisements on the LAN of ${silent}`);
    expect(Date.now() - started).toBeLessThan(10_000);
  }, 30_000);

  it.each([
    [{ ipv6: 'slaac' }, '', /add --ipam-opt parent=<the network's -o parent>/],
    [{ ipv6: 'dhcp', parent: 'x' }, '', /--ipam-opt ipv6=dhcp is not known: give ipv6=slaac/],
    [{ ipv6: 'slaac', parent: 'x' }, 'fd00:1::/64', /leave out the IPv6 --subnet/],
  ])('RequestPool with %o and --subnet "%s" is refused saying what to type', async (options, pool, message) => {
    const res = await poolRequest(options, true, pool);
    expect(res.status).toBe(500);
    expect(res.json.Err).toMatch(message);
  });
});
