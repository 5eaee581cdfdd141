// The network driver against the real kernel, in a private network namespace, through the HTTP API.
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { endpointLinkName } from '../../../src/driver/endpoint-naming';
import { internalParentName } from '../../../src/driver/parents';
import {
  assertPrivateNetns,
  deleteLink,
  deleteLinksByPrefix,
  ip,
  link,
  linkNames,
  uniqueName,
  vethPair,
} from '../../helpers/net';
import { startPlugin, type TestPlugin } from '../../helpers/plugin';
import { CLI } from '../../helpers/serve';
import { runKernelProbe } from '../../../src/inspect/doctor/kernel-probe';

const id = () => randomBytes(32).toString('hex');

function createNetwork(
  plugin: TestPlugin,
  networkId: string,
  generic: Record<string, unknown>,
  extra: Record<string, unknown> = {},
) {
  return plugin.call('NetworkDriver.CreateNetwork', {
    NetworkID: networkId,
    Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': generic, ...extra },
    IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: '10.80.0.0/24', Gateway: '10.80.0.1/24' }],
    IPv6Data: [],
  });
}

async function attach(
  plugin: TestPlugin,
  networkId: string,
  endpointId = id(),
  address = '10.80.0.5/24',
  mac = '02:42:0a:50:00:05',
) {
  const created = await plugin.call('NetworkDriver.CreateEndpoint', {
    NetworkID: networkId,
    EndpointID: endpointId,
    Interface: { Address: address, AddressIPv6: '', MacAddress: mac },
    Options: {},
  });
  const joined = await plugin.call('NetworkDriver.Join', {
    NetworkID: networkId,
    EndpointID: endpointId,
    SandboxKey: '/var/run/docker/netns/x',
    Options: {},
  });
  return { endpointId, created, joined };
}

function pluginLinks(): string[] {
  return linkNames().filter((name) => name.startsWith('tsmv'));
}

describe('network driver on the real kernel', () => {
  let plugin: TestPlugin;
  let parent: string;

  beforeAll(() => assertPrivateNetns());
  beforeEach(async () => {
    parent = uniqueName('par');
    vethPair(parent);
    plugin = await startPlugin();
  });
  afterEach(async () => {
    await plugin.destroy();
    deleteLink(parent);
    deleteLinksByPrefix('tsmv');
  });

  it('creates the endpoint link on the parent at Join, with the MAC, mode and name Docker needs, and deletes it at DeleteEndpoint', async () => {
    const networkId = id();
    expect((await createNetwork(plugin, networkId, { parent })).status).toBe(200);
    expect(pluginLinks()).toEqual([]); // nothing is created before a container joins

    const { endpointId, created, joined } = await attach(plugin, networkId);
    expect(created).toEqual({ status: 200, json: {} }); // Docker gave the MAC: nothing to fill in
    const name = endpointLinkName(endpointId);
    expect(name.length).toBeLessThanOrEqual(15);
    expect(joined.json).toEqual({
      InterfaceName: { SrcName: name, DstPrefix: 'eth' },
      Gateway: '10.80.0.1',
      StaticRoutes: [],
      DisableGatewayService: false,
    });
    const made = link(name);
    expect(made).toMatchObject({ link: parent, address: '02:42:0a:50:00:05', ifalias: 'tsmacvlan:endpoint' });
    expect(made?.linkinfo).toMatchObject({ info_kind: 'macvlan', info_data: { mode: 'bridge' } });

    expect((await plugin.call('NetworkDriver.Leave', { NetworkID: networkId, EndpointID: endpointId })).status).toBe(
      200,
    );
    expect(
      (await plugin.call('NetworkDriver.DeleteEndpoint', { NetworkID: networkId, EndpointID: endpointId })).status,
    ).toBe(200);
    await plugin.driver.settled(); // the kernel's delete finishes off the event loop, after the answer
    expect(link(name)).toBeUndefined();
    expect((await plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: networkId })).status).toBe(200);
    expect(link(parent)).toBeDefined(); // a parent the plugin did not create is never removed
  });

  it.each(['bridge', 'private', 'vepa', 'passthru'])('creates %s-mode links', async (mode) => {
    const networkId = id();
    expect((await createNetwork(plugin, networkId, { parent, macvlan_mode: mode })).status).toBe(200);
    const { endpointId, joined } = await attach(plugin, networkId);
    expect(joined.status).toBe(200);
    expect(link(endpointLinkName(endpointId))?.linkinfo?.info_data?.mode).toBe(mode);
  });

  it('creates source-mode links that accept only the listed MACs', async () => {
    const networkId = id();
    const res = await createNetwork(plugin, networkId, {
      parent,
      macvlan_mode: 'source',
      macvlan_source: '02:00:00:00:00:01,02:00:00:00:00:02',
    });
    expect(res.status).toBe(200);
    const { endpointId } = await attach(plugin, networkId);
    const data = link(endpointLinkName(endpointId))?.linkinfo?.info_data as {
      mode: string;
      macaddr_count?: number;
      macaddr_data?: string[];
    };
    expect(data.mode).toBe('source');
    expect(data.macaddr_count ?? data.macaddr_data?.length).toBe(2);
  });

  it("gives endpoints the network MTU, and refuses an MTU above the parent's", async () => {
    ip('link', 'set', parent, 'mtu', '1400');
    const networkId = id();
    const tooBig = await createNetwork(plugin, id(), { parent, mtu: '1500' });
    expect(tooBig.status).toBe(500);
    expect(tooBig.json.Err).toBe(`mtu 1500 is larger than the MTU of parent '${parent}' (1400); use at most 1400`);
    expect((await createNetwork(plugin, networkId, { parent, mtu: '1300' })).status).toBe(200);
    const { endpointId } = await attach(plugin, networkId);
    expect(link(endpointLinkName(endpointId))?.mtu).toBe(1300);
  });

  it('fills in a stable locally administered MAC when Docker gives none', async () => {
    const networkId = id();
    await createNetwork(plugin, networkId, { parent });
    const { created } = await attach(plugin, networkId, id(), '10.80.0.9/24', '');
    expect(created.json).toEqual({ Interface: { MacAddress: '02:42:0a:50:00:09' } });
  });

  it('lets several networks share a parent, but not with passthru, which also admits one endpoint', async () => {
    expect((await createNetwork(plugin, id(), { parent })).status).toBe(200);
    expect((await createNetwork(plugin, id(), { parent, macvlan_mode: 'private' })).status).toBe(200);
    const refused = await createNetwork(plugin, id(), { parent, macvlan_mode: 'passthru' });
    expect(refused.json.Err).toBe(
      `macvlan_mode=passthru needs a parent of its own, but '${parent}' is used by 2 other network(s)`,
    );

    const other = uniqueName('par');
    vethPair(other);
    try {
      const passthru = id();
      expect((await createNetwork(plugin, passthru, { parent: other, macvlan_mode: 'passthru' })).status).toBe(200);
      expect((await createNetwork(plugin, id(), { parent: other })).json.Err).toMatch(
        /in passthru mode, which cannot share its parent/,
      );
      expect((await attach(plugin, passthru)).joined.status).toBe(200);
      const second = await attach(plugin, passthru, id(), '10.80.0.6/24', '02:42:0a:50:00:06');
      expect(second.created.status).toBe(500);
      expect(second.created.json.Err).toMatch(
        /passthru, which gives parent '.*' to a single container, and one is attached already/,
      );
    } finally {
      ip('link', 'del', other);
    }
  });

  it('makes a parent of its own for a network without one, internal, and removes it with the network', async () => {
    const networkId = id();
    const res = await createNetwork(plugin, networkId, {}, { 'com.docker.network.internal': true });
    expect(res.status).toBe(200);
    const own = internalParentName(networkId);
    expect(link(own)).toMatchObject({ ifalias: 'tsmacvlan:internal' });
    const { joined, endpointId } = await attach(plugin, networkId);
    expect(joined.json).toEqual({
      InterfaceName: { SrcName: endpointLinkName(endpointId), DstPrefix: 'eth' },
      StaticRoutes: [],
      DisableGatewayService: true,
    });
    expect(link(endpointLinkName(endpointId))?.link).toBe(own);
    await plugin.call('NetworkDriver.DeleteEndpoint', { NetworkID: networkId, EndpointID: endpointId });
    await plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: networkId });
    await plugin.driver.settled();
    expect(pluginLinks()).toEqual([]);
  });

  it.each([
    [
      { parnet: 'eth1' },
      "unknown option 'parnet'; tsmacvlan accepts: parent, macvlan_mode, ipvlan_mode, ipvlan_flag, mtu, macvlan_source, host_access, vlan_protocol, dhcp, dhcp_timeout",
    ],
    [
      { parent: 'lo' },
      "parent 'lo' is the loopback interface; macvlan and ipvlan need an Ethernet interface such as eth1",
    ],
    [
      { parent: 'nosuch0' },
      "parent 'nosuch0' does not exist; name an interface listed by 'ip link', or <interface>.<vlan id> for a VLAN",
    ],
    [
      { parent: 'averyveryverylongname' },
      "parent 'averyveryverylongname' is longer than Linux's 15-character limit for interface names",
    ],
    [
      { parent: 'eth0:10' },
      "parent 'eth0:10' is not a valid interface name (no spaces, '/', ':' or NUL); a VLAN sub-interface is written <interface>.<vlan id>, e.g. eth0.10",
    ],
    [
      { parent: '$(reboot)' },
      "parent '$(reboot)' does not exist; name an interface listed by 'ip link', or <interface>.<vlan id> for a VLAN",
    ],
    [
      { parent: 'x', macvlan_mode: 'bridged' },
      "macvlan_mode 'bridged' is not a macvlan mode; use one of: bridge, private, vepa, passthru, source",
    ],
    [{ parent: 'x', mtu: 'big' }, "mtu 'big' is not valid; give a whole number from 68 up to the parent's MTU"],
    [
      { parent: 'x', macvlan_mode: 'source' },
      'macvlan_mode=source needs macvlan_source=<mac>[,<mac>...], the source MACs the network accepts',
    ],
    [
      { parent: 'x', macvlan_source: '02:00:00:00:00:01' },
      'macvlan_source only applies with macvlan_mode=source (got macvlan_mode=bridge)',
    ],
  ])('refuses %j with a clear error and creates nothing', async (generic, message) => {
    const before = linkNames();
    const res = await createNetwork(plugin, id(), generic);
    expect(res).toEqual({ status: 500, json: { Err: message, Error: message } });
    expect(linkNames()).toEqual(before);
    expect(plugin.driver.listNetworks()).toEqual([]);
  });

  it("tolerates Docker's own com.docker.network.* keys among the driver options", async () => {
    expect((await createNetwork(plugin, id(), { parent, 'com.docker.network.bridge.name': 'x' })).status).toBe(200);
  });

  it("takes Docker's --opt com.docker.network.driver.mtu as the network MTU, checked as -o mtu is", async () => {
    const DOCKER_MTU = 'com.docker.network.driver.mtu';
    ip('link', 'set', parent, 'mtu', '1400');
    const tooBig = await createNetwork(plugin, id(), { parent, [DOCKER_MTU]: '1500' });
    expect(tooBig.json.Err).toBe(`mtu 1500 is larger than the MTU of parent '${parent}' (1400); use at most 1400`);
    const disagree = await createNetwork(plugin, id(), { parent, [DOCKER_MTU]: '1300', mtu: '1200' });
    expect(disagree.json.Err).toBe(
      `mtu=1200 and ${DOCKER_MTU}=1300 disagree; give the network's MTU once (either option)`,
    );
    const networkId = id();
    expect((await createNetwork(plugin, networkId, { parent, [DOCKER_MTU]: '1300' })).status).toBe(200);
    const { endpointId } = await attach(plugin, networkId);
    expect(link(endpointLinkName(endpointId))?.mtu).toBe(1300);
  });

  it('a VLAN parent: made where the kernel has 802.1q (as the doctor probes it), explained where not; nothing left', async () => {
    const probe = await runKernelProbe(CLI);
    if ('error' in probe) throw new Error(`the doctor's kernel probe failed: ${probe.error}`);
    const networkId = id();
    const res = await createNetwork(plugin, networkId, { parent: `${parent}.10` });
    if (probe.vlan?.ok) {
      expect(res.status).toBe(200);
      expect(link(`${parent}.10`)?.linkinfo).toMatchObject({ info_kind: 'vlan', info_data: { id: 10 } });
      await plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: networkId });
      await plugin.driver.settled();
      expect(link(`${parent}.10`)).toBeUndefined();
    } else {
      expect(res.status).toBe(500);
      expect(res.json.Err).toBe(
        `cannot create VLAN sub-interface '${parent}.10': this kernel has no 802.1q support; load it with 'modprobe 8021q'`,
      );
    }
    expect(pluginLinks()).toEqual([]);
  });

  it('keeps networks and endpoints across a restart: a container can join after it', async () => {
    const networkId = id();
    await createNetwork(plugin, networkId, { parent, macvlan_mode: 'private' });
    const endpointId = id();
    await plugin.call('NetworkDriver.CreateEndpoint', {
      NetworkID: networkId,
      EndpointID: endpointId,
      Interface: { Address: '10.80.0.7/24', MacAddress: '02:42:0a:50:00:07' },
    });
    plugin = await plugin.restart();
    const joined = await plugin.call('NetworkDriver.Join', { NetworkID: networkId, EndpointID: endpointId });
    expect(joined.status).toBe(200);
    expect(link(endpointLinkName(endpointId))).toMatchObject({
      address: '02:42:0a:50:00:07',
      linkinfo: { info_data: { mode: 'private' } },
    });
  });

  it('re-creates its own internal parent at start when it is gone (as after a reboot)', async () => {
    const networkId = id();
    await createNetwork(plugin, networkId, {});
    await plugin.close();
    ip('link', 'del', internalParentName(networkId));
    plugin = await startPlugin(plugin.stateDir);
    expect(link(internalParentName(networkId))).toMatchObject({ ifalias: 'tsmacvlan:internal' });
  });

  it('answers Leave, DeleteEndpoint and DeleteNetwork for unknown ids with success', async () => {
    for (const method of ['Leave', 'DeleteEndpoint']) {
      expect((await plugin.call(`NetworkDriver.${method}`, { NetworkID: id(), EndpointID: id() })).status).toBe(200);
    }
    expect((await plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: id() })).status).toBe(200);
  });

  it('fails a Join whose parent has vanished with a clear error, and leaves no link', async () => {
    const networkId = id();
    await createNetwork(plugin, networkId, { parent });
    ip('link', 'del', parent);
    const { joined } = await attach(plugin, networkId);
    expect(joined.json.Err).toBe(
      `parent '${parent}' of network ${networkId.slice(0, 12)} no longer exists; bring it back or recreate the network`,
    );
    expect(pluginLinks()).toEqual([]);
    vethPair(parent); // for afterEach
  });

  it('replaces a link left by an interrupted Join of the same endpoint', async () => {
    const networkId = id();
    await createNetwork(plugin, networkId, { parent });
    const { endpointId } = await attach(plugin, networkId);
    const again = await plugin.call('NetworkDriver.Join', { NetworkID: networkId, EndpointID: endpointId });
    expect(again.status).toBe(200);
    expect(pluginLinks()).toEqual([endpointLinkName(endpointId)]);
  });

  it('joins 50 endpoints in parallel, each with its own link', async () => {
    const networkId = id();
    await createNetwork(plugin, networkId, { parent });
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        attach(
          plugin,
          networkId,
          id(),
          `10.80.0.${i + 10}/24`,
          `02:42:0a:50:00:${(i + 10).toString(16).padStart(2, '0')}`,
        ),
      ),
    );
    expect(results.every((r) => r.joined.status === 200)).toBe(true);
    expect(pluginLinks()).toHaveLength(50);
    await Promise.all(
      results.map((r) =>
        plugin.call('NetworkDriver.DeleteEndpoint', { NetworkID: networkId, EndpointID: r.endpointId }),
      ),
    );
    await plugin.driver.settled();
    expect(pluginLinks()).toEqual([]);
  });

  it('takes requests for one endpoint one at a time: duplicates sent together answer alike, and nothing tangles', async () => {
    const networkId = id();
    await createNetwork(plugin, networkId, { parent });
    const endpointId = id();
    const create = { NetworkID: networkId, EndpointID: endpointId, Interface: { Address: '10.80.0.7/24' } };
    const endpoint = { NetworkID: networkId, EndpointID: endpointId };
    const thrice = async (method: string, body: object) => Promise.all([1, 2, 3].map(() => plugin.call(method, body)));
    const created = await thrice('NetworkDriver.CreateEndpoint', create);
    expect(created.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(new Set(created.map((r) => r.json.Interface?.MacAddress)).size).toBe(1); // one MAC, the same for all
    expect((await thrice('NetworkDriver.Join', endpoint)).map((r) => r.status)).toEqual([200, 200, 200]);
    expect(pluginLinks()).toEqual([endpointLinkName(endpointId)]);
    // The same id with other settings is refused and changes nothing.
    const other = await plugin.call('NetworkDriver.CreateEndpoint', {
      ...create,
      Interface: { Address: '10.80.0.8/24' },
    });
    expect(other.status).toBe(500);
    expect(other.json.Err).toMatch(/already exists on network .* with other settings/);
    // Join, DeleteEndpoint and CreateEndpoint together run in the order they came.
    const mixed = await Promise.all([
      plugin.call('NetworkDriver.Join', endpoint),
      plugin.call('NetworkDriver.DeleteEndpoint', endpoint),
      plugin.call('NetworkDriver.CreateEndpoint', create),
    ]);
    expect(mixed.map((r) => r.status)).toEqual([200, 200, 200]);
    expect((await thrice('NetworkDriver.DeleteEndpoint', endpoint)).map((r) => r.status)).toEqual([200, 200, 200]);
    await plugin.driver.settled();
    expect(pluginLinks()).toEqual([]);
    expect(plugin.driver.listEndpoints()).toEqual([]);
  });

  it('creates and deletes a network once when the same request comes several times together', async () => {
    for (const generic of [{ parent }, {}]) {
      const networkId = id();
      const created = await Promise.all([1, 2, 3].map(() => createNetwork(plugin, networkId, generic)));
      expect(created.map((r) => r.status)).toEqual([200, 200, 200]);
      expect(plugin.driver.listNetworks().map((n) => n.id)).toEqual([networkId]);
      if (!('parent' in generic)) expect(linkNames()).toContain(internalParentName(networkId));
      const endpointId = (await attach(plugin, networkId)).endpointId;
      expect(pluginLinks()).toContain(endpointLinkName(endpointId));
      const deleted = await Promise.all(
        [1, 2, 3].map(() => plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: networkId })),
      );
      expect(deleted.map((r) => r.status)).toEqual([200, 200, 200]);
      await plugin.driver.settled();
      expect(pluginLinks()).toEqual([]);
      expect(plugin.driver.listNetworks()).toEqual([]);
    }
  });
});

describe('request validation', () => {
  let plugin: TestPlugin;
  beforeAll(async () => {
    assertPrivateNetns();
    plugin = await startPlugin();
  });
  afterAll(() => plugin.destroy());

  it.each([
    ['NetworkDriver.CreateNetwork', '{', 400, /^invalid NetworkDriver.CreateNetwork request: body is not valid JSON/],
    ['NetworkDriver.CreateNetwork', {}, 400, /must have required property 'NetworkID'/],
    ['NetworkDriver.CreateNetwork', { NetworkID: 7 }, 400, /NetworkID must be string/],
    ['NetworkDriver.Join', { NetworkID: 'abc', EndpointID: '../../etc/passwd' }, 400, /EndpointID must match pattern/],
    ['NetworkDriver.Join', { NetworkID: 'abc', EndpointID: 'def' }, 500, /network abc is not known to tsmacvlan/],
    ['NetworkDriver.Nope', {}, 404, /does not implement POST \/NetworkDriver.Nope/],
  ])('%s %j → %i with Err', async (method, body, status, message) => {
    const res = await plugin.call(method, body);
    expect(res.status).toBe(status);
    expect(res.json.Err).toMatch(message);
    expect(res.json.Error).toBe(res.json.Err);
  });
});
