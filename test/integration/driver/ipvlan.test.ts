// ipvlan networks on this machine's kernel, which has macvlan but (here) no ipvlan: the plugin's refusals to mix kinds
// and modes on a parent (its records and the kernel's links), and what a kernel without ipvlan says. The links
// themselves are tested in the VM (test/vm/ipvlan.test.ts).
import { randomBytes } from 'node:crypto';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { endpointLinkName } from '../../../src/driver/endpoint-naming';
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

const id = () => randomBytes(32).toString('hex');
const SUBNET = { Pool: '10.71.0.0/24', Gateway: '10.71.0.1/24' };

function kernelHasIpvlan(parent: string): boolean {
  try {
    ip('link', 'add', 'link', parent, 'name', `${parent}i`, 'type', 'ipvlan', 'mode', 'l2');
  } catch {
    return false;
  }
  ip('link', 'del', `${parent}i`);
  return true;
}

describe('ipvlan networks on this kernel', () => {
  let plugin: TestPlugin;
  let parent: string;
  const create = (generic: Record<string, string>, ipv4: unknown = SUBNET) =>
    plugin.call('NetworkDriver.CreateNetwork', {
      NetworkID: id(),
      Options: { 'com.docker.network.generic': { parent, ...generic } },
      IPv4Data: [ipv4],
    });
  const createAs = async (networkId: string, generic: Record<string, string>) =>
    plugin.call('NetworkDriver.CreateNetwork', {
      NetworkID: networkId,
      Options: { 'com.docker.network.generic': { parent, ...generic } },
      IPv4Data: [SUBNET],
    });

  beforeAll(() => assertPrivateNetns());
  beforeEach(async () => {
    parent = uniqueName('ivp');
    vethPair(parent);
    plugin = await startPlugin();
  });
  afterEach(async () => {
    await plugin.destroy();
    deleteLink(parent);
    deleteLinksByPrefix('tsmv');
  });

  it('refuses another kind, or another ipvlan mode or flag, on a parent its networks hold, naming them', async () => {
    const ipvlan = id();
    expect((await createAs(ipvlan, { ipvlan_mode: 'l2' })).status).toBe(200);
    const held = `parent '${parent}' is used by network(s) ${ipvlan.slice(0, 12)} (ipvlan_mode=l2 ipvlan_flag=bridge): `;
    expect((await create({})).json.Err).toBe(
      held + 'the kernel never puts macvlan and ipvlan links on one parent (it answers EBUSY)',
    );
    for (const other of [{ ipvlan_mode: 'l3' }, { ipvlan_mode: 'l2', ipvlan_flag: 'vepa' }] as Record<string, string>[])
      expect((await create(other)).json.Err).toBe(
        held +
          'the kernel keeps one ipvlan mode and flag per parent, and a new ipvlan with others would switch theirs; use ipvlan_mode=l2 ipvlan_flag=bridge or another parent',
      );
    // The same mode and flag share it.
    expect((await create({ ipvlan_mode: 'l2', ipvlan_flag: 'bridge' }, { Pool: '10.72.0.0/24' })).status).toBe(200);
    await plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: ipvlan });

    const macvlan = id();
    const other = uniqueName('ivq');
    vethPair(other);
    try {
      parent = other;
      expect((await createAs(macvlan, {})).status).toBe(200);
      expect((await create({ ipvlan_mode: 'l3s' })).json.Err).toBe(
        `parent '${other}' is used by network(s) ${macvlan.slice(0, 12)} (macvlan_mode=bridge): ` +
          'the kernel never puts ipvlan and macvlan links on one parent (it answers EBUSY)',
      );
    } finally {
      deleteLink(other);
    }
  });

  it("refuses a parent that carries another's macvlan, naming the link, and makes nothing", async () => {
    ip('link', 'add', 'link', parent, 'name', `${parent}m`, 'type', 'macvlan', 'mode', 'vepa');
    const before = linkNames();
    expect((await create({ ipvlan_mode: 'l2' })).json.Err).toBe(
      `parent '${parent}' carries macvlan link(s) ${parent}m (macvlan_mode=vepa): ` +
        'the kernel never puts ipvlan and macvlan links on one parent (it answers EBUSY)',
    );
    expect(linkNames()).toEqual(before);
    // A macvlan network may join it.
    expect((await create({ macvlan_mode: 'vepa' })).status).toBe(200);
  });

  it('records the kind; a kernel without ipvlan is named at Join, with the module to load', async () => {
    const supported = kernelHasIpvlan(parent);
    const networkId = id();
    expect((await createAs(networkId, { ipvlan_mode: 'l3' })).status).toBe(200);
    expect(plugin.driver.listNetworks()).toEqual([
      expect.objectContaining({ id: networkId, kind: 'ipvlan', mode: 'l3', flag: 'bridge' }),
    ]);
    const endpointId = id();
    const created = await plugin.call('NetworkDriver.CreateEndpoint', {
      NetworkID: networkId,
      EndpointID: endpointId,
      Interface: { Address: '10.71.0.5/24' },
    });
    expect(created.json).toEqual({}); // no MAC of its own to answer: an ipvlan has its parent's
    expect(plugin.driver.listEndpoints()[0]?.mac).toBe(link(parent)?.address);
    const joined = await plugin.call('NetworkDriver.Join', { NetworkID: networkId, EndpointID: endpointId });
    if (supported) expect(link(endpointLinkName(endpointId))?.linkinfo?.info_kind).toBe('ipvlan');
    else
      expect(joined.json.Err).toBe(
        `cannot create ipvlan links on '${parent}': this kernel has no ipvlan support; load it with 'modprobe ipvlan' ('tsmacvlan doctor' checks it)`,
      );
  });
});
