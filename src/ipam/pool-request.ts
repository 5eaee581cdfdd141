// What a RequestPool asks for, checked before anything changes: the subnet, and an --ip-range inside it that holds
// an address a container can get. Each refusal says what to type instead.
import { PluginError } from '../errors';
import { type Cidr, contains, parseCidr, usableBounds } from '../ip/address';
import { SCOPE_OPTION } from './cluster-addresses';
import { isClusterPoolId } from './pool-id';
import type { Subnet } from './subnet';
import { IPV6_OPTION, PARENT_OPTION } from './slaac-pool';

/** --ipam-opt probe=off hands a pool's addresses out without asking the LAN (probe=on, the default, asks). */
export const PROBE_OPTION = 'probe';

/** The --ipam-opt keys tsmacvlan's IPAM knows; Docker's own (com.docker.*) ride along and are tolerated. */
export const IPAM_OPTIONS = [SCOPE_OPTION, PROBE_OPTION, IPV6_OPTION, PARENT_OPTION] as const;

export interface RequestPoolArgs {
  pool: string;
  subPool?: string;
  options?: Record<string, string> | null;
  v6?: boolean;
}

export function family(v6: boolean): string {
  return v6 ? 'IPv6' : 'IPv4';
}

export function parsePoolRequest(args: RequestPoolArgs): { cidr: Cidr; range: Cidr | undefined } {
  checkIpamOptions(args.options ?? {});
  const v6 = args.v6 === true;
  if (!args.pool) {
    throw new PluginError(
      `tsmacvlan's IPAM does not choose subnets: a macvlan network uses addresses of its parent's LAN. Pass --subnet${v6 ? " (for IPv6 too, or --ipam-opt ipv6=slaac --ipam-opt parent=<parent> to take it from the LAN's router)" : ''} to 'docker network create' (with --gateway and --ip-range as needed)`,
    );
  }
  const parsed = parseCidr(args.pool);
  if (!parsed.ok) throw new PluginError(`--subnet ${args.pool} is not valid: ${parsed.why}`);
  const cidr = parsed.cidr;
  if (cidr.v6 !== v6) {
    throw new PluginError(
      `--subnet ${args.pool} is an ${family(cidr.v6)} subnet, but Docker asked for an ${family(v6)} pool${cidr.v6 ? ' (add --ipv6 to use IPv6 subnets)' : ''}`,
    );
  }
  return { cidr, range: args.subPool ? parseRange(args.subPool, cidr) : undefined };
}

/** Refuses an --ipam-opt key this IPAM does not know, by name, as an unknown -o key of the driver is. */
function checkIpamOptions(options: Record<string, string>): void {
  for (const key of Object.keys(options)) {
    if (key.startsWith('com.docker.') || (IPAM_OPTIONS as readonly string[]).includes(key)) continue;
    throw new PluginError(`unknown --ipam-opt '${key}'; tsmacvlan's IPAM accepts: ${IPAM_OPTIONS.join(', ')}`);
  }
}

function parseRange(text: string, cidr: Cidr): Cidr {
  const parsed = parseCidr(text);
  if (!parsed.ok) throw new PluginError(`--ip-range ${text} is not valid: ${parsed.why}`);
  const range = parsed.cidr;
  if (range.v6 !== cidr.v6)
    throw new PluginError(
      `--ip-range ${range.text} is ${family(range.v6)} but --subnet ${cidr.text} is ${family(cidr.v6)}`,
    );
  if (range.prefix < cidr.prefix || !contains(cidr, range.base)) {
    throw new PluginError(
      `--ip-range ${range.text} is not inside --subnet ${cidr.text}; give a range within the subnet, e.g. ${cidr.text} itself`,
    );
  }
  const usable = usableBounds(cidr);
  const lo = range.base > usable.lo ? range.base : usable.lo;
  const hi = range.last < usable.hi ? range.last : usable.hi;
  if (lo > hi)
    throw new PluginError(
      `--ip-range ${range.text} holds no address of subnet ${cidr.text} that can be assigned (only its network or broadcast address); widen --ip-range`,
    );
  return range;
}

/** One subnet is all cluster-wide or all this host's: a local pool would hand out addresses the table holds. */
export function checkSameScope(subnet: Subnet, cidr: Cidr, clusterWide: boolean): void {
  const other = [...subnet.pools.values()].find((pool) => isClusterPoolId(pool.id) !== clusterWide);
  if (!other) return;
  throw new PluginError(
    `subnet ${cidr.text} is used on this host by pool ${other.id}, which is ${clusterWide ? "this host's alone" : 'cluster-wide'}: its addresses would be handed out twice; give this network the same --ipam-opt scope as that one, or use another subnet`,
  );
}
