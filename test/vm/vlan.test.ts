// 802.1q parents, under a kernel that has 8021q (run by test/vm/vmrun.sh: this machine's kernel has none).
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { endpointLinkName } from '../../src/driver/endpoint-naming';
import { deleteLink, ip, link, linkNames, vethPair } from '../helpers/net';
import { startPlugin, type TestPlugin } from '../helpers/plugin';

const id = () => randomBytes(32).toString('hex');

function createNetwork(plugin: TestPlugin, networkId: string, parent: string) {
  return plugin.call('NetworkDriver.CreateNetwork', {
    NetworkID: networkId,
    Options: { 'com.docker.network.generic': { parent } },
    IPv4Data: [{ Pool: '10.90.0.0/24', Gateway: '10.90.0.1/24' }],
  });
}

async function attach(plugin: TestPlugin, networkId: string) {
  const endpointId = id();
  await plugin.call('NetworkDriver.CreateEndpoint', {
    NetworkID: networkId,
    EndpointID: endpointId,
    Interface: { Address: '10.90.0.5/24' },
  });
  const joined = await plugin.call('NetworkDriver.Join', { NetworkID: networkId, EndpointID: endpointId });
  expect(joined.status).toBe(200);
  return endpointId;
}

function vlan(name: string) {
  const l = link(name);
  return (
    l && {
      parent: l.link,
      id: (l.linkinfo?.info_data as { id?: number } | undefined)?.id,
      up: l.operstate !== 'DOWN',
      alias: l.ifalias,
    }
  );
}

describe('VLAN parents (802.1q)', () => {
  let plugin: TestPlugin;

  beforeAll(() => {
    if (!existsSync('/sys/module/8021q'))
      throw new Error('this kernel has no 802.1q: run the vm suite with test/vm/vmrun.sh');
  });
  beforeEach(async () => {
    vethPair('d0');
    plugin = await startPlugin();
  });
  afterEach(async () => {
    await plugin.destroy();
    deleteLink('d0');
  });

  it('creates d0.10 on d0 and brings it up, hangs endpoints on it, and removes it with the network', async () => {
    const networkId = id();
    expect((await createNetwork(plugin, networkId, 'd0.10')).status).toBe(200);
    expect(vlan('d0.10')).toEqual({ parent: 'd0', id: 10, up: true, alias: 'tsmacvlan:vlan' });
    const endpoints = [await attach(plugin, networkId), await attach(plugin, networkId)];
    for (const endpointId of endpoints) expect(link(endpointLinkName(endpointId))?.link).toBe('d0.10');
    for (const endpointId of endpoints)
      await plugin.call('NetworkDriver.DeleteEndpoint', { NetworkID: networkId, EndpointID: endpointId });
    await plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: networkId });
    expect(link('d0.10')).toBeUndefined();
    expect(link('d0')).toBeDefined();
  });

  it('keeps a VLAN it created while another network uses it, and removes it with the last', async () => {
    const [first, second] = [id(), id()];
    await createNetwork(plugin, first, 'd0.20');
    await createNetwork(plugin, second, 'd0.20');
    await plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: first });
    expect(vlan('d0.20')?.id).toBe(20);
    await plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: second });
    expect(link('d0.20')).toBeUndefined();
  });

  it('never removes a VLAN that existed before', async () => {
    ip('link', 'add', 'link', 'd0', 'name', 'd0.30', 'type', 'vlan', 'id', '30');
    const networkId = id();
    await createNetwork(plugin, networkId, 'd0.30');
    await attach(plugin, networkId);
    await plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: networkId });
    expect(vlan('d0.30')?.id).toBe(30);
    deleteLink('d0.30');
  });

  it('re-creates a VLAN it owns that vanished while it was down, before answering the first request', async () => {
    const networkId = id();
    await createNetwork(plugin, networkId, 'd0.10');
    await plugin.close();
    ip('link', 'del', 'd0.10');
    plugin = await startPlugin(plugin.stateDir);
    expect(vlan('d0.10')).toEqual({ parent: 'd0', id: 10, up: true, alias: 'tsmacvlan:vlan' });
    await attach(plugin, networkId);
  });

  it.each([
    [
      'd0:10',
      "parent 'd0:10' is not a valid interface name (no spaces, '/', ':' or NUL); a VLAN sub-interface is written <interface>.<vlan id>, e.g. eth0.10",
    ],
    [
      'd0.x',
      "parent 'd0.x' does not exist, and 'x' is not a VLAN id: write <interface>.<vlan id> with an id from 1 to 4094, e.g. eth0.10",
    ],
    [
      'd0.0',
      "parent 'd0.0' does not exist, and '0' is not a VLAN id: write <interface>.<vlan id> with an id from 1 to 4094, e.g. eth0.10",
    ],
    [
      'd0.4095',
      "parent 'd0.4095' does not exist, and '4095' is not a VLAN id: write <interface>.<vlan id> with an id from 1 to 4094, e.g. eth0.10",
    ],
    ['nosuch.10', "parent 'nosuch.10': interface 'nosuch' does not exist, so VLAN 10 cannot be created on it"],
    ['abcdefghijklm.10', "parent 'abcdefghijklm.10' is longer than Linux's 15-character limit for interface names"],
  ])('refuses parent %s with a clear error and creates no link', async (parent, message) => {
    const before = linkNames();
    const res = await createNetwork(plugin, id(), parent);
    expect(res.json.Err).toBe(message);
    expect(linkNames()).toEqual(before);
  });
});

describe('vlan_protocol', () => {
  let plugin: TestPlugin;
  beforeEach(async () => {
    vethPair('d1');
    plugin = await startPlugin();
  });
  afterEach(async () => {
    await plugin.destroy();
    deleteLink('d1');
  });

  it('creates an 802.1ad (QinQ outer tag) VLAN on request, and re-creates it with that protocol', async () => {
    const networkId = id();
    const res = await plugin.call('NetworkDriver.CreateNetwork', {
      NetworkID: networkId,
      Options: { 'com.docker.network.generic': { parent: 'd1.40', vlan_protocol: '802.1ad' } },
    });
    expect(res.status).toBe(200);
    expect(link('d1.40')?.linkinfo?.info_data).toMatchObject({ protocol: '802.1ad', id: 40 });
    await plugin.close();
    ip('link', 'del', 'd1.40');
    plugin = await startPlugin(plugin.stateDir);
    expect(link('d1.40')?.linkinfo?.info_data).toMatchObject({ protocol: '802.1ad', id: 40 });
  });

  it('refuses a protocol that does not match an existing VLAN', async () => {
    ip('link', 'add', 'link', 'd1', 'name', 'd1.50', 'type', 'vlan', 'id', '50');
    const res = await plugin.call('NetworkDriver.CreateNetwork', {
      NetworkID: id(),
      Options: { 'com.docker.network.generic': { parent: 'd1.50', vlan_protocol: '802.1ad' } },
    });
    expect(res.json.Err).toBe("parent 'd1.50' exists with protocol 802.1q, not vlan_protocol=802.1ad");
  });
});
