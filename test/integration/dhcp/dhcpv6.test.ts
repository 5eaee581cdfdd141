// DHCPv6 on a DHCP network with --ipv6 (`-o dhcp=true --ipv6`) against Debian's dnsmasq as the LAN's router and
// DHCPv6 server (`enable-ra` with a DHCPv6 range: the M flag), over the real packet socket: CreateEndpoint answers the
// leased address with the on-link prefix's length, Join the router's link-local address as the IPv6 gateway, and the
// link, moved into a namespace as Docker does, pings the router; a device holding the address leased is declined (the
// server then gives another);
// a lease is kept across a plugin restart and renewed at its T1 (dnsmasq's log shows it); DeleteEndpoint releases it.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DhcpLab, inNs, sleep } from '../../helpers/dhcp-lab';
import { assertPrivateNetns, ip } from '../../helpers/net';
import { startPlugin, type TestPlugin } from '../../helpers/plugin';
import { CLI } from '../../helpers/serve';
import { setIoFault } from '../../../src/state/faults';

const id = () => randomBytes(32).toString('hex');
const PREFIX = 'fd78:0:0:1::';
const RESERVED = `${PREFIX}42`;
const IGNORED = '02:7e:00:00:07:04';
const duid = (mac: string) => `00:03:00:01:${mac}`;

describe('DHCPv6 on a DHCP network with --ipv6, against dnsmasq as router and server (M flag)', () => {
  let lab: DhcpLab;
  let plugin: TestPlugin;
  let routerLinkLocal: string | undefined;
  const network = id();

  beforeAll(async () => {
    assertPrivateNetns();
    lab = await DhcpLab.create('v6D');
    inNs(lab.switchNs, 'ip', '-6', 'addr', 'add', `${PREFIX}1/64`, 'dev', 'br0', 'nodad');
    await lab.startServer([
      '--enable-ra',
      `--dhcp-range=${PREFIX}10,${PREFIX}ff,64,2m`,
      // The decline case: this MAC's DUID is always given RESERVED, which a squatter holds.
      `--dhcp-host=id:${duid('02:7e:00:00:07:02')},[${RESERVED}]`,
      // The silent server case: this MAC's DUID is never answered.
      `--dhcp-host=id:${duid(IGNORED)},ignore`,
    ]);
    routerLinkLocal = await lab.bridgeLinkLocal();
    plugin = await startPlugin(undefined, { ipv6: true });
    const res = await plugin.call('NetworkDriver.CreateNetwork', {
      NetworkID: network,
      Options: {
        'com.docker.network.enable_ipv6': true,
        'com.docker.network.generic': { parent: lab.parent, dhcp: 'true', dhcp_timeout: '4' },
      },
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
  const logLines = (what: string, mac: string) =>
    lab
      .serverLog()
      .split('\n')
      .filter((line) => line.includes(`${what}(br0)`) && line.includes(duid(mac)));
  async function until(condition: () => boolean, ms = 5000): Promise<void> {
    for (const end = Date.now() + ms; !condition() && Date.now() < end;) await sleep(50);
    expect(condition()).toBe(true);
  }

  it('CreateEndpoint answers the leased address; Join the router as gateway; the container pings it; delete releases', async () => {
    const mac = '02:7e:00:00:07:01';
    const endpointId = id();
    const created = await endpoint(endpointId, mac);
    expect(created.status, JSON.stringify(created.json)).toBe(200);
    const [address, length] = created.json.Interface.AddressIPv6.split('/');
    expect(address).toMatch(/^fd78:0:0:1::[1-9a-f][0-9a-f]?$/);
    expect(length).toBe('64'); // dnsmasq advertises the prefix on-link, /64
    expect(created.json.Interface.Address).toMatch(/^10\.77\.0\.\d+\/24$/); // the DHCPv4 lease beside it
    expect(logLines('DHCPREPLY', mac).some((line) => line.includes(address))).toBe(true);
    const record = plugin.driver.listEndpoints().find((e) => e.id === endpointId)!;
    expect(record.dhcp6?.lease).toMatchObject({ address, duid: duid(mac), iaid: 1 });
    const joined = await plugin.call('NetworkDriver.Join', {
      NetworkID: network,
      EndpointID: endpointId,
      SandboxKey: '/var/run/docker/netns/none',
      Options: {},
    });
    expect(joined.status, JSON.stringify(joined.json)).toBe(200);
    expect(joined.json.GatewayIPv6).toBe(routerLinkLocal);
    const status = execFileSync(process.execPath, [CLI, 'status', '--json', '--state-dir', plugin.stateDir], {
      encoding: 'utf8',
    });
    expect(JSON.parse(status).leases).toContainEqual(
      expect.objectContaining({ endpointId, mac, address: created.json.Interface.AddressIPv6, lost: null }),
    );
    const ns = `${lab.prefix}c`;
    ip('netns', 'add', ns);
    try {
      const link = joined.json.InterfaceName.SrcName;
      ip('link', 'set', link, 'netns', ns);
      inNs(ns, 'ip', 'addr', 'add', created.json.Interface.AddressIPv6, 'dev', link, 'nodad');
      inNs(ns, 'ip', 'link', 'set', link, 'up');
      inNs(ns, 'ip', '-6', 'route', 'add', 'default', 'via', joined.json.GatewayIPv6, 'dev', link);
      expect(() => inNs(ns, 'ping', '-6', '-c', '1', '-W', '3', `${PREFIX}1`)).not.toThrow();
    } finally {
      ip('netns', 'del', ns);
    }
    const deleted = await plugin.call('NetworkDriver.DeleteEndpoint', { NetworkID: network, EndpointID: endpointId });
    expect(deleted.status).toBe(200);
    await until(() => logLines('DHCPRELEASE', mac).length > 0);
  });

  it('an address a device holds fails the duplicate address check: DECLINE, and the next address the server gives is taken', async () => {
    const mac = '02:7e:00:00:07:02';
    lab.squatter(RESERVED);
    const endpointId = id();
    const created = await endpoint(endpointId, mac);
    expect(created.status, JSON.stringify(created.json)).toBe(200);
    const [address] = created.json.Interface.AddressIPv6.split('/');
    expect(address).not.toBe(RESERVED);
    // dnsmasq was told the reserved address is in use, and sets it aside.
    expect(logLines('DHCPREPLY', mac)[0]).toContain(RESERVED);
    expect(logLines('DHCPDECLINE', mac).length).toBe(1);
    expect(lab.serverLog()).toContain(`disabling DHCP static address ${RESERVED}`);
    expect(logLines('DHCPREPLY', mac).at(-1)).toContain(address);
    await plugin.call('NetworkDriver.DeleteEndpoint', { NetworkID: network, EndpointID: endpointId });
  });

  it('the M flag with no DHCPv6 server answering: CreateEndpoint fails after dhcp_timeout, saying what to do', async () => {
    const quick = id();
    const res = await plugin.call('NetworkDriver.CreateNetwork', {
      NetworkID: quick,
      Options: {
        'com.docker.network.enable_ipv6': true,
        'com.docker.network.enable_ipv4': false,
        'com.docker.network.generic': { parent: lab.parent, dhcp: 'true', dhcp_timeout: '1' },
      },
      IPv4Data: [],
      IPv6Data: [{ AddressSpace: 'null', Pool: '::/0' }],
    });
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    const endpointId = id();
    const created = await plugin.call('NetworkDriver.CreateEndpoint', {
      NetworkID: quick,
      EndpointID: endpointId,
      Interface: { Address: '', AddressIPv6: '', MacAddress: IGNORED },
      Options: {},
    });
    expect(created.status).toBe(500);
    expect(created.json.Err).toBe(
      `the IPv6 router on ${lab.parent} sets the M flag (addresses from DHCPv6), but no DHCPv6 server leased an address ` +
        `to MAC ${IGNORED} within 1 s; check that a DHCPv6 server serves the LAN of ${lab.parent} and has free ` +
        'addresses, give it longer with -o dhcp_timeout=<seconds>, or leave out --ipv6',
    );
    expect(logLines('DHCPSOLICIT', IGNORED).length).toBeGreaterThan(0);
    expect(plugin.driver.listEndpoints().map((e) => e.id)).not.toContain(endpointId);
    expect((await plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: quick })).status).toBe(200);
  });

  it("a record write that fails stops the exchange: CreateEndpoint fails with the disk's error, and nothing is kept", async () => {
    const only6 = id();
    const res = await plugin.call('NetworkDriver.CreateNetwork', {
      NetworkID: only6,
      Options: {
        'com.docker.network.enable_ipv6': true,
        'com.docker.network.enable_ipv4': false,
        'com.docker.network.generic': { parent: lab.parent, dhcp: 'true', dhcp_timeout: '4' },
      },
      IPv4Data: [],
      IPv6Data: [{ AddressSpace: 'null', Pool: '::/0' }],
    });
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    const mac = '02:7e:00:00:07:05';
    const endpointId = id();
    setIoFault(`EIO:write:/endpoints/${endpointId}`);
    let created;
    try {
      created = await plugin.call('NetworkDriver.CreateEndpoint', {
        NetworkID: only6,
        EndpointID: endpointId,
        Interface: { Address: '', AddressIPv6: '', MacAddress: mac },
        Options: {},
      });
    } finally {
      setIoFault(undefined);
    }
    expect(created.status).toBe(500);
    expect(created.json.Err).toMatch(/EIO: injected i\/o error, write .*endpoints/);
    expect(plugin.driver.listEndpoints().map((e) => e.id)).not.toContain(endpointId);
    expect(existsSync(join(plugin.stateDir, 'endpoints', `${endpointId}.json`))).toBe(false);
    // Stopped before the server's reply, or released after it: the server keeps no lease for it.
    const held = () => lab.serverLeases().some((l) => l.clientId === duid(mac) && l.address.includes(':'));
    await until(() => !held());
    expect((await plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: only6 })).status).toBe(200);
  });

  it('a lease is kept across a restart and renewed at its T1 (dnsmasq logs the RENEW); delete releases it', async () => {
    const mac = '02:7e:00:00:07:03';
    const endpointId = id();
    const created = await endpoint(endpointId, mac);
    expect(created.status, JSON.stringify(created.json)).toBe(200);
    const before = plugin.driver.listEndpoints().find((e) => e.id === endpointId)!;
    await plugin.close();
    // T1 of a 2-minute lease (dnsmasq's shortest) is a minute away: the record says it is past, as after a long stop.
    const file = join(plugin.stateDir, 'endpoints', `${endpointId}.json`);
    const onDisk = JSON.parse(readFileSync(file, 'utf8'));
    onDisk.dhcp6.lease.renewAt = Date.now() - 1000;
    writeFileSync(file, JSON.stringify(onDisk));
    plugin = await startPlugin(plugin.stateDir, { ipv6: true });
    await until(() => logLines('DHCPRENEW', mac).length > 0);
    await until(
      () => plugin.driver.listEndpoints().find((e) => e.id === endpointId)!.dhcp6!.lease.renewAt > Date.now(),
    );
    const after = plugin.driver.listEndpoints().find((e) => e.id === endpointId)!;
    expect(after.ipv6).toBe(before.ipv6);
    expect(after.dhcp6!.lease.obtainedAt).toBeGreaterThan(before.dhcp6!.lease.obtainedAt);
    await plugin.call('NetworkDriver.DeleteEndpoint', { NetworkID: network, EndpointID: endpointId });
    await until(() => logLines('DHCPRELEASE', mac).length > 0);
  });
});
