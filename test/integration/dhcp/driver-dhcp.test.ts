// DHCP networks through the plugin's HTTP API, over a veth parent to a dnsmasq switch namespace: refusals, leases
// at CreateEndpoint (on the server for the endpoint's MAC), Join's routes, 20 at once, release, no server. The restart
// (kill -9) is in driver-dhcp-restart.test.ts.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLASSLESS_ROUTE, DhcpLab, SUBNET } from '../../helpers/dhcp-lab';
import { assertPrivateNetns, deleteLink, vethPair } from '../../helpers/net';
import { startPlugin, type TestPlugin } from '../../helpers/plugin';

const id = () => randomBytes(32).toString('hex');
/** What Docker's null IPAM gives a network: no subnet, no gateway (libnetwork ipams/null). */
const NULL_IPAM = [{ AddressSpace: 'null', Pool: '0.0.0.0/0' }];
const mac = (i: number) => `02:7e:00:00:02:${i.toString(16).padStart(2, '0')}`;

export function createDhcpNetwork(
  plugin: { call: TestPlugin['call'] },
  networkId: string,
  generic: Record<string, string>,
  ipv4: unknown[] = NULL_IPAM,
) {
  return plugin.call('NetworkDriver.CreateNetwork', {
    NetworkID: networkId,
    Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': generic },
    IPv4Data: ipv4,
    IPv6Data: [],
  });
}

const inRange = (address: string) => {
  const last = (a: string) => Number(a.split('.')[3]);
  return address.startsWith('10.77.0.') && last(address) >= last(SUBNET.first) && last(address) <= last(SUBNET.last);
};

describe('DHCP networks in the driver, against dnsmasq', () => {
  let lab: DhcpLab;
  let plugin: TestPlugin;
  let lonely: string;
  const network = id();

  beforeAll(async () => {
    assertPrivateNetns();
    lab = await DhcpLab.create('tmvH');
    await lab.startServer();
    plugin = await startPlugin();
    lonely = `${lab.prefix}n`;
    vethPair(lonely);
    expect((await createDhcpNetwork(plugin, network, { parent: lab.parent, dhcp: 'true' })).status).toBe(200);
  });
  afterAll(async () => {
    await plugin?.destroy();
    deleteLink(lonely);
    await lab?.close();
  });

  const endpoint = (endpointId: string, macAddress = '') =>
    plugin.call('NetworkDriver.CreateEndpoint', {
      NetworkID: network,
      EndpointID: endpointId,
      Interface: { Address: '', AddressIPv6: '', MacAddress: macAddress },
      Options: {},
    });

  const PARENT = '<lab parent>';
  it.each([
    [
      'with another IPAM (a subnet)',
      { parent: PARENT, dhcp: 'true' },
      [{ AddressSpace: 'LocalDefault', Pool: '10.80.0.0/24', Gateway: '10.80.0.1/24' }],
      /got the subnet 10\.80\.0\.0\/24 from its IPAM driver; create it with --ipam-driver null and without --subnet/,
    ],
    ['without a parent', { dhcp: 'true' }, NULL_IPAM, /dhcp=true needs -o parent=/],
    [
      'in source mode',
      { parent: PARENT, dhcp: 'true', macvlan_mode: 'source', macvlan_source: '02:00:00:00:00:01' },
      NULL_IPAM,
      /does not work with macvlan_mode=source.*use bridge, private, vepa or passthru/,
    ],
    [
      'with host_access',
      { parent: PARENT, dhcp: 'true', host_access: '10.77.0.250' },
      NULL_IPAM,
      /host_access needs a --subnet/,
    ],
    [
      'with a bad timeout',
      { parent: PARENT, dhcp: 'true', dhcp_timeout: '0' },
      NULL_IPAM,
      /dhcp_timeout '0' is not valid/,
    ],
    [
      'dhcp_timeout without dhcp',
      { parent: PARENT, dhcp_timeout: '5' },
      NULL_IPAM,
      /dhcp_timeout only applies with dhcp=true/,
    ],
    ['dhcp=yes', { parent: PARENT, dhcp: 'yes' }, NULL_IPAM, /dhcp 'yes' is not a switch; give dhcp=true/],
  ])('CreateNetwork is refused %s, saying what to type instead', async (_what, generic, ipv4, message) => {
    const options = Object.fromEntries(Object.entries(generic).map(([k, v]) => [k, v === PARENT ? lab.parent : v]));
    const networkId = id();
    const res = await createDhcpNetwork(plugin, networkId, options, ipv4);
    expect(res.status).toBe(500);
    expect(res.json.Err).toMatch(message);
    expect(plugin.driver.listNetworks().map((n) => n.id)).not.toContain(networkId);
  });

  it('CreateEndpoint leases an address from the range for the MAC it chooses; Join answers the router and option 121', async () => {
    const endpointId = id();
    const created = await endpoint(endpointId);
    expect(created.status, JSON.stringify(created.json)).toBe(200);
    const { Address, MacAddress } = created.json.Interface;
    expect(MacAddress).toMatch(/^02:/); // locally administered, unicast: Docker left it to the plugin
    const [address, prefix] = Address.split('/');
    expect(prefix).toBe('24');
    expect(inRange(address)).toBe(true);
    expect(lab.serverLeases()).toContainEqual(expect.objectContaining({ mac: MacAddress, address }));

    const joined = await plugin.call('NetworkDriver.Join', {
      NetworkID: network,
      EndpointID: endpointId,
      SandboxKey: '/var/run/docker/netns/none',
      Options: {},
    });
    expect(joined.status).toBe(200);
    expect(joined.json.Gateway).toBe(SUBNET.router);
    expect(joined.json.DisableGatewayService).toBe(false);
    expect(joined.json.StaticRoutes).toEqual([
      { Destination: CLASSLESS_ROUTE.destination, RouteType: 0, NextHop: CLASSLESS_ROUTE.gateway },
    ]);
    // The record holds the lease, so a restart can renew it.
    const record = plugin.driver.listEndpoints().find((e) => e.id === endpointId)!;
    expect(record.lease).toMatchObject({ address, mac: MacAddress, serverId: SUBNET.router });

    // The same request again gets the same answer, and takes no second lease.
    expect((await endpoint(endpointId)).json).toEqual(created.json);
    expect(lab.serverLeases().filter((l) => l.mac === MacAddress)).toHaveLength(1);

    // DeleteEndpoint releases: the server forgets the lease.
    expect(
      (await plugin.call('NetworkDriver.DeleteEndpoint', { NetworkID: network, EndpointID: endpointId })).status,
    ).toBe(200);
    expect(await lab.released([{ mac: MacAddress, address }])).toEqual({ unlogged: [], kept: [] });
  });

  it("a MAC Docker gives is the lease's, and a reservation for it on the server is honoured", async () => {
    await lab.reserve(mac(99), '10.77.0.42');
    const endpointId = id();
    const created = await endpoint(endpointId, mac(99));
    expect(created.status, JSON.stringify(created.json)).toBe(200);
    expect(created.json).toEqual({ Interface: { Address: '10.77.0.42/24' } }); // no MacAddress: Docker set it
    await plugin.call('NetworkDriver.DeleteEndpoint', { NetworkID: network, EndpointID: endpointId });
  });

  it('a static address from Docker is refused on a DHCP network', async () => {
    const res = await plugin.call('NetworkDriver.CreateEndpoint', {
      NetworkID: network,
      EndpointID: id(),
      Interface: { Address: '10.77.0.50/24', MacAddress: mac(98) },
    });
    expect(res.status).toBe(500);
    expect(res.json.Err).toMatch(/leases its addresses from the LAN's DHCP server.*leave out --ip/);
  });

  it('20 endpoints at once get distinct addresses from the range, each on the server for its MAC', async () => {
    const ids = Array.from({ length: 20 }, () => id());
    const started = performance.now();
    const answers = await Promise.all(ids.map((endpointId, i) => endpoint(endpointId, mac(i))));
    const elapsed = performance.now() - started;
    for (const answer of answers) expect(answer.status, JSON.stringify(answer.json)).toBe(200);
    const addresses = answers.map((a) => a.json.Interface.Address.split('/')[0] as string);
    expect(new Set(addresses).size).toBe(20);
    expect(addresses.every(inRange)).toBe(true);
    const onServer = lab.serverLeases();
    addresses.forEach((address, i) =>
      expect(onServer).toContainEqual(expect.objectContaining({ mac: mac(i), address })),
    );
    console.log(`20 DHCP endpoints at once: ${elapsed.toFixed(0)} ms (each with its ARP check)`);
    await Promise.all(
      ids.map((endpointId) =>
        plugin.call('NetworkDriver.DeleteEndpoint', { NetworkID: network, EndpointID: endpointId }),
      ),
    );
    // The server handles the 20 RELEASEs one by one, on a shared machine: bounded, but generously.
    const released = await lab.released(
      addresses.map((address, i) => ({ mac: mac(i), address })),
      20_000,
    );
    expect(released).toEqual({ unlogged: [], kept: [] });
  });

  it('no server on the parent: CreateEndpoint fails within the timeout, naming the parent', async () => {
    const quiet = id();
    expect((await createDhcpNetwork(plugin, quiet, { parent: lonely, dhcp: 'true', dhcp_timeout: '2' })).status).toBe(
      200,
    );
    const started = performance.now();
    const res = await plugin.call('NetworkDriver.CreateEndpoint', {
      NetworkID: quiet,
      EndpointID: id(),
      Interface: { MacAddress: mac(97) },
    });
    const elapsed = performance.now() - started;
    expect(res.status).toBe(500);
    expect(res.json.Err).toMatch(new RegExp(`^no DHCP server answered on ${lonely} within 2 s`));
    expect(plugin.driver.listEndpoints().filter((e) => e.networkId === quiet)).toEqual([]);
    console.log(`no server: refused after ${elapsed.toFixed(0)} ms with dhcp_timeout=2`);
    // It waits the whole timeout (the server may just be slow), and not much longer: under 3 times it on this shared
    // machine.
    expect(elapsed).toBeGreaterThanOrEqual(1_950);
    expect(elapsed).toBeLessThan(6_000);
  });
});
