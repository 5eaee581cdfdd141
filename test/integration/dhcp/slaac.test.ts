// IPv6 on a DHCP network (`-o dhcp=true --ipv6`) against Debian's dnsmasq as the LAN's router (`enable-ra`, a
// `ra-only` prefix: SLAAC), over the real packet socket: CreateEndpoint answers the SLAAC address of the endpoint's MAC
// beside the DHCPv4 lease, Join the router's link-local address as the IPv6 gateway, and the link, moved into a
// namespace as Docker does, pings the router over IPv6 through that gateway; a device holding the address fails the
// duplicate address check; a prefix the router withdraws shows in the endpoint's record and in `status`, until the
// router offers it again.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PacketSocket } from '../../../src/kernel/packet-socket';
import { formatIp, parseIp } from '../../../src/ip/address';
import { slaacAddress } from '../../../src/ra/slaac';
import { DhcpLab, inNs, sleep } from '../../helpers/dhcp-lab';
import { assertPrivateNetns, ip } from '../../helpers/net';
import { startPlugin, type TestPlugin } from '../../helpers/plugin';
import { buildRouterAdvert } from '../../helpers/ra-frames';
import { CLI } from '../../helpers/serve';

const id = () => randomBytes(32).toString('hex');
const PREFIX = 'fd77:0:0:1::';
const prefixValue = parseIp(PREFIX)!.value;
const slaacOf = (mac: string) => formatIp(true, slaacAddress(prefixValue, mac));

describe('SLAAC on a DHCP network with --ipv6, against dnsmasq as the router', () => {
  let lab: DhcpLab;
  let plugin: TestPlugin;
  let routerLinkLocal: string | undefined;
  const network = id();

  beforeAll(async () => {
    assertPrivateNetns();
    lab = await DhcpLab.create('v6S');
    inNs(lab.switchNs, 'ip', '-6', 'addr', 'add', `${PREFIX}1/64`, 'dev', 'br0', 'nodad');
    await lab.startServer(['--enable-ra', '--dhcp-range=::,constructor:br0,ra-only,64,10m']);
    // The bridge's link-local address, dnsmasq's source, comes once the bridge has a port up and has run its DAD.
    routerLinkLocal = await lab.bridgeLinkLocal();
    plugin = await startPlugin(undefined, { ipv6: true });
    const res = await plugin.call('NetworkDriver.CreateNetwork', {
      NetworkID: network,
      Options: {
        'com.docker.network.enable_ipv6': true,
        'com.docker.network.generic': { parent: lab.parent, dhcp: 'true' },
      },
      // Docker 28's null IPAM: no subnet in either family.
      IPv4Data: [{ AddressSpace: 'null', Pool: '0.0.0.0/0' }],
      IPv6Data: [{ AddressSpace: 'null', Pool: '::/0' }],
    });
    expect(res.status, JSON.stringify(res.json)).toBe(200);
  }, 30_000);
  afterAll(async () => {
    await plugin?.destroy();
    await lab?.close();
  });

  const endpoint = (endpointId: string, mac: string) =>
    plugin.call('NetworkDriver.CreateEndpoint', {
      NetworkID: network,
      EndpointID: endpointId,
      Interface: { Address: '', AddressIPv6: '', MacAddress: mac },
      Options: {},
    });

  it('CreateEndpoint answers the SLAAC address of the MAC; Join the router as gateway; the container pings it', async () => {
    const mac = '02:7e:00:00:06:01';
    const endpointId = id();
    const created = await endpoint(endpointId, mac);
    expect(created.status, JSON.stringify(created.json)).toBe(200);
    expect(created.json.Interface.AddressIPv6).toBe(`${slaacOf(mac)}/64`);
    expect(created.json.Interface.Address).toMatch(/^10\.77\.0\.\d+\/24$/); // the DHCPv4 lease beside it
    const joined = await plugin.call('NetworkDriver.Join', {
      NetworkID: network,
      EndpointID: endpointId,
      SandboxKey: '/var/run/docker/netns/none',
      Options: {},
    });
    expect(joined.status, JSON.stringify(joined.json)).toBe(200);
    expect(joined.json.GatewayIPv6).toBe(routerLinkLocal);
    // What Docker does with the answer: the link into the container, the address, the default route via the gateway.
    const ns = `${lab.prefix}c`;
    ip('netns', 'add', ns);
    try {
      const link = joined.json.InterfaceName.SrcName;
      ip('link', 'set', link, 'netns', ns);
      inNs(ns, 'ip', 'addr', 'add', created.json.Interface.AddressIPv6, 'dev', link, 'nodad');
      inNs(ns, 'ip', 'link', 'set', link, 'up');
      inNs(ns, 'ip', '-6', 'route', 'add', 'default', 'via', joined.json.GatewayIPv6, 'dev', link);
      expect(() => inNs(ns, 'ping', '-6', '-c', '1', '-W', '3', `${PREFIX}1`)).not.toThrow();
      expect(() => inNs(ns, 'ping', '-6', '-c', '1', '-W', '3', `${routerLinkLocal}%${link}`)).not.toThrow();
    } finally {
      ip('netns', 'del', ns);
    }
    expect(
      (await plugin.call('NetworkDriver.DeleteEndpoint', { NetworkID: network, EndpointID: endpointId })).status,
    ).toBe(200);
  });

  it.each([
    [
      'an IPv6 subnet from an IPAM',
      {},
      'fd99::/64',
      /got the IPv6 subnet fd99::\/64 from its IPAM driver; create it with --ipam-driver null/,
    ],
    [
      'ipvlan links (one MAC for all)',
      { ipvlan_mode: 'l2' },
      '::/0',
      /ipvlan links share their parent's MAC; use a macvlan network/,
    ],
  ])(
    'CreateNetwork with --ipv6 is refused with %s, saying what to type instead',
    async (_what, extra, pool, message) => {
      const networkId = id();
      const res = await plugin.call('NetworkDriver.CreateNetwork', {
        NetworkID: networkId,
        Options: {
          'com.docker.network.enable_ipv6': true,
          'com.docker.network.generic': { parent: lab.parent, dhcp: 'true', ...extra },
        },
        IPv4Data: [{ AddressSpace: 'null', Pool: '0.0.0.0/0' }],
        IPv6Data: [{ AddressSpace: 'null', Pool: pool }],
      });
      expect(res.status).toBe(500);
      expect(res.json.Err).toMatch(message);
      expect(plugin.driver.listNetworks().map((n) => n.id)).not.toContain(networkId);
    },
  );

  it('an IPv6-only network (--ipv4=false) asks for no DHCPv4 lease: only the SLAAC address, and Join has no IPv4 gateway', async () => {
    const only6 = id();
    const res = await plugin.call('NetworkDriver.CreateNetwork', {
      NetworkID: only6,
      Options: {
        'com.docker.network.enable_ipv6': true,
        'com.docker.network.enable_ipv4': false,
        'com.docker.network.generic': { parent: lab.parent, dhcp: 'true' },
      },
      IPv4Data: [],
      IPv6Data: [{ AddressSpace: 'null', Pool: '::/0' }],
    });
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    const mac = '02:7e:00:00:06:04';
    const endpointId = id();
    const created = await plugin.call('NetworkDriver.CreateEndpoint', {
      NetworkID: only6,
      EndpointID: endpointId,
      Interface: { Address: '', AddressIPv6: '', MacAddress: mac },
      Options: {},
    });
    expect(created.status, JSON.stringify(created.json)).toBe(200);
    expect(created.json.Interface).toEqual({ AddressIPv6: `${slaacOf(mac)}/64` });
    expect(lab.serverLeases().map((l) => l.mac)).not.toContain(mac);
    const joined = await plugin.call('NetworkDriver.Join', { NetworkID: only6, EndpointID: endpointId, Options: {} });
    expect(joined.status, JSON.stringify(joined.json)).toBe(200);
    expect(joined.json).toMatchObject({ GatewayIPv6: routerLinkLocal, DisableGatewayService: false });
    expect(joined.json.Gateway).toBeUndefined();
    await plugin.call('NetworkDriver.DeleteEndpoint', { NetworkID: only6, EndpointID: endpointId });
    expect((await plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: only6 })).status).toBe(200);
  });

  it('a device that holds the SLAAC address answers the duplicate address check: CreateEndpoint is refused naming it', async () => {
    const mac = '02:7e:00:00:06:02';
    lab.squatter(slaacOf(mac));
    const squatterMac = JSON.parse(inNs(`${lab.prefix}sq`, 'ip', '-j', 'link', 'show', `${lab.prefix}q`))[0].address;
    const endpointId = id();
    const created = await endpoint(endpointId, mac);
    expect(created.status).toBe(500);
    expect(created.json.Err).toContain(`the SLAAC address ${slaacOf(mac)} of MAC ${mac} is in use on the LAN`);
    expect(created.json.Err).toContain(`the device with MAC ${squatterMac}`);
    expect(plugin.driver.listEndpoints().map((e) => e.id)).not.toContain(endpointId);
  });

  it('after a restart the records keep their addresses; the parent is solicited again, so a new endpoint gets its address', async () => {
    // dnsmasq logs a solicitation from :: (the plugin's: it claims no address) with no MAC; a kernel's names its MAC.
    const solicits = () => lab.serverLog().split('RTR-SOLICIT(br0) \n').length - 1;
    const solicitedBefore = solicits();
    const before = plugin.driver.listEndpoints().filter((e) => e.slaac);
    plugin = await plugin.restart();
    const after = plugin.driver.listEndpoints().filter((e) => e.slaac);
    expect(after).toEqual(before);
    // The start solicits on its own, before any container asks.
    for (let i = 0; i < 60 && solicits() === solicitedBefore; i++) await sleep(50);
    expect(solicits()).toBeGreaterThan(solicitedBefore);
    const mac = '02:7e:00:00:06:05';
    const started = Date.now();
    const created = await endpoint(id(), mac);
    expect(created.status, JSON.stringify(created.json)).toBe(200);
    expect(created.json.Interface.AddressIPv6).toBe(`${slaacOf(mac)}/64`);
    // Known already: no wait for dnsmasq's periodic adverts, which are minutes apart (a generous bound: the DAD is 0.4 s).
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('a prefix the router withdraws is marked in the endpoint record and shown by status', async () => {
    const mac = '02:7e:00:00:06:03';
    const endpointId = id();
    expect((await endpoint(endpointId, mac)).status).toBe(200);
    // The router (its MAC and link-local address) says the prefix is valid no more, from another port of the switch.
    const port = lab.port('r');
    const index = JSON.parse(ip('-j', 'link', 'show', port))[0].ifindex as number;
    const routerMac = JSON.parse(inNs(lab.switchNs, 'ip', '-j', 'link', 'show', 'br0'))[0].address;
    const withdraw = buildRouterAdvert({
      routerMac,
      router: parseIp(routerLinkLocal!)!.value,
      prefixes: [{ prefix: prefixValue, length: 64, validSeconds: 0, preferredSeconds: 0 }],
    });
    const socket = new PacketSocket(
      () => undefined,
      (error) => console.error(error),
    );
    try {
      let record;
      for (let i = 0; i < 40 && !record?.slaac?.lost; i++) {
        if (i % 10 === 0) socket.send(index, withdraw);
        await sleep(50);
        record = plugin.driver.listEndpoints().find((e) => e.id === endpointId);
      }
      expect(record?.slaac).toMatchObject({ prefix: `${PREFIX}/64`, lost: { condition: 'withdrawn' } });
    } finally {
      socket.close();
    }
    const text = execFileSync(process.execPath, [CLI, 'status', '--state-dir', plugin.stateDir], { encoding: 'utf8' });
    expect(text).toMatch(new RegExp(`${slaacOf(mac)}/64 .*withdrawn since`));
    const doctor = spawnSync(process.execPath, [CLI, 'doctor', '--json', '--state-dir', plugin.stateDir], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    const check = JSON.parse(doctor.stdout).checks.find(
      (c: { id: string }) => c.id === `ipv6-prefix:${endpointId.slice(0, 12)}`,
    );
    expect(check).toMatchObject({ status: 'WARN', message: expect.stringContaining(`${PREFIX}/64 is withdrawn`) });

    // Offered again: the mark goes.
    const offer = buildRouterAdvert({
      routerMac,
      router: parseIp(routerLinkLocal!)!.value,
      prefixes: [{ prefix: prefixValue, length: 64, validSeconds: 600, preferredSeconds: 300 }],
    });
    const again = new PacketSocket(
      () => undefined,
      (error) => console.error(error),
    );
    try {
      let record;
      for (let i = 0; i < 40 && (!record || record.slaac?.lost); i++) {
        if (i % 10 === 0) again.send(index, offer);
        await sleep(50);
        record = plugin.driver.listEndpoints().find((e) => e.id === endpointId);
      }
      expect(record?.slaac).toEqual({ prefix: `${PREFIX}/64`, router: routerLinkLocal });
    } finally {
      again.close();
    }
  });
});
