// A 3-node Docker Swarm in the multi-host lab (test/lab/swarm-lab.ts), the managed plugin on every node pointed at one
// etcd, and a service on a `--scope swarm --config-from` network whose config-only networks are identical on every
// node (one subnet, gateway and --ip-range, the plugin as IPAM): tasks on different nodes get distinct addresses and
// reach each other; scaling up and down never doubles an address (checked at every poll) and frees what it drops in
// etcd; a drained node's tasks move and its claims go; the plugin killed -9 the moment it takes an address for a
// starting task leaves no duplicate and no leak; the per-node --ip-range way still works; a node that leaves the swarm
// frees its tasks' addresses; and at the end nothing is left. Every etcd key is under the lab's own prefix, and etcd
// serves TLS only, through the plugin's `tls` mount.
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LabHost, LAN } from '../lab/multi-host';
import { SWARM_PLUGIN, SwarmLab } from '../lab/swarm-lab';

const IMAGE = process.env.TSMV_TEST_IMAGE ?? 'tsmacvlan-test/busybox:latest';
const GATEWAY = '10.201.0.1';
const RANGE = '10.201.0.128/27';
const IN_RANGE = /^10\.201\.0\.(12[89]|1[3-5]\d)$/;
const SERVICE = 'web';
const NET = 'lan';
let swarm: SwarmLab | undefined;

interface Task {
  host: LabHost;
  container: string;
  address: string;
}

const manager = () => swarm!.hosts[0];

/** The running containers of `service` on every node, with their address on `network`. */
async function tasks(service = SERVICE, network = NET): Promise<Task[]> {
  const found: Task[] = [];
  for (const host of swarm!.hosts) {
    const filter = `label=com.docker.swarm.service.name=${service}`;
    const ids = (await host.docker('ps', '-q', '--filter', filter)).split('\n').filter(Boolean);
    for (const container of ids) {
      const format = `{{with index .NetworkSettings.Networks "${network}"}}{{.IPAddress}}{{end}}`;
      const address = (await host.docker('inspect', '-f', format, container).catch(() => '')).trim();
      if (address) found.push({ host, container, address });
    }
  }
  return found;
}

/** Throws at once if two running tasks share an address: a duplicate is never "not yet". */
function assertDistinct(running: Task[]): void {
  const seen = new Map<string, Task>();
  for (const t of running) {
    const other = seen.get(t.address);
    if (other)
      throw new Error(
        `duplicate address ${t.address}: ${other.host.name}/${other.container} and ${t.host.name}/${t.container}`,
      );
    seen.set(t.address, t);
  }
}

/**
 * Waits until exactly `replicas` tasks run with an address (and `settled` holds of them), checking for duplicates at
 * every poll.
 */
async function converge(replicas: number, timeoutMs = 120_000, settled = (_: Task[]) => true): Promise<Task[]> {
  let running: Task[] = [];
  let polls = 0;
  await swarm!.waitFor(
    async () => {
      running = await tasks();
      polls++;
      assertDistinct(running);
      return running.length === replicas && settled(running);
    },
    timeoutMs,
    `${replicas} running tasks of ${SERVICE} (last poll: ${running.length})`,
  );
  console.log(`${replicas} tasks after ${polls} polls, no duplicate: ${byNode(running)}`);
  return running;
}

/** "h1: a b; h2: c; h3: " */
function byNode(running: Task[]): string {
  const on = (h: LabHost) => running.filter((t) => t.host === h).map((t) => t.address);
  return swarm!.hosts.map((h) => `${h.name}: ${on(h).join(' ')}`).join('; ');
}

/** The container claims etcd holds in the range, as address → owner instance. */
async function containerClaims(): Promise<Map<string, string>> {
  const held = new Map<string, string>();
  for (const { address, claims } of await swarm!.claims(LAN))
    for (const c of claims) if (c.kind === 'container') held.set(address, c.owner);
  return held;
}

/** Waits until etcd's container claims are exactly the running tasks' addresses, each owned by its task's node. */
async function claimsMatch(running: Task[]): Promise<void> {
  const want = new Map(running.map((t) => [t.address, swarm!.instanceOf(t.host)]));
  let held = new Map<string, string>();
  const same = () => held.size === want.size && [...want].every(([a, owner]) => held.get(a) === owner);
  await swarm!
    .waitFor(async () => ((held = await containerClaims()), same()), 30_000, 'the claims in etcd')
    .catch(() => undefined); // the assertion below shows the difference
  expect(Object.fromEntries(held)).toEqual(Object.fromEntries(want));
}

/** Claims of any kind (container, gateway) that `host`'s plugin holds in etcd. */
async function claimsOf(host: LabHost): Promise<string[]> {
  const owner = swarm!.instanceOf(host);
  return (await swarm!.claims(LAN)).flatMap(({ address, claims }) =>
    claims.filter((c) => c.owner === owner).map((c) => `${c.kind} ${address}`),
  );
}

/** The plugin's links left in `host`'s namespace (an endpoint's link is inside its container while it runs). */
function pluginLinks(host: LabHost): string[] {
  const out = execFileSync('ip', ['-n', host.netns, '-o', 'link', 'show'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 30_000,
  });
  return [...out.matchAll(/^\d+: (tsmv\w+)[:@]/gm)].map((m) => m[1]);
}

/** The endpoint records in `host`'s plugin state. */
const endpointRecords = (host: LabHost) => readdirSync(join(swarm!.stateDir(host), 'endpoints'));

async function ping(from: Task, to: Task): Promise<void> {
  const out = await from.host.docker('exec', from.container, 'ping', '-c', '1', '-W', '2', to.address);
  expect(out).toMatch(/ 0% packet loss/);
}

beforeAll(async () => {
  swarm = await SwarmLab.create(3, process.env.TSMV_ENGINE_BIN);
  for (const host of swarm.hosts) {
    // The same config-only network on every node: no per-node carving, etcd keeps the range's addresses apart.
    await host.docker(
      ...`network create --config-only --ipam-driver ${SWARM_PLUGIN} --subnet ${LAN} --gateway ${GATEWAY}`.split(' '),
      ...`--ip-range ${RANGE} -o parent=eth1 ${NET}-cfg`.split(' '),
    );
  }
  await manager().docker(
    ...`network create -d ${SWARM_PLUGIN} --scope swarm --config-from ${NET}-cfg ${NET}`.split(' '),
  );
}, 600_000);

afterAll(async () => {
  await swarm?.destroy();
}, 600_000);

describe('a swarm service over three nodes on one shared --ip-range', () => {
  it('6 replicas over 3 nodes: 6 distinct addresses from the range, claimed in etcd, reachable across nodes', async () => {
    await manager().docker(
      ...`service create --detach --quiet --name ${SERVICE} --network ${NET} --endpoint-mode dnsrr`.split(' '),
      ...`--replicas 6 --stop-grace-period 1s ${IMAGE} sleep 3600`.split(' '),
    );
    const running = await converge(6, 180_000);
    for (const t of running) expect(t.address).toMatch(IN_RANGE);
    const nodes = swarm!.hosts.filter((h) => running.some((t) => t.host === h));
    expect(nodes).toHaveLength(3);
    await claimsMatch(running);
    // One task per node pings one on each other node: the LAN (the lab's bridge) carries macvlan traffic across.
    const one = nodes.map((h) => running.find((t) => t.host === h)!);
    for (const from of one) for (const to of one) if (from !== to) await ping(from, to);
  });

  it('scaled to 12 and back to 3: no duplicate at any poll, and what was dropped is free in etcd', async () => {
    await manager().docker('service', 'scale', '--detach', `${SERVICE}=12`);
    await claimsMatch(await converge(12));
    await manager().docker('service', 'scale', '--detach', `${SERVICE}=3`);
    await claimsMatch(await converge(3));
  });
});

describe('a swarm node drained, and its plugin killed', () => {
  it('a drained node: its tasks move to the others, addresses stay distinct, its claims leave etcd', async () => {
    const drained = swarm!.hosts[2];
    await manager().docker('node', 'update', '--availability', 'drain', await swarm!.nodeId(drained));
    const running = await converge(3, 120_000, (r) => r.every((t) => t.host !== drained));
    await claimsMatch(running);
    // The node's copy of the network goes with its last task: its gateway claim too, so it holds nothing.
    await swarm!.waitFor(async () => (await claimsOf(drained)).length === 0, 30_000, 'no claim of the drained node');
    expect(pluginLinks(drained)).toEqual([]);
    expect(endpointRecords(drained)).toEqual([]);
    await manager().docker('node', 'update', '--availability', 'active', await swarm!.nodeId(drained));
  });

  // Two moments: as etcd commits the address (RequestAddress not yet answered: the plugin's own recovery at restart
  // releases it), and as CreateEndpoint writes its record (Docker has the address: its rollback must release it).
  it('the plugin killed -9 while a task starts on its node, at RequestAddress then at CreateEndpoint: no duplicate, and no leak', async () => {
    // h3 has no task after the drain: the scheduler's spread sends the new ones there first, then one to each node.
    const node = swarm!.hosts[2];
    const scale = (replicas: number) => () =>
      manager().docker('service', 'scale', '--detach', `${SERVICE}=${replicas}`);
    const atClaim = await swarm!.killPluginOnClaim(node, LAN, scale(6));
    await afterKill(node, atClaim.pid, 6, `as it took ${atClaim.address}`);
    const atEndpoint = await swarm!.killPluginOnEndpoint(node, scale(9));
    await afterKill(node, atEndpoint.pid, 9, `as it wrote endpoint record ${atEndpoint.record}`);
  });
});

/**
 * After the plugin on `node` was killed: dockerd starts it again, swarm gets `replicas` tasks running, no duplicate at
 * any poll, and no leak: etcd's container claims are exactly the running tasks' addresses, each owned by its task's
 * node (so the killed start's address is a running task's or free again), and the node keeps no endpoint record or
 * link beyond its running tasks'.
 */
async function afterKill(node: LabHost, pid: number, replicas: number, when: string): Promise<void> {
  await swarm!.waitFor(
    async () => (await swarm!.pluginPid(node).catch(() => pid)) !== pid,
    60_000,
    `dockerd to start the plugin on ${node.name} again`,
  );
  const running = await converge(replicas, 180_000);
  const format = '{{.Name}} {{.CurrentState}} {{.Error}}';
  const failed = (await manager().docker('service', 'ps', '--no-trunc', '--format', format, SERVICE))
    .split('\n')
    .filter((line) => / Failed /.test(line));
  console.log(`plugin ${pid} on ${node.name} killed ${when}; failed tasks:\n${failed.join('\n')}`);
  await claimsMatch(running);
  const onNode = running.filter((t) => t.host === node).length;
  await swarm!
    .waitFor(() => endpointRecords(node).length === onNode, 120_000, `${onNode} endpoint records`)
    .catch(() => {
      const tasks = running.filter((t) => t.host === node).map((t) => t.container);
      expect(
        endpointRecords(node),
        `endpoint records on ${node.name}, whose tasks are ${tasks.join(' ')}`,
      ).toHaveLength(onNode);
    });
  expect(pluginLinks(node)).toEqual([]);
}

describe('the per-node --ip-range way', () => {
  it("a config-only network per node with its own range (Docker's IPAM): each node's task takes from its range", async () => {
    const ranges = swarm!.hosts.map((_, i) => `10.201.0.${64 + 8 * i}/29`);
    for (const [i, host] of swarm!.hosts.entries())
      await host.docker(
        ...`network create --config-only --subnet ${LAN} --gateway ${GATEWAY} --ip-range ${ranges[i]}`.split(' '),
        ...'-o parent=eth1 pn-cfg'.split(' '),
      );
    await manager().docker(...`network create -d ${SWARM_PLUGIN} --scope swarm --config-from pn-cfg pn`.split(' '));
    await manager().docker(
      ...'service create --detach --quiet --name pn --network pn --endpoint-mode dnsrr --mode global'.split(' '),
      ...`--stop-grace-period 1s ${IMAGE} sleep 3600`.split(' '),
    );
    let running: Task[] = [];
    await swarm!.waitFor(async () => (running = await tasks('pn', 'pn')).length === 3, 120_000, '3 tasks of pn');
    assertDistinct(running);
    for (const t of running) {
      const base = 64 + 8 * swarm!.hosts.indexOf(t.host);
      expect(Number(t.address.split('.')[3]) - base).toBeGreaterThanOrEqual(0);
      expect(Number(t.address.split('.')[3]) - base).toBeLessThan(8);
    }
    await ping(running[0], running[1]);
    await manager().docker('service', 'rm', 'pn');
    await swarm!.waitFor(async () => (await tasks('pn', 'pn')).length === 0, 60_000, 'the tasks of pn gone');
    await manager().docker('network', 'rm', 'pn');
    for (const host of swarm!.hosts) await removeWhenFree(host, 'pn-cfg');
  });
});

/** Removes a config-only network once the node's copy of the swarm network made from it is gone (it goes async). */
async function removeWhenFree(host: LabHost, network: string): Promise<void> {
  await swarm!.waitFor(
    () =>
      host.docker('network', 'rm', network).then(
        () => true,
        () => false,
      ),
    60_000,
    `docker network rm ${network} on ${host.name}`,
  );
}

describe('a node that leaves the swarm', () => {
  it('its tasks are removed with it and their addresses freed; the service runs on the others', async () => {
    const leaving = swarm!.hosts[2];
    const before = await tasks();
    expect(before.filter((t) => t.host === leaving).length).toBeGreaterThan(0);
    await leaving.docker('swarm', 'leave');
    const running = await converge(before.length, 120_000, (r) => r.every((t) => t.host !== leaving));
    await claimsMatch(running);
    let held: string[] = [];
    await swarm!
      .waitFor(async () => (held = await claimsOf(leaving)).length === 0, 30_000, 'no claim of the node that left')
      .catch(() => undefined); // the assertion below shows what is left
    expect(held).toEqual([]);
    expect(pluginLinks(leaving)).toEqual([]);
    expect(endpointRecords(leaving)).toEqual([]);
  });
});

describe('at the end', () => {
  it('everything removed: no plugin link or record on any node, no etcd key under the prefix; then no lab namespace', async () => {
    await manager().docker('service', 'rm', SERVICE);
    await swarm!.waitFor(async () => (await tasks()).length === 0, 60_000, `the tasks of ${SERVICE} gone`);
    await manager().docker('network', 'rm', NET);
    for (const host of swarm!.hosts) await removeWhenFree(host, `${NET}-cfg`);
    let keys: string[] = [];
    await swarm!
      .waitFor(async () => (keys = await swarm!.etcdKeys()).length === 0, 30_000, 'no etcd key')
      .catch(() => undefined);
    expect(keys).toEqual([]);
    for (const host of swarm!.hosts) {
      expect(pluginLinks(host)).toEqual([]);
      expect(endpointRecords(host)).toEqual([]);
    }
    const run = swarm!.lab.run;
    const done = swarm!;
    swarm = undefined;
    await done.destroy();
    const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const namespaces = ip('netns', 'list');
    expect(namespaces.split('\n').filter((n) => n.startsWith(`${run}-`))).toEqual([]);
    expect(ip('-o', 'link', 'show')).not.toMatch(/: mhlan0[:@]/);
  });
});
