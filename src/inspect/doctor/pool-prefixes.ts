// Doctor: the pools of --ipam-opt ipv6=slaac whose prefix the LAN's router no longer offers (withdrawn, deprecated,
// expired), as their journals record it. Docker fixes a network's subnet when the network is created and gives a
// plugin no way to change a container's address, so the finding's fix is to recreate the network in the new prefix.
import { type StateSnapshot } from '../state-snapshot';
import { lostPoolPrefixes, networkPrefixLoss } from '../slaac-rows';
import type { Check } from './check';

/** One WARN per lost pool prefix; one OK while every such pool's prefix is offered; nothing without such pools. */
export function poolPrefixChecks(state: StateSnapshot): Check[] {
  const routed = state.pools.filter((p) => p.routerPrefix);
  if (routed.length === 0) return [];
  const lost = lostPoolPrefixes(state.pools);
  if (lost.size === 0)
    return [
      {
        id: 'ipv6-pool-prefixes',
        status: 'OK',
        message: `${routed.length} IPv6 pool(s) of --ipam-opt ipv6=slaac, each prefix still advertised by its router`,
      },
    ];
  return [...lost.values()].map((loss) => {
    const networks = state.networks.filter((n) => networkPrefixLoss(n, lost) === loss);
    const ids = new Set(networks.map((n) => n.id));
    const holders = state.endpoints
      .filter((e) => e.ipv6 && ids.has(e.networkId))
      .map((e) => `${e.id.slice(0, 12)} (${e.ipv6})`);
    const names = networks.map((n) => n.id.slice(0, 12)).join(', ') || 'none recorded by this driver';
    return {
      id: `ipv6-pool-prefix:${loss.prefix}`,
      status: 'WARN',
      message:
        `the router on ${loss.parent} no longer offers ${loss.prefix}, the IPv6 pool of --ipam-opt ipv6=slaac of ` +
        `network(s) ${names}: ${loss.state} since ${loss.since}; ` +
        (holders.length
          ? `${holders.length} endpoint(s) keep addresses in it, which the LAN may no longer route: ${holders.join(', ')}`
          : 'no endpoint of this driver holds an address in it'),
      fix:
        `the plugin cannot renumber a network or its containers (Docker fixes a network's subnets when it is created), ` +
        `and reconnecting gives an address in the same pool: recreate the network so its pool takes the router's current ` +
        `prefix (docker network rm <network> once its containers are stopped or disconnected, the same docker network ` +
        `create with --ipam-opt ipv6=slaac --ipam-opt parent=${loss.parent}, then start or reconnect the containers). ` +
        `If the router offers ${loss.prefix} again, this goes by itself`,
    };
  });
}
