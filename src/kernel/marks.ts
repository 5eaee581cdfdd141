// Which plugin instance made a link. Two instances may share a host (a test instance beside a real one, a managed
// plugin beside a service: every managed plugin listens on tsmacvlan.sock, so the driver name cannot tell them apart),
// so "ours" must mean this instance's, or one instance's start-up clean-up would delete the links another is about
// to hand to Docker. An instance is its state: a random id kept in the state dir. The mark is a kernel device group
// (IFLA_GROUP) derived from that id: the kernel sets it in the same request that creates the link, so no link of
// ours ever exists unmarked, even for an instant before a crash.

/** Every link the plugin makes carries an ifalias starting with this; the rest says to a person what the link is. */
export const MARK_PREFIX = 'tsmacvlan:';
export const MARK_ENDPOINT = `${MARK_PREFIX}endpoint`;
export const MARK_SHIM = `${MARK_PREFIX}shim`;
export const MARK_VLAN = `${MARK_PREFIX}vlan`;
export const MARK_INTERNAL = `${MARK_PREFIX}internal`;
/** A macvlan made for a moment to learn whether its parent lists its children's MACs (driver/forgotten-endpoints.ts). */
export const MARK_LIST_CHECK = `${MARK_PREFIX}unicast-list check`;
/** The links `doctor --probe-kernel` makes in a namespace of its own. */
export const MARK_PROBE = `${MARK_PREFIX}probe`;

/**
 * The device group for an instance id: FNV-1a of the id, kept to 31 bits so that `ip link show group <n>` takes it,
 * and never 0 (the default group every other link is in).
 */
export function instanceGroup(id: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(id)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash & 0x7fffffff || 1;
}
