// Drift between the records and the host's links: one finder per kind of drift, all pure.
import { endpointLinkName, type EndpointRecord } from '../driver/endpoint-naming';
import { shimName } from '../driver/host-access';
import type { NetworkRecord } from '../driver/network-options';
import { internalParentName } from '../driver/parents';
import { planRepairs } from '../driver/reconcile';
import type { LinkInfo } from '../kernel/link-info';
import { MARK_PREFIX, MARK_VLAN } from '../kernel/marks';

/**
 * What counts as drift between the records and the host's network namespace (the only one visible from here).
 * A link is this instance's when it carries its device group (kernel/marks.ts: derived from the driver name, i.e. the socket's
 * file name); its alias (`tsmacvlan:endpoint`...) only says to a person what it is. The part the plugin repairs itself
 * is exactly what its start-up reconciliation (and `tsmacvlan gc`) would do, `planRepairs` in driver/reconcile.ts, so status
 * and gc never disagree:
 * - `parent-missing`: a network's parent link is gone. A parent the plugin made (VLAN, internal) is re-created at its
 *   next start; any other must come back by hand. Until then containers cannot join.
 * - `leaked-link`: a link of this instance that no record owns; the next start of the plugin deletes it. Also a link
 *   with a `tsmacvlan:*` alias in no instance's group (group 0: made by hand, or by a version before groups) that no
 *   record owns: nobody will delete it.
 * - `orphan-vlan`: the same for a VLAN sub-interface the plugin created: no network uses it any more.
 * Beyond what gc repairs:
 * - `shim-missing`: a host_access network's shim is gone while its parent is there (the running plugin re-makes it
 *   within moments; if it stays missing the plugin is not running or failed).
 * - `orphan-endpoint`: an endpoint record whose network record is missing.
 * NOT drift: a recorded endpoint whose link is absent from the host. That is the normal state of a running
 * container's endpoint (Docker moved the link into the container's namespace, which we cannot see), and also of an
 * endpoint created but not joined yet. A recorded endpoint whose link is on the host is normal between Join and the
 * container's start, and between the container's stop and DeleteEndpoint. Links in another instance's group are that
 * instance's business (another driver name, another state dir). Links named like the plugin's without its group or
 * alias are not its own.
 * A snapshot races the plugin: during a `docker network create/rm` a link can briefly exist without its record; rerun.
 */
export const DRIFT_KINDS = ['parent-missing', 'leaked-link', 'orphan-vlan', 'shim-missing', 'orphan-endpoint'] as const;
export type DriftKind = (typeof DRIFT_KINDS)[number];

export interface Drift {
  kind: DriftKind;
  /** The link name or the record id it is about. */
  subject: string;
  message: string;
  fix: string;
}

export const GC_ADVICE =
  "restart the plugin, or run 'tsmacvlan gc' while it is stopped ('tsmacvlan gc --dry-run' shows what it would do)";

interface Records {
  networks: NetworkRecord[];
  endpoints: EndpointRecord[];
}

const short = (id: string) => id.slice(0, 12);

/**
 * Drift between the records and the host's links (see DRIFT_KINDS). Pure: `hostLinks` is a dump of the host namespace,
 * `group` the device group of the instance the state belongs to.
 */
export function findDrift(state: Records, hostLinks: LinkInfo[], group: number | undefined): Drift[] {
  const byName = new Map(hostLinks.map((link) => [link.name, link]));
  return [
    ...missingParents(state, byName),
    ...unownedLinks(state, hostLinks, byName, group),
    ...unmarkedLinks(state, hostLinks),
    ...missingShims(state, byName),
    ...orphanEndpoints(state),
  ];
}

/** One entry per missing parent, naming every network on it. */
function missingParents(state: Records, byName: Map<string, LinkInfo>): Drift[] {
  const missing = new Map<string, NetworkRecord[]>();
  for (const network of state.networks) {
    if (byName.has(network.parent)) continue;
    missing.set(network.parent, [...(missing.get(network.parent) ?? []), network]);
  }
  return [...missing].map(([parent, networks]) => {
    const owned = networks.some((n) => n.ownsParent);
    const internal = networks.every((n) => n.parent === internalParentName(n.id));
    const ids = networks.map((n) => short(n.id)).join(', ');
    const lost = state.endpoints.filter((e) => networks.some((n) => n.id === e.networkId)).length;
    return {
      kind: 'parent-missing',
      subject: parent,
      message:
        `the ${internal ? 'internal parent' : owned ? 'VLAN parent' : 'parent'} '${parent}' of network(s) ${ids} does not exist: containers cannot join` +
        (lost ? `; the links of its ${lost} endpoint(s) went with it` : ''),
      fix: owned
        ? `${GC_ADVICE}: it re-creates '${parent}'` + (internal ? '' : ` (its base interface must exist)`)
        : `bring '${parent}' back under the same name, or remove the network(s) ('docker network rm') and create them again with an existing parent`,
    };
  });
}

/** A link no record owns: an `orphan-vlan` when it is a VLAN, else a `leaked-link`. */
function unowned(link: LinkInfo, fix: string, whose: string): Drift {
  return link.alias === MARK_VLAN || link.kind === 'vlan'
    ? {
        kind: 'orphan-vlan',
        subject: link.name,
        message: `VLAN '${link.name}'${link.vlanId ? ` (id ${link.vlanId})` : ''} is ${whose}, but no network uses it`,
        fix,
      }
    : {
        kind: 'leaked-link',
        subject: link.name,
        message: `link '${link.name}'${link.alias ? ` (${link.alias})` : ''} is ${whose}, but no record owns it`,
        fix,
      };
}

/** Links of this instance that the next start deletes: exactly what its reconciliation would do. */
function unownedLinks(
  state: Records,
  hostLinks: LinkInfo[],
  byName: Map<string, LinkInfo>,
  group: number | undefined,
): Drift[] {
  const drift: Drift[] = [];
  for (const repair of planRepairs(hostLinks, group, state.networks, state.endpoints)) {
    const link = repair.action === 'delete' ? byName.get(repair.link) : undefined;
    // 'create' is a missing parent the plugin made: reported apart; 'forget' is a record the next start rolls back.
    if (link)
      drift.push(unowned(link, `${GC_ADVICE}: it deletes it; or by hand: ip link del ${link.name}`, "the plugin's"));
  }
  return drift;
}

/** Marked by alias but in no instance's group: no start-up of any instance removes it. */
function unmarkedLinks(state: Records, hostLinks: LinkInfo[]): Drift[] {
  const owned = new Set([
    ...state.endpoints.map((e) => endpointLinkName(e.id)),
    ...state.networks.map((n) => n.parent),
    ...state.networks.filter((n) => n.hostAccess).map((n) => shimName(n.id)),
  ]);
  return hostLinks
    .filter((link) => link.alias?.startsWith(MARK_PREFIX) && !link.group && !owned.has(link.name))
    .map((link) =>
      unowned(
        link,
        `no tsmacvlan start removes it (it carries no instance's device group): ip link del ${link.name}`,
        "marked as tsmacvlan's by its alias, in no instance's device group",
      ),
    );
}

function missingShims(state: Records, byName: Map<string, LinkInfo>): Drift[] {
  return state.networks
    .filter((network) => network.hostAccess && byName.has(network.parent) && !byName.has(shimName(network.id)))
    .map((network) => ({
      kind: 'shim-missing',
      subject: shimName(network.id),
      message: `network ${short(network.id)} has host_access=${network.hostAccess} but its shim '${shimName(network.id)}' does not exist: the host cannot reach its containers`,
      fix: 'start (or restart) the plugin: it re-makes the shim at start and whenever it disappears',
    }));
}

function orphanEndpoints(state: Records): Drift[] {
  const networkIds = new Set(state.networks.map((n) => n.id));
  return state.endpoints
    .filter((endpoint) => !networkIds.has(endpoint.networkId))
    .map((endpoint) => ({
      kind: 'orphan-endpoint',
      subject: endpoint.id,
      message: `endpoint ${short(endpoint.id)} belongs to network ${short(endpoint.networkId)}, which has no record`,
      fix: `with the plugin stopped, remove endpoints/${endpoint.id}.json from the state dir`,
    }));
}
