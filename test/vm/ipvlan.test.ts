// ipvlan networks through the plugin's API, under a kernel that has ipvlan (run by test/vm/vmrun.sh: this machine's
// kernel has none): L2 on a veth and on a VLAN parent, IPv6, host access both ways, L3 and L3S between routed
// subnets, refusals to mix kinds and modes on a parent, and a restart with endpoints alive.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endpointLinkName } from '../../src/driver/endpoint-naming';
import { shimName } from '../../src/driver/host-access';
import { internalParentName } from '../../src/driver/parents';
import { deleteInNamespace, deleteMovedChild } from '../../src/kernel/foreign-links';
import { ip, link } from '../helpers/net';
import { startPlugin, type TestPlugin } from '../helpers/plugin';
import { attach, createNetwork, id, ifindex, inNs, ipvlanOf, Lab, pings } from './ipvlan-lab';

const L2 = { Pool: '10.94.0.0/24', Gateway: '10.94.0.1/24' };
const HOST = { ...L2, AuxAddresses: { host: '10.94.0.250/24' } };
const L2_V6 = { Pool: 'fd00:94::/64', Gateway: 'fd00:94::1/64' };

describe('ipvlan networks', () => {
  const lab = new Lab();
  let plugin: TestPlugin;
  let lan: string;
  let parent: string; // a port of the L2 switch
  let parentMac: string;

  beforeAll(async () => {
    ip('link', 'add', 'ivprobe0', 'type', 'veth', 'peer', 'name', 'ivprobe1');
    try {
      ip('link', 'add', 'link', 'ivprobe0', 'name', 'ivprobe2', 'type', 'ipvlan', 'mode', 'l2');
    } catch {
      throw new Error('this kernel has no ipvlan: run the vm suite with test/vm/vmrun.sh');
    } finally {
      ip('link', 'del', 'ivprobe0');
    }
    lan = lab.switch('sw', ['10.94.0.1/24', 'fd00:94::1/64']);
    parent = lab.port('p', lan).parent;
    parentMac = link(parent)!.address;
    plugin = await startPlugin();
  });
  afterAll(async () => {
    await plugin?.destroy();
    lab.close();
  });

  it('L2: ipvlans with the parent MAC, as the kernel shows them; containers, LAN and host (host_access) reach each other over IPv4 and IPv6; a restart adopts them', async () => {
    const network = id();
    const made = await createNetwork(
      plugin,
      network,
      { parent, ipvlan_mode: 'l2', host_access: '10.94.0.250' },
      HOST,
      L2_V6,
    );
    expect(made.status, JSON.stringify(made.json)).toBe(200);
    expect(ipvlanOf(shimName(network))).toEqual({ kind: 'ipvlan', mode: 'l2', flag: 'bridge', mac: parentMac, parent });
    const a = await attach(plugin, network, { ipv4: '10.94.0.11/24', ipv6: 'fd00:94::11/64' });
    const b = await attach(plugin, network, { ipv4: '10.94.0.12/24', ipv6: 'fd00:94::12/64' });
    expect(a.reply).toMatchObject({ Gateway: '10.94.0.1', GatewayIPv6: 'fd00:94::1', StaticRoutes: [] });
    expect(ipvlanOf(endpointLinkName(a.endpointId))).toEqual({
      kind: 'ipvlan',
      mode: 'l2',
      flag: 'bridge',
      mac: parentMac,
      parent,
    });
    const ca = lab.container('a', a.reply, { ipv4: '10.94.0.11/24', ipv6: 'fd00:94::11/64' });
    const cb = lab.container('b', b.reply, { ipv4: '10.94.0.12/24', ipv6: 'fd00:94::12/64' });
    expect(pings(ca, '10.94.0.12')).toBe(true);
    expect(pings(ca, 'fd00:94::12')).toBe(true);
    expect(pings(cb, '10.94.0.1')).toBe(true); // the LAN's router, in the switch namespace
    expect(pings(cb, 'fd00:94::1')).toBe(true);
    expect(pings(lan, '10.94.0.11')).toBe(true);
    expect(pings(null, '10.94.0.11')).toBe(true); // the host, through the shim's /32 route
    expect(pings(ca, '10.94.0.250')).toBe(true);

    // A restart with the endpoints alive: the shim and their links stay as they are, and keep working.
    const before = { shim: ifindex(shimName(network)), a: ifindex('eth0', ca) };
    await plugin.close();
    plugin = await startPlugin(plugin.stateDir);
    expect({ shim: ifindex(shimName(network)), a: ifindex('eth0', ca) }).toEqual(before);
    expect(pings(null, '10.94.0.12')).toBe(true);
    // Both families, as Docker gives every endpoint of an IPv6 network (the Join answers the IPv6 gateway too).
    const c = await attach(plugin, network, { ipv4: '10.94.0.13/24', ipv6: 'fd00:94::13/64' });
    const cc = lab.container('c', c.reply, { ipv4: '10.94.0.13/24', ipv6: 'fd00:94::13/64' });
    expect(pings(cc, '10.94.0.11')).toBe(true);

    // A MAC of the container's own cannot be had: the kernel refuses any MAC change on an ipvlan.
    const withMac = await plugin.call('NetworkDriver.CreateEndpoint', {
      NetworkID: network,
      EndpointID: id(),
      Interface: { Address: '10.94.0.14/24', MacAddress: '02:42:0a:5e:00:0e' },
    });
    expect(withMac.json.Err).toContain('gives its containers ipvlan links, which have the MAC of parent');
    // How a lost DHCP lease cuts a container off: its ipvlan found by index (all share one MAC), in its namespace
    // file or without it, and no sibling touched.
    const [indexA, indexB] = [ifindex('eth0', ca), ifindex('eth0', cb)];
    expect(await deleteMovedChild(ifindex(parent), 'ipvlan', { index: indexB, kind: 'ipvlan' })).toBe(true);
    expect(await deleteInNamespace(`/run/netns/${ca}`, { index: indexA, kind: 'ipvlan' })).toBe(true);
    for (const ns of [ca, cb]) expect(inNs(ns, 'ip', '-br', 'link')).not.toContain('eth0');
    expect(pings(cc, '10.94.0.250')).toBe(true);
    for (const ns of [ca, cb, cc]) ip('netns', 'del', ns);
    for (const { endpointId } of [a, b, c])
      await plugin.call('NetworkDriver.DeleteEndpoint', { NetworkID: network, EndpointID: endpointId });
    expect((await plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: network })).status).toBe(200);
    expect(link(shimName(network))).toBeUndefined();
  });

  it('L2 on a VLAN parent it creates: tagged frames reach the VLAN on the switch; the VLAN goes with the network', async () => {
    const { parent: trunk, peer } = lab.port('t', lan, false);
    inNs(lan, 'ip', 'link', 'add', 'link', peer, 'name', `${peer}.30`, 'type', 'vlan', 'id', '30');
    inNs(lan, 'ip', 'addr', 'add', '10.95.0.1/24', 'dev', `${peer}.30`);
    inNs(lan, 'ip', 'link', 'set', `${peer}.30`, 'up');
    const network = id();
    const made = await createNetwork(
      plugin,
      network,
      { parent: `${trunk}.30`, ipvlan_mode: 'l2', ipvlan_flag: 'private' },
      { Pool: '10.95.0.0/24', Gateway: '10.95.0.1/24' },
    );
    expect(made.status, JSON.stringify(made.json)).toBe(200);
    expect(link(`${trunk}.30`)?.ifalias).toBe('tsmacvlan:vlan');
    const a = await attach(plugin, network, { ipv4: '10.95.0.5/24' });
    expect(ipvlanOf(endpointLinkName(a.endpointId))).toMatchObject({
      mode: 'l2',
      flag: 'private',
      parent: `${trunk}.30`,
    });
    const ca = lab.container('v', a.reply, { ipv4: '10.95.0.5/24' });
    expect(pings(ca, '10.95.0.1')).toBe(true);
    ip('netns', 'del', ca);
    await plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: network });
    expect(link(`${trunk}.30`)).toBeUndefined();
  });

  it("internal (no parent): ipvlans on a parent of the network's own; containers reach each other only", async () => {
    const network = id();
    const made = await createNetwork(plugin, network, { ipvlan_mode: 'l2' }, { Pool: '10.97.0.0/24' });
    expect(made.status, JSON.stringify(made.json)).toBe(200);
    const a = await attach(plugin, network, { ipv4: '10.97.0.5/24' });
    const b = await attach(plugin, network, { ipv4: '10.97.0.6/24' });
    expect(a.reply.Gateway).toBeUndefined();
    expect(ipvlanOf(endpointLinkName(a.endpointId))).toMatchObject({
      kind: 'ipvlan',
      mode: 'l2',
      parent: internalParentName(network),
    });
    const [ca, cb] = [
      lab.container('ia', a.reply, { ipv4: '10.97.0.5/24' }),
      lab.container('ib', b.reply, { ipv4: '10.97.0.6/24' }),
    ];
    expect(pings(ca, '10.97.0.6')).toBe(true);
    for (const ns of [ca, cb]) ip('netns', 'del', ns);
    await plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: network });
    expect(link(internalParentName(network))).toBeUndefined();
  });

  it('refuses to mix kinds or ipvlan modes on a parent, naming the networks and links that hold it', async () => {
    const l2 = id();
    const { parent: shared } = lab.port('m', lan);
    await createNetwork(plugin, l2, { parent: shared, ipvlan_mode: 'l2' }, L2);
    const macvlan = await createNetwork(plugin, id(), { parent: shared }, L2);
    expect(macvlan.json.Err).toBe(
      `parent '${shared}' is used by network(s) ${l2.slice(0, 12)} (ipvlan_mode=l2 ipvlan_flag=bridge): ` +
        'the kernel never puts macvlan and ipvlan links on one parent (it answers EBUSY)',
    );
    const private_ = await createNetwork(
      plugin,
      id(),
      { parent: shared, ipvlan_mode: 'l2', ipvlan_flag: 'private' },
      L2,
    );
    expect(private_.json.Err).toContain(
      'the kernel keeps one ipvlan mode and flag per parent, and a new ipvlan with others would switch theirs; use ipvlan_mode=l2 ipvlan_flag=bridge or another parent',
    );
    await plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: l2 });
    // Links of anyone else's, as `ip link` made them.
    const { parent: other } = lab.port('o', lan);
    ip('link', 'add', 'link', other, 'name', `${other}x`, 'type', 'ipvlan', 'mode', 'l3');
    const ours = await createNetwork(plugin, id(), { parent: other, ipvlan_mode: 'l2' }, L2);
    expect(ours.json.Err).toContain(
      `parent '${other}' carries ipvlan link(s) ${other}x (ipvlan_mode=l3 ipvlan_flag=bridge)`,
    );
    const asMacvlan = await createNetwork(plugin, id(), { parent: other }, L2);
    expect(asMacvlan.json.Err).toContain('the kernel never puts macvlan and ipvlan links on one parent');
    // And the kernel agrees: a macvlan there is refused.
    expect(() => ip('link', 'add', 'link', other, 'name', `${other}m`, 'type', 'macvlan')).toThrow(/busy/i);
    expect(ipvlanOf(`${other}x`)?.mode).toBe('l3'); // untouched
  });

  describe('l3 and l3s: containers on routed subnets', () => {
    let router: string;
    let uplink: string;
    beforeAll(() => {
      // A LAN of its own: the host is 192.168.96.254 there; its router (the switch) routes the subnets to the host.
      router = lab.switch('r', ['192.168.96.1/24', '2001:db8:96::1/64']);
      uplink = lab.port('u', router).parent;
      ip('addr', 'add', '192.168.96.254/24', 'dev', uplink);
      ip('addr', 'add', '2001:db8:96::254/64', 'dev', uplink, 'nodad');
      inNs(router, 'ip', 'route', 'add', '10.96.0.0/16', 'via', '192.168.96.254');
      inNs(router, 'ip', 'route', 'add', 'fd00:96::/32', 'via', '2001:db8:96::254');
    });

    const subnet = (n: number) => ({ Pool: `10.96.${n}.0/24`, Gateway: `10.96.${n}.1/24` });

    it('l3: containers reach each other across subnets, the LAN (IPv4 and IPv6), the host (host_access) and back, with no gateway', async () => {
      const [one, two] = [id(), id()];
      const first = await createNetwork(
        plugin,
        one,
        { parent: uplink, ipvlan_mode: 'l3', host_access: '10.96.1.250' },
        { ...subnet(1), AuxAddresses: { host: '10.96.1.250/24' } },
        { Pool: 'fd00:96:1::/64', Gateway: 'fd00:96:1::1/64' },
      );
      expect(first.status, JSON.stringify(first.json)).toBe(200);
      expect((await createNetwork(plugin, two, { parent: uplink, ipvlan_mode: 'l3' }, subnet(2))).status).toBe(200);
      const a = await attach(plugin, one, { ipv4: '10.96.1.5/24', ipv6: 'fd00:96:1::5/64' });
      const b = await attach(plugin, two, { ipv4: '10.96.2.5/24' });
      // The default routes lead out of the interface itself: nothing answers ARP for a gateway in l3 mode.
      expect(a.reply).toMatchObject({
        StaticRoutes: [
          { Destination: '0.0.0.0/0', RouteType: 1 },
          { Destination: '::/0', RouteType: 1 },
        ],
        DisableGatewayService: true,
      });
      expect(a.reply.Gateway).toBeUndefined();
      expect(ipvlanOf(endpointLinkName(a.endpointId))).toMatchObject({ kind: 'ipvlan', mode: 'l3', flag: 'bridge' });
      const ca = lab.container('l3a', a.reply, { ipv4: '10.96.1.5/24', ipv6: 'fd00:96:1::5/64' });
      const cb = lab.container('l3b', b.reply, { ipv4: '10.96.2.5/24' });
      expect(pings(ca, '10.96.2.5')).toBe(true);
      expect(pings(cb, '192.168.96.1')).toBe(true);
      expect(pings(ca, '2001:db8:96::1')).toBe(true);
      expect(pings(router, '10.96.1.5')).toBe(true);
      expect(pings(null, '10.96.1.5')).toBe(true);
      expect(pings(ca, '10.96.1.250')).toBe(true);
      // An l2 network cannot join them: the kernel keeps one mode per parent.
      const l2 = await createNetwork(plugin, id(), { parent: uplink, ipvlan_mode: 'l2' }, subnet(3));
      expect(l2.json.Err).toContain(
        `(ipvlan_mode=l3 ipvlan_flag=bridge): the kernel keeps one ipvlan mode and flag per parent`,
      );
      for (const ns of [ca, cb]) ip('netns', 'del', ns);
      for (const network of [one, two]) await plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: network });
    });

    it("l3s: the same routing, through the host's netfilter", async () => {
      const [one, two] = [id(), id()];
      await createNetwork(plugin, one, { parent: uplink, ipvlan_mode: 'l3s' }, subnet(1));
      await createNetwork(plugin, two, { parent: uplink, ipvlan_mode: 'l3s' }, subnet(2));
      const a = await attach(plugin, one, { ipv4: '10.96.1.6/24' });
      const b = await attach(plugin, two, { ipv4: '10.96.2.6/24' });
      expect(ipvlanOf(endpointLinkName(a.endpointId))).toMatchObject({ kind: 'ipvlan', mode: 'l3s' });
      const ca = lab.container('l3sa', a.reply, { ipv4: '10.96.1.6/24' });
      const cb = lab.container('l3sb', b.reply, { ipv4: '10.96.2.6/24' });
      expect(pings(ca, '10.96.2.6')).toBe(true);
      expect(pings(router, '10.96.2.6')).toBe(true);
      for (const ns of [ca, cb]) ip('netns', 'del', ns);
      for (const network of [one, two]) await plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: network });
    });
  });
});
