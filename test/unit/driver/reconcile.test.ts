import { describe, expect, it } from 'vitest';
import { endpointLinkName } from '../../../src/driver/endpoint-naming';
import { describeRepair, planRepairs } from '../../../src/driver/reconcile';
import { N2, E2, networks, endpoints, G, healthy } from '../../helpers/state-fixtures';

describe('planRepairs', () => {
  it('rolls back records of creates never answered, and deletes the links they made', () => {
    const unansweredNetwork = { ...networks[1], unanswered: true as const };
    const unansweredEndpoint = { ...endpoints[1], unanswered: true as const };
    const repairs = planRepairs(
      healthy(),
      G,
      [networks[0], unansweredNetwork, networks[2]],
      [endpoints[0], unansweredEndpoint],
    );
    expect(repairs.map(describeRepair)).toEqual([
      `forget network ${N2}: its CreateNetwork was saved but never answered (tsmacvlan stopped first), so Docker does not know it`,
      `forget endpoint ${E2}: its CreateEndpoint was saved but never answered (tsmacvlan stopped first), so Docker does not know it`,
      `delete link ${endpointLinkName(E2)}: endpoint link that no network or endpoint of the state owns`,
      'delete link eth1.10: VLAN parent link that no network or endpoint of the state owns',
    ]);
    expect(planRepairs(healthy(), G, networks, endpoints)).toEqual([]);
  });

  it('deletes orphan children before their parents, ipvlans as macvlans', () => {
    const unansweredNetwork = { ...networks[1], unanswered: true as const };
    for (const kind of ['macvlan', 'ipvlan']) {
      // The parent first in the kernel's list: the plan still deletes the child on it first.
      const links = healthy()
        .map((l) => (l.name === endpointLinkName(E2) ? { ...l, kind } : l))
        .sort((a, b) => (a.name === 'eth1.10' ? -1 : b.name === 'eth1.10' ? 1 : 0));
      const deletes = planRepairs(links, G, [networks[0], unansweredNetwork, networks[2]], [endpoints[0]])
        .filter((r) => r.action === 'delete')
        .map((r) => (r.action === 'delete' ? r.link : ''));
      expect(deletes, kind).toEqual([endpointLinkName(E2), 'eth1.10']);
    }
  });
});
