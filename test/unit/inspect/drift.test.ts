import { describe, expect, it } from 'vitest';
import { endpointLinkName } from '../../../src/driver/endpoint-naming';
import { shimName } from '../../../src/driver/host-access';
import { instanceGroup } from '../../../src/kernel/marks';
import { findDrift } from '../../../src/inspect/drift';
import { N1, E1, E2, networks, endpoints, G, l, healthy } from '../../helpers/state-fixtures';

describe('findDrift', () => {
  it('finds none on a healthy host: a recorded endpoint whose link is absent is in its container, which is normal', () => {
    expect(findDrift({ networks, endpoints }, healthy(), G)).toEqual([]);
  });

  it("does not count links named like the plugin's without its group or alias, nor another instance's links", () => {
    const foreign = [
      l('tsmve0123456789', { kind: 'macvlan' }),
      l('tsmvi0123456789', { alias: 'someone else' }),
      l('tsmve7777777777', { kind: 'macvlan', alias: 'tsmacvlan:endpoint', group: instanceGroup('tsmacvlan-other') }),
    ];
    expect(findDrift({ networks, endpoints }, [...healthy(), ...foreign], G)).toEqual([]);
  });

  it('flags a missing parent once, naming its networks, with the right way back for a parent the plugin made and one it did not', () => {
    const host = healthy().filter((x) => x.name !== 'eth1' && x.name !== 'eth1.10' && x.name !== endpointLinkName(E2));
    const drift = findDrift({ networks: [...networks, { ...networks[0], id: '4'.repeat(64) }], endpoints }, host, G);
    expect(drift).toEqual([
      expect.objectContaining({
        kind: 'parent-missing',
        subject: 'eth1',
        fix: expect.stringContaining("bring 'eth1' back"),
      }),
      expect.objectContaining({
        kind: 'parent-missing',
        subject: 'eth1.10',
        message: expect.stringContaining('VLAN parent'),
        fix: expect.stringContaining('tsmacvlan gc'),
      }),
    ]);
    expect(drift[0].message).toBe(
      `the parent 'eth1' of network(s) ${'1'.repeat(12)}, ${'4'.repeat(12)} does not exist: containers cannot join; the links of its 1 endpoint(s) went with it`,
    );
  });

  it('flags what the plugin would delete at start (as gc would): its links no record owns, and its orphan VLANs', () => {
    const host = [
      ...healthy(),
      l('tsmve9999999999', { kind: 'macvlan', alias: 'tsmacvlan:endpoint', group: G }),
      l('tsmvi9999999999', { kind: 'dummy', alias: 'tsmacvlan:internal', group: G }),
      l('tsmvh9999999999', { kind: 'macvlan', alias: 'tsmacvlan:shim', group: G }),
      l('eth1.20', { kind: 'vlan', vlanId: 20, alias: 'tsmacvlan:vlan', group: G }),
      l('tsmve8888888888', { kind: 'macvlan', group: G }), // a crash before its alias
    ];
    const drift = findDrift({ networks, endpoints }, host, G);
    expect(drift.map((d) => [d.kind, d.subject])).toEqual([
      ['leaked-link', 'tsmve9999999999'],
      ['leaked-link', 'tsmvh9999999999'],
      ['leaked-link', 'tsmve8888888888'],
      ['leaked-link', 'tsmvi9999999999'],
      ['orphan-vlan', 'eth1.20'],
    ]);
    expect(drift[0]).toEqual({
      kind: 'leaked-link',
      subject: 'tsmve9999999999',
      message: "link 'tsmve9999999999' (tsmacvlan:endpoint) is the plugin's, but no record owns it",
      fix: "restart the plugin, or run 'tsmacvlan gc' while it is stopped ('tsmacvlan gc --dry-run' shows what it would do): it deletes it; or by hand: ip link del tsmve9999999999",
    });
    expect(drift[4]).toMatchObject({
      message: "VLAN 'eth1.20' (id 20) is the plugin's, but no network uses it",
      fix: expect.stringContaining('tsmacvlan gc'),
    });
  });

  it('flags links marked tsmacvlan:* by alias in no device group: no start of any instance removes them', () => {
    const host = [
      ...healthy(),
      l('stodd', { kind: 'macvlan', alias: 'tsmacvlan:endpoint' }),
      l('eth1.30', { kind: 'vlan', vlanId: 30, alias: 'tsmacvlan:vlan' }),
    ];
    const drift = findDrift({ networks, endpoints }, host, G);
    expect(drift).toEqual([
      {
        kind: 'leaked-link',
        subject: 'stodd',
        message:
          "link 'stodd' (tsmacvlan:endpoint) is marked as tsmacvlan's by its alias, in no instance's device group, but no record owns it",
        fix: "no tsmacvlan start removes it (it carries no instance's device group): ip link del stodd",
      },
      expect.objectContaining({ kind: 'orphan-vlan', subject: 'eth1.30' }),
    ]);
    // A recorded parent marked that way (made by a version before device groups) is in use, not drift.
    const old = healthy().map((x) => (x.name === 'eth1.10' ? { ...x, group: undefined } : x));
    expect(findDrift({ networks, endpoints }, old, G)).toEqual([]);
  });

  it('flags a host_access network without its shim (only while the parent is there), and an endpoint without its network', () => {
    const withShim = [{ ...networks[0], hostAccess: '10.1.0.250' }, networks[1], networks[2]];
    expect(findDrift({ networks: withShim, endpoints }, healthy(), G)).toEqual([
      expect.objectContaining({ kind: 'shim-missing', subject: shimName(N1) }),
    ]);
    expect(
      findDrift(
        { networks: withShim, endpoints },
        [...healthy(), l(shimName(N1), { alias: 'tsmacvlan:shim', group: G })],
        G,
      ),
    ).toEqual([]);
    expect(findDrift({ networks: networks.slice(1), endpoints }, healthy(), G)).toEqual([
      expect.objectContaining({
        kind: 'orphan-endpoint',
        subject: E1,
        fix: expect.stringContaining(`endpoints/${E1}.json`),
      }),
    ]);
  });
});
