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

/**
 * Integration tests create links freely, so they must run in a namespace of their own: test/in-netns.sh records the
 * caller's namespace in TSMV_OUTER_NETNS and runs the tests under `unshare --net`.
 */
export function assertPrivateNetns(): void {
  const outer = process.env.TSMV_OUTER_NETNS;
  if (!outer || outer === readlinkSync('/proc/self/ns/net')) {
    throw new Error(
      'integration tests must run in a private network namespace: bash test/in-netns.sh npx vitest run --project integration',
    );
  }
}

/**
 * Tests that put sockets in /run/docker/plugins must see the private, empty one test/in-netns.sh mounts there (a tmpfs
 * named tsmv-plugins), never the host's, where Docker finds plugins.
 */
export function assertPrivatePluginsDir(): void {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  const own = mounts.filter((line) => line.split(' ')[4] === '/run/docker/plugins').pop();
  if (!own || !/ - tmpfs tsmv-plugins /.test(own)) {
    throw new Error(
      'this test writes to /run/docker/plugins: run it under test/in-netns.sh, which mounts a private one there',
    );
  }
}
