// Which plugin instance made a link. Two instances may share a host (a managed `tsmacvlan:latest` beside a legacy
// `tsmacvlan`, a test instance beside a real one), so "ours" must mean this instance's, or one instance's start-up
// clean-up would delete the links another is about to hand to Docker. The mark is a kernel device group (IFLA_GROUP)
// derived from the driver name: the kernel sets it in the same request that creates the link, so no link of ours
// ever exists unmarked, even for an instant before a crash.

/**
 * The device group of the instance serving as driver `driverName`: FNV-1a of the name, kept to 31 bits so that
 * `ip link show group <n>` takes it, and never 0 (the default group every other link is in).
 */
export function instanceGroup(driverName: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(driverName)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash & 0x7fffffff || 1;
}

/** Docker's name for the driver behind a socket: its file name without `.sock`. */
export function driverName(socketPath: string): string {
  return socketPath.replace(/^.*\//, '').replace(/\.sock$/, '');
}
