// Records and links shared by the tests of status, drift and reconciliation.
import { endpointLinkName, type EndpointRecord } from '../../src/driver/endpoint-naming';
import type { NetworkRecord } from '../../src/driver/network-options';
import { instanceGroup } from '../../src/kernel/marks';
import { internalParentName } from '../../src/driver/parents';
import { type LinkInfo } from '../../src/kernel/link-info';

export const N1 = '1'.repeat(64);
export const N2 = '2'.repeat(64);
export const N3 = '3'.repeat(64);
export const E1 = 'e1'.repeat(32);
export const E2 = 'e2'.repeat(32);

export const networks: NetworkRecord[] = [
  {
    id: N1,
    parent: 'eth1',
    ownsParent: false,
    kind: 'macvlan',
    mode: 'bridge',
    internal: false,
    ipv4: { pool: '10.1.0.0/24', gateway: '10.1.0.1' },
  },
  {
    id: N2,
    parent: 'eth1.10',
    ownsParent: true,
    kind: 'macvlan',
    mode: 'private',
    internal: false,
    ipv4: { pool: '10.2.0.0/24' },
    ipv6: { pool: 'fd00::/64' },
  },
  { id: N3, parent: internalParentName(N3), ownsParent: true, kind: 'macvlan', mode: 'bridge', internal: true },
];
export const endpoints: EndpointRecord[] = [
  { id: E1, networkId: N1, mac: '02:42:0a:01:00:05', ipv4: '10.1.0.5/24' },
  { id: E2, networkId: N2, mac: '02:42:0a:02:00:05', ipv4: '10.2.0.5/24', ipv6: 'fd00::5/64' },
];

export const DRIVER = 'tsmacvlan-unit';
/** This state's instance id: its links carry device group G. */
export const INSTANCE = 'unit-instance';
export const G = instanceGroup(INSTANCE);

let index = 10;
export const l = (name: string, over: Partial<LinkInfo> = {}): LinkInfo => ({
  index: index++,
  name,
  up: true,
  loopback: false,
  mtu: 1500,
  ...over,
});
/** The host as it should be: every parent present, E1's container running (its link is not on the host), E2 just joined. */
export const healthy = (): LinkInfo[] => [
  l('lo', { loopback: true }),
  l('eth1'),
  l('eth1.10', { kind: 'vlan', vlanId: 10, alias: 'tsmacvlan:vlan', group: G }),
  l(internalParentName(N3), { kind: 'dummy', alias: 'tsmacvlan:internal', group: G }),
  l(endpointLinkName(E2), { kind: 'macvlan', alias: 'tsmacvlan:endpoint', mac: '02:42:0a:02:00:05', group: G }),
];
