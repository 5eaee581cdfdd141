// --ipam-opt ipv6=slaac: an IPv6 pool whose prefix is the one the LAN's router advertises for SLAAC on the network's
// parent, learned at RequestPool instead of given with --subnet. RequestPool does not carry the driver's -o options,
// so the parent comes as --ipam-opt parent=<interface>. The pool is then an ordinary pool of that /64: its addresses
// are handed out and probed as any pool's. The parent stays watched while a network uses the pool, so a prefix the
// router later withdraws, deprecates or lets expire is journaled with the pool (a 'prefix' line), where status and
// doctor read it; the pool keeps the prefix (Docker cannot renumber a network).
import type { Logger } from 'pino';
import { PluginError } from '../errors';
import type { Cidr } from '../ip/address';
import { journalLine } from './journal-records';
import type { RequestPoolArgs } from './pool-request';
import type { SubnetModel } from './subnet-model';
import { secondsSetting } from '../state/seconds-setting';

/** --ipam-opt ipv6=slaac takes the IPv6 pool from the router; --ipam-opt parent=<interface> says whose. */
export const IPV6_OPTION = 'ipv6';
export const PARENT_OPTION = 'parent';
const SLAAC = 'slaac';

/**
 * How long RequestPool waits for the router's advertisement (solicited once a second meanwhile):
 * TSMACVLAN_RA_WAIT_SECONDS, default 10, the DHCP networks' default dhcp_timeout.
 */
export function raWaitMs(env: NodeJS.ProcessEnv = process.env): number {
  const name = 'TSMACVLAN_RA_WAIT_SECONDS';
  return secondsSetting(name, env[name], { defaultSeconds: 10, max: 25 });
}

/** The LAN's routers as the IPAM needs them (src/ra implements it over the shared packet socket). */
export interface RouterPrefixes {
  /**
   * Watches `parent` and answers the /64 a router advertises there with the A flag (text, "2001:db8:1::/64"), within
   * `timeoutMs`; rejects with an error for people when none came (the parent stays watched only on success).
   */
  learn(parent: string, timeoutMs: number): Promise<string>;
  /** A pool of `parent` loaded from the state: watched again, for the reports. */
  rewatch(parent: string): Promise<void>;
  /** One pool user fewer on `parent`. */
  release(parent: string): void;
  /** Tells `listener` each time a router on a watched parent stops offering a prefix, or offers it again. */
  onChange(listener: (change: PrefixChange) => void): void;
}

/** What a router said of a prefix ("2001:db8:1::/64") on `parent`: lost (how), or `valid` again. */
export interface PrefixChange {
  parent: string;
  prefix: string;
  condition: 'valid' | 'deprecated' | 'withdrawn' | 'expired';
}

/** The parent of a pool that takes its prefix from the router, or undefined for any other pool. */
export function slaacParentOf(options: Record<string, string> | null | undefined, v6: boolean): string | undefined {
  const mode = options?.[IPV6_OPTION];
  if (mode === undefined) return undefined;
  if (mode !== SLAAC)
    throw new PluginError(
      `--ipam-opt ipv6=${mode} is not known: give ipv6=slaac to take the IPv6 prefix from the LAN's router, or leave it out`,
    );
  if (!v6) return undefined; // the IPv4 pool of the same network: its --subnet as ever
  const parent = options?.[PARENT_OPTION];
  if (!parent)
    throw new PluginError(
      "--ipam-opt ipv6=slaac needs the interface whose router to ask, and Docker does not pass the driver's -o parent to the IPAM: add --ipam-opt parent=<the network's -o parent>",
    );
  return parent;
}

/** The request with its pool filled from the router, when it asks for ipv6=slaac; the request itself otherwise. */
export async function withRouterPrefix(
  args: RequestPoolArgs,
  routers: RouterPrefixes | undefined,
): Promise<{ args: RequestPoolArgs; parent?: string }> {
  const parent = slaacParentOf(args.options, args.v6 === true);
  if (parent === undefined) return { args };
  if (args.pool)
    throw new PluginError(
      `--ipam-opt ipv6=slaac takes the IPv6 subnet from the router on ${parent}, but --subnet ${args.pool} was given too: leave out the IPv6 --subnet (or the ipv6=slaac option)`,
    );
  if (args.subPool)
    throw new PluginError(
      `--ipam-opt ipv6=slaac takes the IPv6 subnet from the router on ${parent}; an IPv6 --ip-range (${args.subPool}) cannot be checked against it before it is known: leave it out`,
    );
  if (!routers)
    throw new PluginError('this plugin instance has no packet socket to hear IPv6 router advertisements with');
  let pool: string;
  try {
    pool = await routers.learn(parent, raWaitMs());
  } catch (err) {
    throw new PluginError((err as Error).message);
  }
  return { args: { ...args, pool }, parent };
}

/** The parent watched for a pool of ipv6=slaac (its options as journaled), else undefined. */
export function watchedParentOf(options: Record<string, string>, v6: boolean): string | undefined {
  return v6 && options[IPV6_OPTION] === SLAAC ? options[PARENT_OPTION] : undefined;
}

/**
 * Marks the pools of ipv6=slaac on `change.parent` whose subnet is the prefix (in `subnet`, the prefix's own): answers
 * the journal line of each pool whose mark changes. A loss keeps its first time; a different loss replaces it.
 */
export function markPrefix(subnet: SubnetModel, change: PrefixChange, now: number): string[] {
  const lines: string[] = [];
  if (subnet.cidr.text !== change.prefix) return lines;
  for (const pool of subnet.pools.values()) {
    if (watchedParentOf(pool.options, subnet.v6) !== change.parent) continue;
    const before = pool.prefixLost;
    if (change.condition === 'valid') {
      if (!before) continue;
      pool.prefixLost = undefined;
    } else {
      if (before?.condition === change.condition) continue;
      pool.prefixLost = { condition: change.condition, at: now };
    }
    lines.push(journalLine.prefix(pool.journalNumber, pool.prefixLost));
  }
  return lines;
}

/** From now on, what the routers say of the prefixes of pools of ipv6=slaac is journaled with those pools. */
export function followPrefixes(
  routers: RouterPrefixes,
  subnets: ReadonlyMap<string, SubnetModel>,
  save: (cidr: Cidr, line: string) => Promise<void>,
  log: Logger,
): void {
  const journal = async (change: PrefixChange) => {
    const subnet = subnets.get(change.prefix);
    for (const line of subnet ? markPrefix(subnet, change, Date.now()) : [])
      await save(subnet!.cidr, line).catch((err: unknown) =>
        log.warn({ err, prefix: change.prefix }, "could not journal what the router said of a pool's prefix"),
      );
  };
  routers.onChange((change) => void journal(change));
}
