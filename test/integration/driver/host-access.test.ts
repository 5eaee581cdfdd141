// host_access: the shim link, its address and its routes, against the real kernel.
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { NetworkDriver } from '../../../src/driver/driver';
import { endpointLinkName } from '../../../src/driver/endpoint-naming';
import { shimName } from '../../../src/driver/host-access';
import { Links } from '../../../src/kernel/links';
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
import { stateGroup } from '../../../src/state/instance';

const id = () => randomBytes(32).toString('hex');

function routes(): string[] {
  return ip('-4', 'route', 'show').trim().split('\n').filter(Boolean);
}

function createNetwork(
  plugin: TestPlugin,
  networkId: string,
  generic: Record<string, string>,
  aux: Record<string, string> = { host: '10.70.0.250/24' },
) {
  return plugin.call('NetworkDriver.CreateNetwork', {
    NetworkID: networkId,
    Options: { 'com.docker.network.generic': generic },
    IPv4Data: [{ Pool: '10.70.0.0/24', Gateway: '10.70.0.1/24', AuxAddresses: aux }],
  });
}

describe('host_access', () => {
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

  it('makes a shim on the parent with the host address, routes each container through it, and removes it all', async () => {
    const networkId = id();
    expect((await createNetwork(plugin, networkId, { parent, host_access: '10.70.0.250' })).status).toBe(200);
    const shim = shimName(networkId);
    expect(link(shim)).toMatchObject({
      link: parent,
      ifalias: 'tsmacvlan:shim',
      linkinfo: { info_data: { mode: 'bridge' } },
    });
    expect(ip('-4', 'addr', 'show', 'dev', shim)).toContain('inet 10.70.0.250/32');

    const endpointId = id();
    await plugin.call('NetworkDriver.CreateEndpoint', {
      NetworkID: networkId,
      EndpointID: endpointId,
      Interface: { Address: '10.70.0.9/24', MacAddress: '02:42:0a:46:00:09' },
    });
    await plugin.call('NetworkDriver.Join', { NetworkID: networkId, EndpointID: endpointId });
    expect(routes()).toContain(`10.70.0.9 dev ${shim} proto static scope link src 10.70.0.250 `.trim());

    await plugin.call('NetworkDriver.DeleteEndpoint', { NetworkID: networkId, EndpointID: endpointId });
    expect(routes().filter((r) => r.startsWith('10.70.0.9 '))).toEqual([]);
    await plugin.driver.settled();
    expect(link(endpointLinkName(endpointId))).toBeUndefined();

    await plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: networkId });
    expect(link(shim)).toBeUndefined();
    expect(routes().filter((r) => r.includes('10.70.0.'))).toEqual([]);
  });

  it('watches link events only while a host_access network exists (each event costs CPU)', async () => {
    const watching = () =>
      (plugin.driver as unknown as { upkeep: { stopWatching?: unknown } }).upkeep.stopWatching !== undefined;
    const [plain, withAccess] = [id(), id()];
    await createNetwork(plugin, plain, { parent });
    expect(watching()).toBe(false);
    await createNetwork(plugin, withAccess, { parent, host_access: '10.70.0.250' });
    expect(watching()).toBe(true);
    await plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: withAccess });
    expect(watching()).toBe(false);
  });

  it.each([
    [
      { host_access: '10.70.0.250', macvlan_mode: 'private' },
      undefined,
      "host_access needs macvlan_mode=bridge: in private mode the parent's macvlans do not talk to each other directly, so the host's shim could not reach the containers",
    ],
    [
      { host_access: '10.71.0.250' },
      undefined,
      "host_access=10.71.0.250 is not in the network's subnet 10.70.0.0/24; give an address of that subnet",
    ],
    [
      { host_access: '10.70.0.1' },
      { gw: '10.70.0.1/24' },
      "host_access=10.70.0.1 is the network's gateway; give the host an address of its own",
    ],
    [
      { host_access: '10.70.0.251' },
      undefined,
      "host_access=10.70.0.251 must be kept from containers: add --aux-address host=10.70.0.251 to 'docker network create'",
    ],
    [
      { host_access: 'fd00::1' },
      undefined,
      "host_access 'fd00::1' is not an IPv4 address; give the host's address on the network, e.g. host_access=10.0.10.250",
    ],
  ])('refuses %j with a clear error and makes no shim', async (generic, aux, message) => {
    const before = linkNames();
    const res = await createNetwork(plugin, id(), { parent, ...generic }, aux);
    expect(res.json.Err).toBe(message);
    expect(linkNames()).toEqual(before);
  });

  it('re-creates the shim and its routes when the parent is deleted and comes back, and at start', async () => {
    const networkId = id();
    await createNetwork(plugin, networkId, { parent, host_access: '10.70.0.250' });
    const endpointId = id();
    await plugin.call('NetworkDriver.CreateEndpoint', {
      NetworkID: networkId,
      EndpointID: endpointId,
      Interface: { Address: '10.70.0.9/24', MacAddress: '02:42:0a:46:00:09' },
    });
    await plugin.call('NetworkDriver.Join', { NetworkID: networkId, EndpointID: endpointId });
    const shim = shimName(networkId);

    // The daemon watches link events while a host_access network exists; here a second driver on the same state does.
    await plugin.close();
    const links = new Links(stateGroup(plugin.stateDir));
    const watched = new NetworkDriver(links, plugin.stateDir, pino({ level: 'silent' }));
    await watched.reconcile();
    try {
      deleteLink(parent); // takes the shim and its routes with it
      expect(link(shim)).toBeUndefined();
      vethPair(parent);
      // "Within moments" (README): a generous deadline, as the machine may be busy; it ends as soon as the route is back.
      const deadline = Date.now() + 15_000;
      while (!routes().some((r) => r.startsWith(`10.70.0.9 dev ${shim}`)) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      expect(routes()).toContain(`10.70.0.9 dev ${shim} proto static scope link src 10.70.0.250`);
      expect(ip('-4', 'addr', 'show', 'dev', shim)).toContain('inet 10.70.0.250/32');
    } finally {
      await watched.close();
      links.close();
    }

    deleteLink(shim);
    plugin = await startPlugin(plugin.stateDir);
    expect(link(shim)?.operstate).not.toBe('DOWN');
    expect(routes()).toContain(`10.70.0.9 dev ${shim} proto static scope link src 10.70.0.250`);
  });
});
