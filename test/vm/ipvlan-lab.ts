// The ipvlan VM tests' LAN: switch namespaces with a bridge and the LAN's own addresses, veth ports from them to the
// test's namespace (the parents), and container namespaces that take an endpoint's link the way Docker does at Join.
// Everything made here is named with the lab's prefix and removed by close().
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { ip, link } from '../helpers/net';
import type { TestPlugin } from '../helpers/plugin';

export const id = () => randomBytes(32).toString('hex');

/** Docker's static route type for a route out of the interface itself (libnetwork types.CONNECTED). */
const CONNECTED = 1;

export function inNs(ns: string, ...args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** One echo request and its reply within 2 s. */
export function pings(ns: string | null, address: string): boolean {
  const v6 = address.includes(':') ? ['-6'] : [];
  try {
    execFileSync(ns ? 'ip' : 'ping', [...(ns ? ['netns', 'exec', ns, 'ping'] : []), ...v6, '-c1', '-W2', address], {
      stdio: 'ignore',
    });
    return true;
  } catch {
    return false;
  }
}

export function ifindex(name: string, ns?: string): number {
  return (JSON.parse(ip(...(ns ? ['-n', ns] : []), '-j', 'link', 'show', name)) as { ifindex: number }[])[0]!.ifindex;
}

/** The kernel's own view of an ipvlan: `ip -d link` says its kind, mode and flag. */
export function ipvlanOf(name: string, ns?: string) {
  const found = ns
    ? (JSON.parse(ip('-n', ns, '-d', '-j', 'link', 'show', name)) as ReturnType<typeof link>[])[0]
    : link(name);
  const data = (found?.linkinfo?.info_data ?? {}) as Record<string, unknown>;
  const flag = ['bridge', 'private', 'vepa'].find((f) => data[f] === true);
  return found && { kind: found.linkinfo?.info_kind, mode: data.mode, flag, mac: found.address, parent: found.link };
}

export interface JoinReply {
  InterfaceName: { SrcName: string };
  Gateway?: string;
  GatewayIPv6?: string;
  StaticRoutes: { Destination: string; RouteType: number; NextHop?: string }[];
  DisableGatewayService: boolean;
}

function batch(ns: string, commands: string[]): void {
  execFileSync('ip', ['-n', ns, '-batch', '-'], {
    input: commands.join('\n') + '\n',
    stdio: ['pipe', 'ignore', 'pipe'],
  });
}

/** Whether `route add <destination> ...` of a batch took effect already (a failed batch stops at its first error). */
function routeExists(ns: string, command: string): boolean {
  const destination = command.split(' ')[2]!;
  const family = destination.includes(':') ? '-6' : '-4';
  const shown = destination === 'default' || destination.endsWith('/0') ? 'default' : destination;
  return inNs(ns, 'ip', family, 'route', 'show', 'table', 'main')
    .split('\n')
    .some((line) => line.startsWith(`${shown} `));
}

export class Lab {
  private readonly namespaces: string[] = [];
  private readonly ports: string[] = [];
  readonly prefix = `iv${randomBytes(2).toString('hex')}`;

  /** A switch namespace with bridge br0 holding `addresses` (the LAN's router, its other hosts). */
  switch(name: string, addresses: string[]): string {
    const ns = this.namespace(name);
    inNs(ns, 'ip', 'link', 'add', 'br0', 'type', 'bridge');
    for (const address of addresses) inNs(ns, 'ip', 'addr', 'add', address, 'dev', 'br0', 'nodad');
    inNs(ns, 'ip', 'link', 'set', 'br0', 'up');
    return ns;
  }

  /** A veth from the switch's bridge (or, with `onBridge` false, loose in it) to the test's namespace: a parent. */
  port(name: string, switchNs: string, onBridge = true): { parent: string; peer: string } {
    const parent = `${this.prefix}${name}`;
    const peer = `${parent}s`;
    ip('link', 'add', parent, 'type', 'veth', 'peer', 'name', peer, 'netns', switchNs);
    inNs(switchNs, 'ip', 'link', 'set', peer, ...(onBridge ? ['master', 'br0'] : []), 'up');
    ip('link', 'set', parent, 'up');
    this.ports.push(parent);
    return { parent, peer };
  }

  namespace(name: string): string {
    const ns = `${this.prefix}${name}`;
    ip('netns', 'add', ns);
    this.namespaces.push(ns);
    inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
    return ns;
  }

  /**
   * What Docker does with a joined endpoint: moves its link into the container's namespace as eth0, gives it the
   * endpoint's addresses, brings it up, and sets the Join answer's gateways and static routes.
   */
  container(name: string, reply: JoinReply, addresses: { ipv4?: string; ipv6?: string }): string {
    const ns = this.namespace(name);
    ip('link', 'set', reply.InterfaceName.SrcName, 'netns', ns);
    // `ip -batch`es: every process costs a lot under the VM's emulated CPU. Batch lines take no options: the family
    // of a route comes from its addresses (0.0.0.0/0, ::/0).
    // Addresses before the link is up, as Docker does: added to a link already up, the IPv6 gateway route through
    // them was refused (EHOSTUNREACH) for more than 4 s in this VM.
    const setUp = [`link set ${reply.InterfaceName.SrcName} name eth0`];
    if (addresses.ipv4) setUp.push(`addr add ${addresses.ipv4} dev eth0`);
    if (addresses.ipv6) setUp.push(`addr add ${addresses.ipv6} dev eth0 nodad`);
    setUp.push('link set eth0 up');
    const routes: string[] = [];
    if (reply.Gateway) routes.push(`route add default via ${reply.Gateway} dev eth0`);
    if (reply.GatewayIPv6) routes.push(`route add ::/0 via ${reply.GatewayIPv6} dev eth0`);
    for (const route of reply.StaticRoutes) {
      const via = route.RouteType === CONNECTED ? '' : ` via ${route.NextHop!}`;
      routes.push(`route add ${route.Destination}${via} dev eth0`);
    }
    batch(ns, setUp);
    // A route through a gateway can still be refused for a while after the link comes up (EHOSTUNREACH; seconds under
    // the VM's emulated CPU on a busy machine): retried until a generous deadline.
    const deadline = Date.now() + 60_000;
    while (routes.length) {
      try {
        batch(ns, routes);
        break;
      } catch (error) {
        if (Date.now() > deadline) {
          const seen = ['-d link', 'addr', 'route'].map((what) => inNs(ns, 'ip', ...what.split(' '), 'show'));
          throw new Error(`${(error as Error).message}\nthe container's view:\n${seen.join('\n')}`);
        }
        execFileSync('sleep', ['0.2']);
        routes.splice(0, routes.length, ...routes.filter((r) => !routeExists(ns, r)));
      }
    }
    return ns;
  }

  close(): void {
    for (const ns of this.namespaces.reverse()) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // gone already
      }
    }
    for (const port of this.ports) if (link(port)) ip('link', 'del', port);
  }
}

export function createNetwork(
  plugin: TestPlugin,
  networkId: string,
  generic: Record<string, string>,
  ipv4?: { Pool: string; Gateway?: string; AuxAddresses?: Record<string, string> },
  ipv6?: { Pool: string; Gateway?: string },
) {
  return plugin.call('NetworkDriver.CreateNetwork', {
    NetworkID: networkId,
    Options: { 'com.docker.network.generic': generic },
    IPv4Data: ipv4 ? [ipv4] : [],
    IPv6Data: ipv6 ? [ipv6] : [],
  });
}

/** CreateEndpoint and Join as Docker sends them; answers the endpoint id and the Join reply. */
export async function attach(
  plugin: TestPlugin,
  networkId: string,
  addresses: { ipv4?: string; ipv6?: string },
): Promise<{ endpointId: string; reply: JoinReply }> {
  const endpointId = id();
  const created = await plugin.call('NetworkDriver.CreateEndpoint', {
    NetworkID: networkId,
    EndpointID: endpointId,
    Interface: { Address: addresses.ipv4 ?? '', AddressIPv6: addresses.ipv6 ?? '', MacAddress: '' },
  });
  expect(created.status, JSON.stringify(created.json)).toBe(200);
  const joined = await plugin.call('NetworkDriver.Join', {
    NetworkID: networkId,
    EndpointID: endpointId,
    SandboxKey: '/var/run/docker/netns/none',
  });
  expect(joined.status, JSON.stringify(joined.json)).toBe(200);
  return { endpointId, reply: joined.json as JoinReply };
}
