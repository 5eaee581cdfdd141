// A DHCP network (`--ipam-driver null -o dhcp=true`): its options, what it refuses, and what a lease means to Docker.
import type { ClasslessRoute } from '../dhcp/message';
import type { Lease } from '../dhcp/lease';
import { PluginError } from '../errors';
import type { ChildMode } from '../kernel/link-info';
import { dhcpProblem } from './link-kind';

export interface DhcpSettings {
  /** How long a CreateEndpoint waits for a lease (and for a router's SLAAC prefix) before it fails. */
  timeoutSeconds: number;
  /** --ipv6: endpoints get an IPv6 address from the LAN's router advertisements (SLAAC; see docs/ipv6.md). */
  ipv6?: 'slaac';
  /** --ipv4=false (Docker 28+): no DHCPv4 lease is asked for. */
  noIpv4?: true;
}

export const DEFAULT_DHCP_TIMEOUT_SECONDS = 10;
const MAX_DHCP_TIMEOUT_SECONDS = 25; // Docker gives up on a plugin request after 30 s

/** What Docker's null IPAM sends as the pools (IPv6 from 28.0; before, it refuses --ipv6): no subnet of its own. */
const NULL_IPAM_POOL = '0.0.0.0/0';
const NULL_IPAM_POOL_V6 = '::/0';

/** Parses `dhcp` and `dhcp_timeout`; undefined when the network does not use DHCP. */
export function parseDhcpOptions(dhcp: string | undefined, timeout: string | undefined): DhcpSettings | undefined {
  if (dhcp !== undefined && dhcp !== 'true' && dhcp !== 'false')
    throw new PluginError(`dhcp '${dhcp}' is not a switch; give dhcp=true (or leave it out)`);
  if (dhcp !== 'true') {
    if (timeout !== undefined) throw new PluginError('dhcp_timeout only applies with dhcp=true');
    return undefined;
  }
  if (timeout === undefined) return { timeoutSeconds: DEFAULT_DHCP_TIMEOUT_SECONDS };
  const seconds = Number(timeout);
  if (!/^\d{1,2}$/.test(timeout) || seconds < 1 || seconds > MAX_DHCP_TIMEOUT_SECONDS)
    throw new PluginError(
      `dhcp_timeout '${timeout}' is not valid; give whole seconds from 1 to ${MAX_DHCP_TIMEOUT_SECONDS} (Docker gives up on a request after 30 s)`,
    );
  return { timeoutSeconds: seconds };
}

/**
 * Refuses a DHCP network that cannot work: addresses must come from the LAN's server alone (so Docker's IPAM must
 * give none), over a parent on that LAN, with links the LAN reaches at the leased address (see dhcpProblem).
 */
export function checkDhcpNetwork(
  options: { parent?: string; link: ChildMode; hostAccess?: string },
  /** The IPv4 data Docker's IPAM gave the network (only its pool matters here). */
  ipv4: { pool: string } | undefined,
  /** The IPv6 data, with --ipv6. */
  ipv6?: { pool: string },
): void {
  if (!options.parent)
    throw new PluginError(
      "dhcp=true needs -o parent=<interface on the DHCP server's LAN>, e.g. -o parent=eth1: a network without a parent is internal and no server can reach it",
    );
  if (ipv4 && ipv4.pool !== NULL_IPAM_POOL)
    throw new PluginError(
      `dhcp=true takes addresses from the LAN's DHCP server, but this network got the subnet ${ipv4.pool} from its IPAM driver; ` +
        `create it with --ipam-driver null and without --subnet, --gateway or --ip-range`,
    );
  if (ipv6 && ipv6.pool !== NULL_IPAM_POOL_V6)
    throw new PluginError(
      `dhcp=true takes IPv6 addresses from the LAN's router advertisements, but this network got the IPv6 subnet ${ipv6.pool} from its IPAM driver; ` +
        `create it with --ipam-driver null and without an IPv6 --subnet`,
    );
  const problem = dhcpProblem(options.link);
  if (problem) throw new PluginError(problem);
  if (ipv6 && options.link.kind !== 'macvlan')
    throw new PluginError(
      "dhcp=true with --ipv6 forms each container's address from its own MAC (SLAAC), and ipvlan links share their parent's MAC; use a macvlan network (leave out ipvlan_mode) or leave out --ipv6",
    );
  if (options.hostAccess)
    throw new PluginError(
      'host_access needs a --subnet to route, which a DHCP network does not have; leave host_access out with dhcp=true',
    );
}

/** Docker's static route types (libnetwork types.NEXTHOP and types.CONNECTED). */
const NEXTHOP = 0;
const CONNECTED = 1;

export interface StaticRoute {
  Destination: string;
  RouteType: number;
  NextHop?: string;
}

/** Default routes out of the interface itself (no gateway): `ip route add default dev eth0`, for IPv4 and/or IPv6. */
export function connectedDefaults(ipv4: boolean, ipv6: boolean): StaticRoute[] {
  return [...(ipv4 ? ['0.0.0.0/0'] : []), ...(ipv6 ? ['::/0'] : [])].map((Destination) => ({
    Destination,
    RouteType: CONNECTED,
  }));
}

/**
 * The gateway and static routes a lease gives the container. A default route in option 121 is the gateway; otherwise
 * the router option is, even beside option 121. RFC 3442 says to ignore the router option then, but servers (dnsmasq
 * among them) send both and mean both, and a container without a default route loses Docker's DNS forwarding too.
 */
export function joinRoutes(lease: Lease): { gateway?: string; staticRoutes: StaticRoute[] } {
  const isDefault = (route: ClasslessRoute) => route.destination === '0.0.0.0/0';
  const gateway = lease.classlessRoutes.find(isDefault)?.gateway ?? lease.routers[0];
  const staticRoutes = lease.classlessRoutes
    .filter((route) => !isDefault(route))
    .map((route) =>
      route.gateway === '0.0.0.0'
        ? { Destination: route.destination, RouteType: CONNECTED }
        : { Destination: route.destination, RouteType: NEXTHOP, NextHop: route.gateway },
    );
  return { ...(gateway && { gateway }), staticRoutes };
}
