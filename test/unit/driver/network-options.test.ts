import { describe, expect, it } from 'vitest';
import { PluginError } from '../../../src/errors';
import { checkLinkName, ipData, networkRecordProblem, parseNetworkOptions } from '../../../src/driver/network-options';

describe('parseNetworkOptions', () => {
  it('defaults to macvlan bridge mode and takes parent, mtu and source MACs', () => {
    expect(parseNetworkOptions({ parent: 'eth1' })).toEqual({
      parent: 'eth1',
      link: { kind: 'macvlan', mode: 'bridge' },
    });
    expect(parseNetworkOptions({ parent: 'eth1', mtu: '1400', macvlan_mode: 'vepa' })).toEqual({
      parent: 'eth1',
      link: { kind: 'macvlan', mode: 'vepa' },
      mtu: 1400,
    });
    expect(
      parseNetworkOptions({ macvlan_mode: 'source', macvlan_source: '02:00:00:00:00:0A, 02:00:00:00:00:0b' }),
    ).toEqual({
      link: { kind: 'macvlan', mode: 'source', sourceMacs: ['02:00:00:00:00:0a', '02:00:00:00:00:0b'] },
    });
  });

  it("takes ipvlan_mode and ipvlan_flag, Docker's ipvlan names: the flag defaults to bridge", () => {
    expect(parseNetworkOptions({ parent: 'eth1', ipvlan_mode: 'l2' })).toEqual({
      parent: 'eth1',
      link: { kind: 'ipvlan', mode: 'l2', flag: 'bridge' },
    });
    for (const mode of ['l2', 'l3', 'l3s'])
      for (const flag of ['bridge', 'private', 'vepa'])
        expect(parseNetworkOptions({ ipvlan_mode: mode, ipvlan_flag: flag }).link).toEqual({
          kind: 'ipvlan',
          mode,
          flag,
        });
    expect(parseNetworkOptions({ ipvlan_mode: 'l3', host_access: '10.0.0.250' })).toMatchObject({
      hostAccess: '10.0.0.250',
    });
  });

  it('tolerates com.docker.network.* keys and refuses any other unknown key by name', () => {
    expect(parseNetworkOptions({ 'com.docker.network.bridge.name': 'x' })).toEqual({
      link: { kind: 'macvlan', mode: 'bridge' },
    });
    expect(() => parseNetworkOptions({ macvlanmode: 'vepa' })).toThrow("unknown option 'macvlanmode'");
  });

  it("takes Docker's com.docker.network.driver.mtu as the network's MTU, alone or agreeing with -o mtu", () => {
    const DOCKER_MTU = 'com.docker.network.driver.mtu';
    expect(parseNetworkOptions({ [DOCKER_MTU]: '1400' })).toEqual({
      link: { kind: 'macvlan', mode: 'bridge' },
      mtu: 1400,
    });
    expect(parseNetworkOptions({ [DOCKER_MTU]: '1400', mtu: '1400' })).toEqual({
      link: { kind: 'macvlan', mode: 'bridge' },
      mtu: 1400,
    });
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
    [
      { macvlan_mode: 'bridge', ipvlan_mode: 'l2' },
      "macvlan_mode and ipvlan_mode cannot both be given: a network's containers get either macvlans (a MAC each) or ipvlans (the parent's MAC); keep one",
    ],
    [{ ipvlan_mode: 'l4' }, "ipvlan_mode 'l4' is not an ipvlan mode; use one of: l2, l3, l3s"],
    [{ ipvlan_mode: 'L2' }, "ipvlan_mode 'L2' is not an ipvlan mode; use one of: l2, l3, l3s"],
    [
      { ipvlan_mode: 'l2', ipvlan_flag: 'passthru' },
      "ipvlan_flag 'passthru' is not an ipvlan flag; use one of: bridge, private, vepa",
    ],
    [{ ipvlan_flag: 'private' }, 'ipvlan_flag applies to ipvlan networks: add -o ipvlan_mode=l2 (or l3, l3s)'],
    [
      { macvlan_mode: 'vepa', ipvlan_flag: 'vepa' },
      'ipvlan_flag applies to ipvlan networks, not with macvlan_mode=vepa',
    ],
    [
      { ipvlan_mode: 'l2', macvlan_source: '02:00:00:00:00:0a' },
      'macvlan_source only applies with macvlan_mode=source (got ipvlan_mode=l2)',
    ],
    [{ ipvlan_mode: 'l2', macvlan_mode: 'passthru' }, 'macvlan_mode and ipvlan_mode cannot both be given'],
    [
      { ipvlan_mode: 'l2', ipvlan_flag: 'private', host_access: '10.0.0.250' },
      "host_access needs ipvlan_flag=bridge: with ipvlan_flag=private the parent's ipvlans do not talk to each other directly, so the host's shim could not reach the containers",
    ],
    [
      { macvlan_mode: 'vepa', host_access: '10.0.0.250' },
      "host_access needs macvlan_mode=bridge: in vepa mode the parent's macvlans do not talk to each other directly, so the host's shim could not reach the containers",
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
  it('turns the CIDR gateway and aux addresses Docker sends into bare addresses', () => {
    expect(ipData({ Pool: '10.0.0.0/24', Gateway: '10.0.0.1/24', AuxAddresses: { nas: '10.0.0.250/24' } })).toEqual({
      pool: '10.0.0.0/24',
      gateway: '10.0.0.1',
      aux: ['10.0.0.250'],
    });
    expect(ipData({ Pool: 'fd00::/64' })).toEqual({ pool: 'fd00::/64', aux: [] });
    expect(ipData(undefined)).toBeUndefined();
  });
});

describe('vlan_protocol', () => {
  it('takes 802.1q or 802.1ad for a VLAN parent', () => {
    expect(parseNetworkOptions({ parent: 'eth0.10', vlan_protocol: '802.1AD' })).toEqual({
      parent: 'eth0.10',
      link: { kind: 'macvlan', mode: 'bridge' },
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

describe('networkRecordProblem', () => {
  const base = { id: 'n1', parent: 'eth1', ownsParent: false, internal: false };
  it('checks each kind by its own modes (a record made before ipvlan has its kind from the format 3 upgrade)', () => {
    expect(networkRecordProblem({ ...base, kind: 'macvlan', mode: 'bridge' })).toBeUndefined();
    expect(networkRecordProblem({ ...base, kind: 'macvlan', mode: 'passthru' })).toBeUndefined();
    expect(networkRecordProblem({ ...base, kind: 'ipvlan', mode: 'l3s', flag: 'private' })).toBeUndefined();
    expect(networkRecordProblem({ ...base, kind: 'macvlan', mode: 'l2' })).toBe("mode 'l2' is not a macvlan mode");
    expect(networkRecordProblem({ ...base, kind: 'ipvlan', mode: 'bridge', flag: 'bridge' })).toBe(
      "mode 'bridge' is not an ipvlan mode",
    );
    expect(networkRecordProblem({ ...base, kind: 'ipvlan', mode: 'l2' })).toBe(
      "flag 'undefined' is not an ipvlan flag",
    );
    expect(networkRecordProblem({ ...base, kind: 'vxlan', mode: 'l2' })).toBe(
      "kind 'vxlan' is neither macvlan nor ipvlan",
    );
    expect(networkRecordProblem({ ...base, mode: 'bridge' })).toBe("kind 'undefined' is neither macvlan nor ipvlan");
  });
});
