// Test-side network plumbing with iproute2 (tests may spawn processes; the daemon never does).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';

export function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Deletes a link if it is still there (a veth goes with its peer). */
export function deleteLink(name: string): void {
  if (linkNames().includes(name)) ip('link', 'del', name);
}

export function uniqueName(prefix: string): string {
  return prefix + randomBytes(3).toString('hex');
}

/** A veth pair, both ends up: one end serves as a macvlan parent. */
export function vethPair(name: string, peer = `${name}p`): void {
  ip('link', 'add', name, 'type', 'veth', 'peer', 'name', peer);
  ip('link', 'set', name, 'up');
  ip('link', 'set', peer, 'up');
}

export interface LinkDetails {
  ifname: string;
  link?: string;
  mtu: number;
  address: string;
  ifalias?: string;
  operstate: string;
  linkinfo?: { info_kind: string; info_data?: Record<string, unknown> };
}

export function links(): LinkDetails[] {
  return JSON.parse(ip('-d', '-j', 'link', 'show')) as LinkDetails[];
}

export function link(name: string): LinkDetails | undefined {
  return links().find((l) => l.ifname === name);
}

export function linkNames(): string[] {
  return links().map((l) => l.ifname);
}

const IN_NETNS = 'bash test/in-netns.sh npx vitest run --project integration';

/** The file system mounted last at `mountPoint` in this process's mount namespace, if any. */
export function mountedAt(mountPoint: string): { fstype: string; source: string } | undefined {
  let found: { fstype: string; source: string } | undefined;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [fields, fs] = line.split(' - ');
    if (fs === undefined || fields.split(' ')[4] !== mountPoint) continue;
    const [fstype, source] = fs.split(' ');
    found = { fstype, source };
  }
  return found;
}

function namespaceOfInit(kind: 'net' | 'mnt'): string | undefined {
  try {
    return readlinkSync(`/proc/1/ns/${kind}`);
  } catch {
    return undefined;
  }
}

/**
 * Integration tests create links, namespaces, daemons and etcd members freely and clean up by name, so they must run
 * in the private namespaces of test/in-netns.sh: a network namespace other than the caller's (TSMV_OUTER_NETNS) and
 * the host's, and a mount namespace whose /run/docker/plugins is the wrapper's empty tmpfs. Throws otherwise.
 */
export function assertPrivateNetns(): void {
  const problem = outsideTheWrapper();
  if (problem)
    throw new Error(
      `integration tests must run in the private namespaces of test/in-netns.sh (${problem}): ${IN_NETNS}`,
    );
}

function outsideTheWrapper(): string | undefined {
  const net = readlinkSync('/proc/self/ns/net');
  const outer = process.env.TSMV_OUTER_NETNS;
  if (!outer) return 'TSMV_OUTER_NETNS is not set';
  if (net === outer || net === namespaceOfInit('net'))
    return `this process is in the network namespace it was started from (${net})`;
  if (readlinkSync('/proc/self/ns/mnt') === namespaceOfInit('mnt')) return "this process is in the host's mounts";
  if (mountedAt('/run/docker/plugins')?.source !== 'tsmv-plugins')
    return "/run/docker/plugins is not the wrapper's private tmpfs";
  return undefined;
}

/**
 * Deletes every link whose name starts with one of `prefixes` (a test's clean-up of what its plugin made): only in
 * the private namespaces of test/in-netns.sh, where every such link is the tests'. Throws anywhere else, deleting
 * nothing: on a host, those names may be a real tsmacvlan's.
 */
export function deleteLinksByPrefix(...prefixes: string[]): void {
  assertPrivateNetns();
  for (const name of linkNames().filter((n) => prefixes.some((p) => n.startsWith(p)))) deleteLink(name);
}

/**
 * Tests that put sockets in /run/docker/plugins must see the private, empty one test/in-netns.sh mounts there (a tmpfs
 * named tsmv-plugins), never the host's, where Docker finds plugins.
 */
export function assertPrivatePluginsDir(): void {
  if (mountedAt('/run/docker/plugins')?.source !== 'tsmv-plugins')
    throw new Error(
      'this test writes to /run/docker/plugins: run it under test/in-netns.sh, which mounts a private one there',
    );
}
