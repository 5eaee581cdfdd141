// What an endpoint's requests carry and what Docker is answered: CreateEndpoint's fields, the same answer to the same
// request, and Join's interface, gateways and routes.
import { PluginError } from '../errors';
import { connectedDefaults, joinRoutes, type StaticRoute } from './dhcp-network';
import type { EndpointRecord } from './endpoint-naming';
import { childMode, onLan } from './link-kind';
import type { NetworkRecord } from './network-options';

export interface CreateEndpointRequest {
  networkId: string;
  endpointId: string;
  mac?: string;
  ipv4?: string;
  ipv6?: string;
}

export interface JoinAnswer {
  linkName: string;
  gateway?: string;
  gatewayIpv6?: string;
  staticRoutes: StaticRoute[];
}

/** What CreateEndpoint fills in that Docker left empty. */
export interface CreatedEndpoint {
  mac?: string;
  /** CIDR: the address leased on a DHCP network. */
  ipv4?: string;
  /** CIDR: the SLAAC address on a DHCP network with IPv6. */
  ipv6?: string;
}

/** A DHCP network's addresses come from the LAN (its DHCP server, its IPv6 router): Docker must give none. */
export function refuseGivenAddresses(network: NetworkRecord, req: CreateEndpointRequest): void {
  if (network.dhcp && req.ipv4)
    throw new PluginError(
      `network ${req.networkId.slice(0, 12)} leases its addresses from the LAN's DHCP server, so Docker must give none (got ${req.ipv4}); ` +
        `leave out --ip, and pin an address with a reservation for the container's --mac-address on the server instead`,
    );
  if (network.dhcp?.ipv6 && req.ipv6)
    throw new PluginError(
      `network ${req.networkId.slice(0, 12)} forms its IPv6 addresses from the LAN router's prefix and each container's MAC, so Docker must give none (got ${req.ipv6}); ` +
        `leave out --ip6, and choose the address through --mac-address instead`,
    );
}

/** The same request again is answered the same way; anything else under that id is refused. */
export function sameAnswer(existing: EndpointRecord, req: CreateEndpointRequest, answersMac: boolean): CreatedEndpoint {
  const same =
    existing.networkId === req.networkId &&
    (existing.lease ? req.ipv4 === undefined : existing.ipv4 === req.ipv4) &&
    (existing.slaac || existing.dhcp6 ? req.ipv6 === undefined : existing.ipv6 === req.ipv6) &&
    (!req.mac || (answersMac && req.mac === existing.mac));
  if (!same)
    throw new PluginError(
      `endpoint ${req.endpointId.slice(0, 12)} already exists on network ${existing.networkId.slice(0, 12)} with other settings; endpoint ids are unique`,
    );
  return {
    ...(!req.mac && answersMac && { mac: existing.mac }),
    ...(existing.lease && { ipv4: existing.ipv4 }),
    ...((existing.slaac || existing.dhcp6) && { ipv6: existing.ipv6 }),
  };
}

/**
 * What Docker sets in the container: the gateways, or on a DHCP network the lease's router and routes. In ipvlan l3
 * and l3s nothing on the LAN answers ARP for a gateway: the default routes lead out of the interface itself, and the
 * host's kernel routes what leaves it.
 */
export function joinAnswer(network: NetworkRecord, endpoint: EndpointRecord, linkName: string): JoinAnswer {
  const answer: JoinAnswer = { linkName, staticRoutes: [] };
  if (endpoint.lease) {
    const routes = joinRoutes(endpoint.lease);
    answer.staticRoutes = routes.staticRoutes;
    if (routes.gateway && !network.internal) answer.gateway = routes.gateway;
  }
  // The router that advertised the prefix, by its link-local address: routers need not have one in the prefix.
  const router6 = (endpoint.slaac ?? endpoint.dhcp6)?.router;
  if (router6 && !network.internal) answer.gatewayIpv6 = router6;
  if (network.internal) return answer;
  if (!onLan(childMode(network))) {
    answer.staticRoutes.push(...connectedDefaults(endpoint.ipv4 !== undefined, endpoint.ipv6 !== undefined));
    return answer;
  }
  if (network.ipv4?.gateway) answer.gateway = network.ipv4.gateway;
  if (network.ipv6?.gateway) answer.gatewayIpv6 = network.ipv6.gateway;
  return answer;
}
