import { describe, expect, it } from 'vitest';
import { PluginError } from '../../../src/errors';
import { checkLinkName, ipData, parseNetworkOptions } from '../../../src/driver/network-options';

describe('parseNetworkOptions', () => {
  it('defaults to bridge mode and takes parent, mtu and source MACs', () => {
    expect(parseNetworkOptions({ parent: 'eth1' })).toEqual({ parent: 'eth1', mode: 'bridge' });
    expect(parseNetworkOptions({ parent: 'eth1', mtu: '1400', macvlan_mode: 'vepa' })).toEqual({
      parent: 'eth1',
      mode: 'vepa',
      mtu: 1400,
    });
    expect(
      parseNetworkOptions({ macvlan_mode: 'source', macvlan_source: '02:00:00:00:00:0A, 02:00:00:00:00:0b' }),
    ).toEqual({
      mode: 'source',
      sourceMacs: ['02:00:00:00:00:0a', '02:00:00:00:00:0b'],
    });
  });

  it('tolerates com.docker.network.* keys and refuses any other unknown key by name', () => {
    expect(parseNetworkOptions({ 'com.docker.network.bridge.name': 'x' })).toEqual({ mode: 'bridge' });
    expect(() => parseNetworkOptions({ macvlanmode: 'vepa' })).toThrow("unknown option 'macvlanmode'");
  });

  it("takes Docker's com.docker.network.driver.mtu as the network's MTU, alone or agreeing with -o mtu", () => {
    const DOCKER_MTU = 'com.docker.network.driver.mtu';
    expect(parseNetworkOptions({ [DOCKER_MTU]: '1400' })).toEqual({ mode: 'bridge', mtu: 1400 });
    expect(parseNetworkOptions({ [DOCKER_MTU]: '1400', mtu: '1400' })).toEqual({ mode: 'bridge', mtu: 1400 });
    expect(() => parseNetworkOptions({ [DOCKER_MTU]: '1400', mtu: '1300' })).toThrow(
      "mtu=1300 and com.docker.network.driver.mtu=1400 disagree; give the network's MTU once (either option)",
    );
    expect(() => parseNetworkOptions({ [DOCKER_MTU]: '9k' })).toThrow(
      "com.docker.network.driver.mtu '9k' is not valid; give a whole number from 68 up to the parent's MTU",
    );
  });

  it.each([
    [{ mtu: '0' }, "mtu '0' is not valid"],
    [{ mtu: '1e3' }, "mtu '1e3' is not valid"],
    [{ mtu: '-1' }, "mtu '-1' is not valid"],
    [{ parent: 7 }, "option 'parent' must be a string, got 7"],
    [
      { macvlan_mode: 'source', macvlan_source: '02:00:00:00:00' },
      "macvlan_source: '02:00:00:00:00' is not a MAC address",
    ],
  ])('refuses %j', (generic, message) => {
    expect(() => parseNetworkOptions(generic)).toThrow(PluginError);
    expect(() => parseNetworkOptions(generic)).toThrow(message);
  });
});

describe('checkLinkName', () => {
  it.each(['eth0', 'ens33.10', 'a', 'x'.repeat(15), 'br-lan_1'])('accepts %s', (name) =>
    expect(checkLinkName(name, 'parent')).toBe(name),
  );
  it.each(['', 'x'.repeat(16), 'a b', 'a/b', '..', '.', 'eth0:1', 'a\0b'])('refuses %j', (name) =>
    expect(() => checkLinkName(name, 'parent')).toThrow(PluginError),
  );
  it('counts bytes, as the kernel does', () =>
    expect(() => checkLinkName('é'.repeat(8), 'parent')).toThrow('15-character limit'));
});

describe('ipData', () => {
  it('turns the CIDR gateway Docker sends into a bare address', () => {
    expect(ipData({ Pool: '10.0.0.0/24', Gateway: '10.0.0.1/24' })).toEqual({
      pool: '10.0.0.0/24',
      gateway: '10.0.0.1',
    });
    expect(ipData({ Pool: 'fd00::/64' })).toEqual({ pool: 'fd00::/64' });
    expect(ipData(undefined)).toBeUndefined();
  });
});

describe('vlan_protocol', () => {
  it('takes 802.1q or 802.1ad for a VLAN parent', () => {
    expect(parseNetworkOptions({ parent: 'eth0.10', vlan_protocol: '802.1AD' })).toEqual({
      parent: 'eth0.10',
      mode: 'bridge',
      vlanProtocol: '802.1ad',
    });
  });
  it.each([
    [
      { parent: 'eth0.10', vlan_protocol: 'qinq' },
      "vlan_protocol 'qinq' is not a VLAN protocol; use 802.1q (the default) or 802.1ad (QinQ outer tag)",
    ],
    [
      { parent: 'eth0', vlan_protocol: '802.1ad' },
      'vlan_protocol applies to a VLAN parent written <interface>.<vlan id>, e.g. parent=eth0.10',
    ],
  ])('refuses %j', (generic, message) => expect(() => parseNetworkOptions(generic)).toThrow(message));
});
