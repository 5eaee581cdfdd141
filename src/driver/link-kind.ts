// A network's kind of link, macvlan or ipvlan (see ChildMode): what the choice means for the driver. The decisions
// that differ between the kinds are made here and nowhere else; the rest of the driver asks these questions.
import { PluginError } from '../errors';
import { KernelError } from '../kernel/errors';
import type { ChildKind, ChildMode, IpvlanFlag, IpvlanMode, MacvlanMode } from '../kernel/link-info';

export const MACVLAN_MODES: readonly MacvlanMode[] = ['bridge', 'private', 'vepa', 'passthru', 'source'];
export const IPVLAN_MODES: readonly IpvlanMode[] = ['l2', 'l3', 'l3s'];
export const IPVLAN_FLAGS: readonly IpvlanFlag[] = ['bridge', 'private', 'vepa'];

/**
 * The settings of a network's links as a record keeps them (records made before ipvlan get `kind: 'macvlan'` from the
 * upgrade to network record format 3, see record-formats.ts).
 */
export type LinkSettings =
  | { kind: 'macvlan'; mode: MacvlanMode; sourceMacs?: string[] }
  | { kind: 'ipvlan'; mode: IpvlanMode; flag: IpvlanFlag };

/** The child links a network's settings make. */
export function childMode(settings: LinkSettings): ChildMode {
  if (settings.kind === 'ipvlan') return { kind: 'ipvlan', mode: settings.mode, flag: settings.flag };
  return {
    kind: 'macvlan',
    mode: settings.mode,
    ...(settings.sourceMacs && { sourceMacs: settings.sourceMacs }),
  };
}

/** The options that choose these links, as a user types them: `macvlan_mode=bridge`, `ipvlan_mode=l2 ipvlan_flag=bridge`. */
export function linkOptions(mode: ChildMode): string {
  return mode.kind === 'ipvlan' ? `ipvlan_mode=${mode.mode} ipvlan_flag=${mode.flag}` : `macvlan_mode=${mode.mode}`;
}

/** Each container has a MAC of its own (macvlan), or shares its parent's (ipvlan). */
export function ownMac(mode: ChildMode): boolean {
  return mode.kind === 'macvlan';
}

/**
 * The containers are hosts of the parent's LAN, found by ARP and neighbour discovery (macvlan, ipvlan l2); in ipvlan
 * l3 and l3s the kernel answers no ARP for them: their subnets are routed to the host, and their default route is
 * their interface itself.
 */
export function onLan(mode: ChildMode): boolean {
  return mode.kind === 'macvlan' || mode.mode === 'l2';
}

/** Why the host's shim (host_access) could not reach the containers; undefined when it can. */
export function hostAccessProblem(mode: ChildMode): string | undefined {
  if (mode.kind === 'macvlan')
    return mode.mode === 'bridge'
      ? undefined
      : `host_access needs macvlan_mode=bridge: in ${mode.mode} mode the parent's macvlans do not talk to each other directly, so the host's shim could not reach the containers`;
  return mode.flag === 'bridge'
    ? undefined
    : `host_access needs ipvlan_flag=bridge: with ipvlan_flag=${mode.flag} the parent's ipvlans do not talk to each other directly, so the host's shim could not reach the containers`;
}

/** Why the LAN's DHCP server could not lease the containers their addresses; undefined when it can. */
export function dhcpProblem(mode: ChildMode): string | undefined {
  if (mode.kind === 'macvlan')
    return mode.mode === 'source'
      ? 'dhcp=true does not work with macvlan_mode=source: such a link receives by sender MAC (macvlan_source) rather than by its own, ' +
          'so the server and the LAN could not reach the leased address; use bridge, private, vepa or passthru'
      : undefined;
  return onLan(mode)
    ? undefined
    : `dhcp=true does not work with ipvlan_mode=${mode.mode}: a DHCP server leases addresses of the LAN itself, and in ${mode.mode} mode ` +
        'nothing answers ARP for the containers there (their subnets must be routed to the host); use ipvlan_mode=l2';
}

/**
 * Why a network with links `mine` cannot share a parent that carries links `theirs`; undefined when it can. The kernel
 * refuses macvlans and ipvlans on one parent (EBUSY), and keeps one ipvlan mode and flag per parent: a new ipvlan
 * with others would silently switch every ipvlan already there.
 */
export function sharingProblem(mine: ChildMode, theirs: ChildMode): string | undefined {
  if (mine.kind !== theirs.kind)
    return `the kernel never puts ${mine.kind} and ${theirs.kind} links on one parent (it answers EBUSY)`;
  if (mine.kind === 'ipvlan' && theirs.kind === 'ipvlan' && (mine.mode !== theirs.mode || mine.flag !== theirs.flag))
    return `the kernel keeps one ipvlan mode and flag per parent, and a new ipvlan with others would switch theirs; use ${linkOptions(theirs)} or another parent`;
  return undefined;
}

/** Runs `make`; a kernel without the kind's module (EOPNOTSUPP) becomes an error that says what to load. */
export async function unlessUnsupported<T>(kind: ChildKind, parent: string, make: () => Promise<T>): Promise<T> {
  try {
    return await make();
  } catch (err) {
    if (!(err instanceof KernelError && err.unsupported)) throw err;
    throw new PluginError(
      `cannot create ${kind} links on '${parent}': this kernel has no ${kind} support; load it with 'modprobe ${kind}' ('tsmacvlan doctor' checks it)`,
    );
  }
}
