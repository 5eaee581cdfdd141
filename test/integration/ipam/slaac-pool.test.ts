// --ipam-opt ipv6=slaac against Debian's dnsmasq as the LAN's router (`enable-ra`, an `ra-only` prefix), through the
// plugin's HTTP API as Docker calls it: RequestPool without an IPv6 --subnet answers the advertised /64, its addresses
// are handed out and probed as any pool's (a squatter's never given), the IPv4 pool of the same network is untouched
// by the option, and a parent with no router fails within the bounded wait saying what to check; a missing parent
// option says what to type.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DhcpLab, inNs } from '../../helpers/dhcp-lab';
import { assertPrivateNetns, deleteLink, ip, vethPair } from '../../helpers/net';
import { startPlugin, type TestPlugin } from '../../helpers/plugin';

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
