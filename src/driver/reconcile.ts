// Reconciliation: what the kernel must look like for the state on disk, and the repairs that get it there.
import { ENDPOINT_PREFIX, endpointLinkName, type EndpointRecord } from './endpoint-naming';
import { SHIM_PREFIX, shimName } from './host-access';
import type { NetworkRecord } from './network-options';
import { INTERNAL_PREFIX, VETH_PEER_PREFIX } from './parents';
import { MARK_ENDPOINT, MARK_SHIM, MARK_VLAN, MARK_INTERNAL } from '../kernel/marks';
import { CHILD_KINDS, type ChildKind, type LinkInfo } from '../kernel/link-info';

export type Repair =
  | { action: 'delete' | 'create'; link: string; networkId?: string; reason: string }
  /** A record saved for a CreateNetwork or CreateEndpoint that was never answered: Docker does not know the object. */
  | { action: 'forget'; record: 'network' | 'endpoint'; id: string; reason: string };

const ROLES: Record<string, string> = {
  [MARK_ENDPOINT]: 'endpoint',
  [MARK_SHIM]: 'host-access shim',
  [MARK_INTERNAL]: 'internal parent',
  [MARK_VLAN]: 'VLAN parent',
};

/** What one of our links is for, from its alias (or, if a crash came before the alias, its name). */
export function linkRole(link: LinkInfo): string {
  if (link.alias && ROLES[link.alias]) return ROLES[link.alias];
  if (link.name.startsWith(ENDPOINT_PREFIX)) return 'endpoint';
  if (link.name.startsWith(SHIM_PREFIX)) return 'host-access shim';
  if (link.name.startsWith(INTERNAL_PREFIX) || link.name.startsWith(VETH_PEER_PREFIX)) return 'internal parent';
  return `${link.kind ?? 'unknown'}`;
}

/** The repairs that bring `links` (this namespace's, carrying this instance's `group` or not) in line with the state. */
export function planRepairs(
  links: LinkInfo[],
  group: number | undefined,
  allNetworks: NetworkRecord[],
  allEndpoints: EndpointRecord[],
): Repair[] {
  const present = new Map(links.map((link) => [link.name, link]));
  const repairs: Repair[] = [];
  // Records of creates never answered are undone: they go, and so do the links they made (they own nothing).
  const forget: Repair[] = [];
  for (const network of allNetworks.filter((n) => n.unanswered)) {
    forget.push({
      action: 'forget',
      record: 'network',
      id: network.id,
      reason: 'its CreateNetwork was saved but never answered (tsmacvlan stopped first), so Docker does not know it',
    });
  }
  for (const endpoint of allEndpoints.filter((e) => e.unanswered)) {
    forget.push({
      action: 'forget',
      record: 'endpoint',
      id: endpoint.id,
      reason: 'its CreateEndpoint was saved but never answered (tsmacvlan stopped first), so Docker does not know it',
    });
  }
  const networks = allNetworks.filter((n) => !n.unanswered);
  const endpoints = allEndpoints.filter((e) => !e.unanswered);

  const parents = new Set<string>();
  for (const network of networks) {
    parents.add(network.parent);
    if (!network.ownsParent) continue;
    const link = present.get(network.parent);
    if (!link)
      repairs.push({
        action: 'create',
        link: network.parent,
        networkId: network.id,
        reason: `parent of network ${network.id.slice(0, 12)} is missing`,
      });
  }
  // Owned parents that several networks share are created once.
  const seen = new Set<string>();
  const unique = [...forget, ...repairs.filter((r) => r.action !== 'forget' && !seen.has(r.link) && seen.add(r.link))];

  const owned = new Set<string>([
    ...endpoints.map((e) => endpointLinkName(e.id)),
    ...networks.filter((n) => n.hostAccess).map((n) => shimName(n.id)),
    ...parents,
    ...networks.map((n) => VETH_PEER_PREFIX + n.id.slice(0, 10)),
  ]);
  const orphans = links.filter((link) => group !== undefined && link.group === group && !owned.has(link.name));
  // Children before parents, so no delete races the kernel's own clean-up of a parent's macvlans or ipvlans.
  const rank = (link: LinkInfo) => (CHILD_KINDS.includes(link.kind as ChildKind) ? 0 : 1);
  for (const link of orphans.sort((a, b) => rank(a) - rank(b))) {
    unique.push({
      action: 'delete',
      link: link.name,
      reason: `${linkRole(link)} link that no network or endpoint of the state owns`,
    });
  }
  return unique;
}

export function describeRepair(repair: Repair): string {
  if (repair.action === 'forget') return `forget ${repair.record} ${repair.id}: ${repair.reason}`;
  const verb = { delete: 'delete link', create: 're-create link' }[repair.action];
  return `${verb} ${repair.link}: ${repair.reason}`;
}
