// A test "switch" for macvlan end-to-end tests, built with ip(8):
//
//   the lab's netns (the "host")       | netns <run id>-XXXXXXXX (owned by the test)
//   tsmvXXXXXXXX (veth, macvlan        |   tsmvXXXXXXXXp (veth) -- br0 (10.231.N.1/24)
//   parent, 10.231.N.254/24) <---------+-->
//
// Containers get macvlan links on the host-side veth end (the "parent"); their frames leave through the veth into
// br0, where the switch's own address lives. The parent holds an address in the subnet, as a host on a LAN does, so
// the host's route to every test subnet is local: a ping that gets no answer fails here, by macvlan's isolation, and
// never leaves through a default route. Deleting the netns destroys br0 and the veth pair (hence the parent) too.
//
// Only ever touches links and namespaces it created, by their exact names, and namespaces named after this run.
// Names are at most 15 characters (IFNAMSIZ - 1).
import { randomBytes } from 'node:crypto';
import { runId } from '../lab/lab';
import { run, type RunOpts, type RunResult } from './docker';

export const LINK_PREFIX = 'tsmv';

export interface SwitchOpts {
  /** First three octets of the switch's /24, e.g. '10.231.5'. The bridge gets .1. */
  subnetPrefix: string;
  /** Optional IPv6 /64 prefix ending in '::', e.g. 'fd31:231:5::'. The bridge gets ::1. */
  ipv6Prefix?: string;
  /** MTU of both veth ends and the bridge (default 1500). */
  mtu?: number;
  /**
   * The parent's name, e.g. `eth1` so that a command of the docs runs as written (only in the lab's own namespace,
   * where no such link exists before); default tsmv + 8 hex characters. Never eth0 or docker0.
   */
  parentName?: string;
}

export interface Switch {
  /** Host-side veth end: use as the macvlan parent (`-o parent=`). */
  parent: string;
  /** The veth end inside the namespace, a port of br0. */
  port: string;
  nsName: string;
  /** The bridge's name inside nsName. */
  bridge: string;
  /** e.g. '10.231.5.1' */
  bridgeIp: string;
  /** The host's own address in the subnet, on the parent: e.g. '10.231.5.254'. */
  hostIp: string;
  /** e.g. '10.231.5.0/24' */
  subnet: string;
  /** e.g. 'fd31:231:5::1' when ipv6Prefix was given. */
  bridgeIp6?: string;
  /** e.g. 'fd31:231:5::/64' when ipv6Prefix was given. */
  subnet6?: string;
  /**
   * Hairpin (reflective relay) on br0's port toward the parent: frames may go
   * back out the port they came in on. Needed for macvlan vepa mode siblings
   * to reach each other through the switch.
   */
  setHairpin(on: boolean): Promise<void>;
  /** Runs a command inside the switch's namespace (e.g. ping from the switch). */
  exec(cmd: string[], opts?: RunOpts): Promise<RunResult>;
  /** Removes the namespace and veth pair. Idempotent, never throws. */
  destroy(): Promise<void>;
}

const live = new Set<Switch>();

function ip(args: string[], opts?: RunOpts): Promise<RunResult> {
  return run('ip', args, opts);
}

/** Creates a switch; on any failure, removes what was already made and rethrows. */
export async function createSwitch({ subnetPrefix, ipv6Prefix, mtu = 1500, parentName }: SwitchOpts): Promise<Switch> {
  if (!/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(subnetPrefix) || subnetPrefix.split('.').some((o) => +o > 255)) {
    throw new Error(`subnetPrefix must be three octets like '10.231.5', got '${subnetPrefix}'`);
  }
  if (ipv6Prefix !== undefined && !/^[0-9a-f:]+::$/i.test(ipv6Prefix)) {
    throw new Error(`ipv6Prefix must end in '::', like 'fd31:231:5::', got '${ipv6Prefix}'`);
  }
  if (parentName !== undefined && (!/^[a-z][a-z0-9]{1,12}$/.test(parentName) || /^(eth0|docker0)$/.test(parentName)))
    throw new Error(`parentName must be a short plain name other than eth0 and docker0, got '${parentName}'`);
  const id = randomBytes(4).toString('hex'); // tsmv + 8 hex = 12 chars, + 'p' = 13
  const parent = parentName ?? `${LINK_PREFIX}${id}`;
  const port = `${parent}p`;
  const nsName = `${runId()}-${id}`;
  const bridge = 'br0';
  const bridgeIp = `${subnetPrefix}.1`;
  const nsExec = (args: string[], opts?: RunOpts) => ip(['-n', nsName, ...args], opts);

  let destroyed = false;
  const sw: Switch = {
    parent,
    port,
    nsName,
    bridge,
    bridgeIp,
    hostIp: `${subnetPrefix}.254`,
    subnet: `${subnetPrefix}.0/24`,
    ...(ipv6Prefix ? { bridgeIp6: `${ipv6Prefix}1`, subnet6: `${ipv6Prefix}/64` } : {}),
    async setHairpin(on) {
      await nsExec(['link', 'set', 'dev', port, 'type', 'bridge_slave', 'hairpin', on ? 'on' : 'off']);
    },
    exec(cmd, opts) {
      return run('ip', ['netns', 'exec', nsName, ...cmd], opts);
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      live.delete(sw);
      await ip(['netns', 'del', nsName], { allowFail: true });
      // Normally gone with the namespace (veth peers die together); make sure.
      await ip(['link', 'del', 'dev', parent], { allowFail: true });
    },
  };
  live.add(sw);
  try {
    await ip(['netns', 'add', nsName]);
    await nsExec(['link', 'set', 'dev', 'lo', 'up']);
    await ip([
      'link',
      'add',
      parent,
      'mtu',
      String(mtu),
      'type',
      'veth',
      'peer',
      'name',
      port,
      'mtu',
      String(mtu),
      'netns',
      nsName,
    ]);
    await nsExec(['link', 'add', bridge, 'mtu', String(mtu), 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
    await nsExec(['link', 'set', 'dev', port, 'master', bridge]);
    await nsExec(['addr', 'add', `${bridgeIp}/24`, 'dev', bridge]);
    if (ipv6Prefix) await nsExec(['addr', 'add', `${ipv6Prefix}1/64`, 'dev', bridge, 'nodad']);
    await nsExec(['link', 'set', 'dev', bridge, 'up']);
    await nsExec(['link', 'set', 'dev', port, 'up']);
    await ip(['addr', 'add', `${sw.hostIp}/24`, 'dev', parent]);
    if (ipv6Prefix) await ip(['addr', 'add', `${ipv6Prefix}fe/64`, 'dev', parent, 'nodad']);
    await ip(['link', 'set', 'dev', parent, 'up']);
    await assertLocalRoute(`${subnetPrefix}.10`, parent);
    if (ipv6Prefix) await assertLocalRoute(`${ipv6Prefix}10`, parent);
  } catch (err) {
    await sw.destroy();
    throw err;
  }
  return sw;
}

/** Creates a switch, runs fn, and destroys the switch whatever happens. */
export async function withSwitch<T>(opts: SwitchOpts, fn: (sw: Switch) => Promise<T>): Promise<T> {
  const sw = await createSwitch(opts);
  try {
    return await fn(sw);
  } finally {
    await sw.destroy();
  }
}

/** Destroys every switch this process created and has not destroyed yet. */
export async function destroyAllSwitches(): Promise<void> {
  for (const sw of [...live]) await sw.destroy();
}

/**
 * Removes what this run's switches left (a test process that died before destroying them): the namespaces named after
 * this run's id, and the parents this process recorded. Touches nothing else. Returns what it removed.
 */
export async function cleanupLeftovers(): Promise<{ netns: string[] }> {
  const netns = (await ip(['netns', 'list'], { allowFail: true })).stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(`${runId()}-`));
  for (const n of netns) await ip(['netns', 'del', n], { allowFail: true });
  await destroyAllSwitches();
  return { netns };
}

/**
 * The link packets to address go out of, when the route to it is a local one (a link here, no gateway); undefined
 * when there is no route at all (a send then fails here). Throws for a route through a gateway: that leaves the lab.
 */
export async function localRouteDev(address: string): Promise<string | undefined> {
  const res = await ip(['-j', 'route', 'get', address], { allowFail: true });
  if (res.code !== 0) return undefined;
  const routes = JSON.parse(res.stdout) as Array<{ dev?: string; gateway?: string }>;
  if (routes.length !== 1 || !routes[0].dev || routes[0].gateway !== undefined)
    throw new Error(`the route to ${address} is not local (it would leave through a gateway): ${res.stdout.trim()}`);
  return routes[0].dev;
}

/** Throws unless packets to address go straight out of link dev (no gateway): none of them leaves the lab. */
export async function assertLocalRoute(address: string, dev: string): Promise<void> {
  const via = await localRouteDev(address);
  if (via !== dev) throw new Error(`the route to ${address} is ${via ? `on ${via}` : 'missing'}, not local on ${dev}`);
}
