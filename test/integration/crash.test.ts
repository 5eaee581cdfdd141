// Crash safety, proven by injection: the daemon is killed (SIGKILL) at every step of every operation, restarted,
// checked, and Docker's retry of the interrupted request must succeed.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endpointLinkName } from '../../src/endpoint';
import { shimName } from '../../src/host-access';
import { assertPrivateNetns, deleteLink, ip, linkNames, uniqueName, vethPair } from '../helpers/net';
import { post, spawnDaemon, waitForSocket, type Daemon } from '../helpers/serve';

const NET = 'n0000000000000000crash';
const EP = 'e0000000000000000crash';

interface Step {
  method: string;
  body: (parent: string) => Record<string, unknown>;
}

const createNetwork = (generic: (parent: string) => Record<string, string>): Step => ({
  method: 'NetworkDriver.CreateNetwork',
  body: (parent) => ({
    NetworkID: NET,
    Options: { 'com.docker.network.generic': generic(parent) },
    IPv4Data: [{ Pool: '10.60.0.0/24', Gateway: '10.60.0.1/24', AuxAddresses: { host: '10.60.0.250/24' } }],
  }),
});
const onParentWithHostAccess = createNetwork((parent) => ({ parent, host_access: '10.60.0.250' }));
const internalWithHostAccess = createNetwork(() => ({ host_access: '10.60.0.250' }));
const createEndpoint: Step = {
  method: 'NetworkDriver.CreateEndpoint',
  body: () => ({ NetworkID: NET, EndpointID: EP, Interface: { Address: '10.60.0.9/24', MacAddress: '02:42:0a:3c:00:09' } }),
};
const endpointCall = (method: string): Step => ({ method: `NetworkDriver.${method}`, body: () => ({ NetworkID: NET, EndpointID: EP }) });
const join_ = endpointCall('Join');
const deleteEndpoint = endpointCall('DeleteEndpoint');
const deleteNetwork: Step = { method: 'NetworkDriver.DeleteNetwork', body: () => ({ NetworkID: NET }) };

/** Each operation, what comes before it, and the points inside it where the process dies. */
const WALK: { name: string; setup: Step[]; step: Step; points: string[] }[] = [
  { name: 'CreateNetwork (internal parent)', setup: [], step: internalWithHostAccess, points: ['network-recorded', 'link-created', 'parent-ready', 'shim-ready'] },
  { name: 'CreateNetwork (host_access shim)', setup: [], step: onParentWithHostAccess, points: ['network-recorded', 'link-created', 'shim-ready'] },
  { name: 'CreateEndpoint', setup: [onParentWithHostAccess], step: createEndpoint, points: ['endpoint-recorded'] },
  { name: 'Join', setup: [onParentWithHostAccess, createEndpoint], step: join_, points: ['link-created', 'endpoint-link-ready', 'route-added'] },
  { name: 'DeleteEndpoint', setup: [onParentWithHostAccess, createEndpoint, join_], step: deleteEndpoint, points: ['route-removed', 'endpoint-forgotten'] },
  { name: 'DeleteNetwork', setup: [internalWithHostAccess, createEndpoint, join_, deleteEndpoint], step: deleteNetwork, points: ['network-forgotten', 'shim-removed'] },
];

/** The daemon deletes endpoint links just after answering: a check that must hold within 2 s. */
async function eventually(check: () => void): Promise<void> {
  const deadline = Date.now() + 2000;
  for (;;) {
    try {
      return check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

function readRecords(dir: string): { networks: { id: string; parent: string; hostAccess?: string }[]; endpoints: { id: string }[] } {
  const read = (sub: string) => {
    try {
      return readdirSync(join(dir, sub)).filter((f) => f.endsWith('.json')).map((f) => JSON.parse(readFileSync(join(dir, sub, f), 'utf8')));
    } catch {
      return [];
    }
  };
  return { networks: read('networks'), endpoints: read('endpoints') };
}

describe('crash at every step of every operation', () => {
  let parent: string;
  let daemon: Daemon | undefined;
  let pointsWalked = 0;

  beforeAll(() => {
    assertPrivateNetns();
    parent = uniqueName('par');
    vethPair(parent);
  });
  afterAll(() => {
    daemon?.child.kill('SIGKILL');
    deleteLink(parent);
    console.log(`crash points walked: ${pointsWalked}`);
  });

  const cases = WALK.flatMap((op) => op.points.map((point) => ({ ...op, point })));
  it.each(cases)('$name, killed at $point: recovers, and the retry succeeds', async ({ setup, step, point }) => {
    const dir = mkdtempSync(join(tmpdir(), 'tsmv-crash-'));
    const socket = join(dir, 'p.sock');
    const start = async (env: NodeJS.ProcessEnv = {}) => {
      daemon = spawnDaemon(['serve', '--socket', socket, '--state-dir', join(dir, 'state'), '--log-level', 'warn'], env);
      await waitForSocket(socket, daemon);
      return daemon;
    };
    try {
      let d = await start();
      for (const s of setup) expect((await post(socket, s.method, s.body(parent))).status).toBe(200);
      d.child.kill('SIGTERM');
      await d.exited;

      d = await start({ TSMACVLAN_CRASH_AT: point });
      await expect(post(socket, step.method, step.body(parent))).rejects.toThrow(/socket hang up|ECONNRESET/);
      await d.exited;
      expect(d.child.signalCode).toBe('SIGKILL');
      pointsWalked++;

      // After the restart: the state loads, and every link of the plugin's is one the state owns.
      d = await start();
      const { networks, endpoints } = readRecords(join(dir, 'state'));
      const owned = new Set([
        ...endpoints.map((e) => endpointLinkName(e.id)),
        ...networks.flatMap((n) => [n.parent, 'tsmvp' + n.id.slice(0, 10), ...(n.hostAccess ? [shimName(n.id)] : [])]),
      ]);
      expect(linkNames().filter((n) => n.startsWith('tsmv') && !owned.has(n))).toEqual([]);

      // Docker's retry goes through, and leaves what the operation promises.
      expect((await post(socket, step.method, step.body(parent))).status).toBe(200);
      if (step === join_) expect(ip('-4', 'route', 'show')).toContain(`10.60.0.9 dev ${shimName(NET)}`);
      if (step === deleteEndpoint || step === deleteNetwork) await eventually(() => expect(linkNames()).not.toContain(endpointLinkName(EP)));
      if (step === deleteNetwork) await eventually(() => expect(linkNames().filter((n) => n.startsWith('tsmv'))).toEqual([]));

      // And everything can still be taken down to nothing.
      await post(socket, deleteEndpoint.method, deleteEndpoint.body(parent));
      await post(socket, deleteNetwork.method, deleteNetwork.body(parent));
      await eventually(() => expect(linkNames().filter((n) => n.startsWith('tsmv'))).toEqual([]));
      expect(readRecords(join(dir, 'state'))).toEqual({ networks: [], endpoints: [] });
    } finally {
      daemon?.child.kill('SIGKILL');
      for (const name of linkNames().filter((n) => n.startsWith('tsmv'))) deleteLink(name);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('walks every crash point the source declares', () => {
    const declared = new Set<string>();
    const scan = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) scan(path);
        else for (const m of readFileSync(path, 'utf8').matchAll(/crashPoint\('([^']+)'\)/g)) declared.add(m[1]);
      }
    };
    scan(join(__dirname, '../../src'));
    const walked = new Set(cases.map((c) => c.point));
    expect([...declared].filter((p) => !walked.has(p))).toEqual([]);
  });
});
