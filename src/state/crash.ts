// Crash-safety test hook: with TSMACVLAN_CRASH_AT=<point> the process kills itself at that point, as a power cut
// would, so tests can prove every step of every operation recovers. Unset, it costs one string comparison.
const target = process.env.TSMACVLAN_CRASH_AT;

export function crashPoint(point: string): void {
  if (point === target) process.kill(process.pid, 'SIGKILL');
}
