// Reconciliation: what the kernel must look like for the state on disk, and the repairs that get it there.
import { ENDPOINT_PREFIX, MARK_ENDPOINT, endpointLinkName, type EndpointRecord } from './endpoint';
import { MARK_SHIM, SHIM_PREFIX, shimName } from './host-access';
import type { LinkInfo } from './link';
import type { NetworkRecord } from './network';
import { INTERNAL_PREFIX, MARK_INTERNAL, MARK_VLAN, VETH_PEER_PREFIX } from './parent';

export interface Repair {
  action: 'delete' | 'create' | 'mark';
  link: string;
  networkId?: string;
  reason: string;
}

const MARKS = [MARK_ENDPOINT, MARK_SHIM, MARK_INTERNAL, MARK_VLAN];

/**
 * A link this plugin made: it carries one of our marks, or it has our name prefix, no mark at all and a kind we
 * create (a crash between creating a link and marking it leaves exactly that).
 */
export function isPluginLink(link: LinkInfo): boolean {
  if (link.alias !== undefined) return MARKS.includes(link.alias);
  if (link.name.startsWith(ENDPOINT_PREFIX) || link.name.startsWith(SHIM_PREFIX)) return link.kind === 'macvlan';
  if (link.name.startsWith(INTERNAL_PREFIX) || link.name.startsWith(VETH_PEER_PREFIX)) return link.kind === 'dummy' || link.kind === 'veth';
  return false;
}

export function planRepairs(links: LinkInfo[], networks: NetworkRecord[], endpoints: EndpointRecord[]): Repair[] {
  const present = new Map(links.map((link) => [link.name, link]));
  const repairs: Repair[] = [];

  const parents = new Set<string>();
  for (const network of networks) {
    parents.add(network.parent);
    if (!network.ownsParent) continue;
    const link = present.get(network.parent);
    if (!link) repairs.push({ action: 'create', link: network.parent, networkId: network.id, reason: `parent of network ${network.id.slice(0, 12)} is missing` });
    else if (link.alias === undefined) repairs.push({ action: 'mark', link: network.parent, networkId: network.id, reason: `parent of network ${network.id.slice(0, 12)} is unmarked` });
  }
  // Owned parents that several networks share are created once.
  const seen = new Set<string>();
  const unique = repairs.filter((r) => !seen.has(r.link) && seen.add(r.link));

  const owned = new Set<string>([
    ...endpoints.map((e) => endpointLinkName(e.id)),
    ...networks.filter((n) => n.hostAccess).map((n) => shimName(n.id)),
    ...parents,
    ...networks.map((n) => VETH_PEER_PREFIX + n.id.slice(0, 10)),
  ]);
  const orphans = links.filter((link) => isPluginLink(link) && !owned.has(link.name));
  // Children before parents, so no delete races the kernel's own clean-up of a parent's macvlans.
  const rank = (link: LinkInfo) => (link.kind === 'macvlan' ? 0 : 1);
  for (const link of orphans.sort((a, b) => rank(a) - rank(b))) {
    unique.push({ action: 'delete', link: link.name, reason: `${link.alias ?? 'unmarked ' + link.kind} link that no network or endpoint of the state owns` });
  }
  return unique;
}

export function describeRepair(repair: Repair): string {
  const verb = { delete: 'delete link', create: 're-create link', mark: 'mark link' }[repair.action];
  return `${verb} ${repair.link}: ${repair.reason}`;
}
