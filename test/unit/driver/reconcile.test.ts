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
});
