// DHCP on an ipvlan l2 network, through the plugin's API, against dnsmasq (run by test/vm/vmrun.sh: this machine's
// kernel has no ipvlan). Every container there has the parent's MAC, so each lease is told apart by the endpoint's
// own client identifier (option 61), which stays the same across a restart of the plugin.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endpointClientId } from '../../src/driver/endpoint-naming';
import { DhcpLab, SUBNET } from '../helpers/dhcp-lab';
import { link } from '../helpers/net';
import { startPlugin, type TestPlugin } from '../helpers/plugin';
import { createNetwork, id, Lab, pings, type JoinReply } from './ipvlan-lab';

const NULL_IPAM = { Pool: '0.0.0.0/0' };
const ENDPOINTS = 20; // dnsmasq's range in the lab is .100 to .120

describe('DHCP on an ipvlan l2 network', () => {
  const containers = new Lab();
  let lab: DhcpLab;
  let plugin: TestPlugin;
  let parentMac: string;
  const network = id();
  const addresses = new Map<string, string>(); // endpoint id -> leased address

  beforeAll(async () => {
    lab = await DhcpLab.create('ivD');
    await lab.startServer();
    parentMac = link(lab.parent)!.address;
    plugin = await startPlugin();
    const made = await createNetwork(
      plugin,
      network,
      { parent: lab.parent, ipvlan_mode: 'l2', dhcp: 'true', dhcp_timeout: '25' },
      NULL_IPAM,
    );
    expect(made.status, JSON.stringify(made.json)).toBe(200);
  });
  afterAll(async () => {
    await plugin?.destroy();
    containers.close();
    await lab?.close();
  });

  it(`${ENDPOINTS} endpoints that share the parent's MAC get ${ENDPOINTS} leases, one per client id; a container on one reaches the LAN`, async () => {
    const ids = Array.from({ length: ENDPOINTS }, () => id());
    // A few at a time (Docker sends one network's CreateEndpoints one by one): the VM's emulated CPU is slow.
    for (let i = 0; i < ids.length; i += 5) {
      const some = ids.slice(i, i + 5);
      const answers = await Promise.all(
        some.map((endpointId) =>
          plugin.call('NetworkDriver.CreateEndpoint', {
            NetworkID: network,
            EndpointID: endpointId,
            Interface: { Address: '', AddressIPv6: '', MacAddress: '' },
          }),
        ),
      );
      for (const [j, answer] of answers.entries()) {
        expect(answer.status, `${JSON.stringify(answer.json)}\n${lab.serverLog().slice(-3000)}`).toBe(200);
        expect(answer.json.Interface.MacAddress).toBeUndefined(); // an ipvlan's MAC is its parent's
        addresses.set(some[j]!, answer.json.Interface.Address.split('/')[0]);
      }
    }
    expect(new Set(addresses.values()).size).toBe(ENDPOINTS);
    const onServer = lab.serverLeases();
    expect(onServer).toHaveLength(ENDPOINTS);
    for (const lease of onServer) expect(lease.mac).toBe(parentMac);
    expect(new Set(onServer.map((l) => l.clientId))).toEqual(new Set(ids.map(endpointClientId)));
    for (const [endpointId, address] of addresses)
      expect(onServer.find((l) => l.clientId === endpointClientId(endpointId))?.address).toBe(address);

    const [first] = ids;
    const joined = await plugin.call('NetworkDriver.Join', { NetworkID: network, EndpointID: first, SandboxKey: '' });
    expect(joined.json).toMatchObject({ Gateway: SUBNET.router });
    const ns = containers.container('d', joined.json as JoinReply, { ipv4: `${addresses.get(first!)}/24` });
    expect(pings(ns, SUBNET.router)).toBe(true);
  });

  it("after a restart each lease is still its endpoint's: a release then frees that one lease and no other", async () => {
    await plugin.close();
    plugin = await startPlugin(plugin.stateDir);
    const [endpointId, address] = [...addresses][1]!;
    await plugin.call('NetworkDriver.DeleteEndpoint', { NetworkID: network, EndpointID: endpointId });
    expect(await lab.released([{ mac: parentMac, address }])).toEqual({ unlogged: [], kept: [] });
    expect(lab.serverLeases()).toHaveLength(ENDPOINTS - 1);
  });
});

describe('DHCP on an ipvlan l2 network, against a server that keys leases on the MAC alone', () => {
  let lab: DhcpLab;
  let plugin: TestPlugin;

  beforeAll(async () => {
    lab = await DhcpLab.create('ivE');
    await lab.startServer(['--dhcp-ignore-clid']);
    plugin = await startPlugin();
  });
  afterAll(async () => {
    await plugin?.destroy();
    await lab?.close();
  });

  it('refuses the second container, naming the server and what to change; the first keeps its lease', async () => {
    const network = id();
    await createNetwork(
      plugin,
      network,
      { parent: lab.parent, ipvlan_mode: 'l2', dhcp: 'true', dhcp_timeout: '25' },
      NULL_IPAM,
    );
    const endpoint = () =>
      plugin.call('NetworkDriver.CreateEndpoint', { NetworkID: network, EndpointID: id(), Interface: {} });
    const first = await endpoint();
    expect(first.status, JSON.stringify(first.json)).toBe(200);
    const second = await endpoint();
    expect(second.json.Err).toMatch(
      new RegExp(
        `^the DHCP server ${SUBNET.router} on ${lab.parent} leased ${first.json.Interface.Address.split('/')[0]} to this container although another container there holds it .*chaddr.*alone.*option 61`,
      ),
    );
    expect(lab.serverLog()).not.toContain('DHCPRELEASE');
    expect(lab.serverLeases()).toEqual([
      expect.objectContaining({ address: first.json.Interface.Address.split('/')[0] }),
    ]);
  });
});
