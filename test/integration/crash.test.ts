// Crash safety, proven by injection: the daemon is killed (SIGKILL) at every step of every operation, restarted,
// checked, and Docker's retry of the interrupted request must succeed.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endpointLinkName } from '../../src/driver/endpoint-naming';
import { shimName } from '../../src/driver/host-access';
import { DhcpLab, inNs } from '../helpers/dhcp-lab';
import {
  assertPrivateNetns,
  deleteLink,
  deleteLinksByPrefix,
  ip,
  linkNames,
  uniqueName,
  vethPair,
} from '../helpers/net';
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
  body: () => ({
    NetworkID: NET,
    EndpointID: EP,
    Interface: { Address: '10.60.0.9/24', MacAddress: '02:42:0a:3c:00:09' },
  }),
};
const endpointCall = (method: string): Step => ({
  method: `NetworkDriver.${method}`,
  body: () => ({ NetworkID: NET, EndpointID: EP }),
});
const join_ = endpointCall('Join');
const deleteEndpoint = endpointCall('DeleteEndpoint');
const deleteNetwork: Step = { method: 'NetworkDriver.DeleteNetwork', body: () => ({ NetworkID: NET }) };

/** The DHCP network hangs off the parent of a dnsmasq lab (made in beforeAll). */
let dhcpLab: DhcpLab;
const DHCP_MAC = '02:42:0a:3d:00:09';
const dhcpNetwork: Step = {
  method: 'NetworkDriver.CreateNetwork',
  body: () => ({
    NetworkID: NET,
    Options: { 'com.docker.network.generic': { parent: dhcpLab.parent, dhcp: 'true' } },
    IPv4Data: [{ AddressSpace: 'null', Pool: '0.0.0.0/0' }],
  }),
};
const dhcpEndpoint: Step = {
  method: 'NetworkDriver.CreateEndpoint',
  body: () => ({ NetworkID: NET, EndpointID: EP, Interface: { MacAddress: DHCP_MAC } }),
};
/** An IPv6-only DHCP network on the same parent: the lab's dnsmasq also advertises the M flag and leases DHCPv6. */
const DHCP6_PREFIX = 'fd78:0:0:6::';
const DHCP6_MAC = '02:42:0a:3d:00:06';
const dhcp6Network: Step = {
  method: 'NetworkDriver.CreateNetwork',
  body: () => ({
    NetworkID: NET,
    Options: {
      'com.docker.network.enable_ipv6': true,
      'com.docker.network.enable_ipv4': false,
      'com.docker.network.generic': { parent: dhcpLab.parent, dhcp: 'true' },
    },
    IPv4Data: [],
    IPv6Data: [{ AddressSpace: 'null', Pool: '::/0' }],
  }),
};
const dhcp6Endpoint: Step = {
  method: 'NetworkDriver.CreateEndpoint',
  body: () => ({ NetworkID: NET, EndpointID: EP, Interface: { AddressIPv6: '', MacAddress: DHCP6_MAC } }),
};

/**
 * Docker 20.10 retries a request whose connection broke with an empty body, which fails: a create cut short before
 * its answer never happened for Docker, and the start must undo it ('undone'); from the point where the answer may
 * have gone out, the plugin keeps it ('done'). Deletes always roll forward: Docker forgets an endpoint even when
 * DeleteEndpoint fails.
 */
type Outcome = 'undone' | 'done';
interface Op {
  name: string;
  setup: Step[];
  step: Step;
  points: [string, Outcome][];
}

const WALK: Op[] = [
  {
    name: 'CreateNetwork (internal parent)',
    setup: [],
    step: internalWithHostAccess,
    points: [
      ['network-recorded', 'undone'],
      ['link-created', 'undone'],
      ['parent-ready', 'undone'],
      ['shim-ready', 'undone'],
      ['network-answered', 'done'],
    ],
  },
  {
    name: 'CreateNetwork (host_access shim)',
    setup: [],
    step: onParentWithHostAccess,
    points: [
      ['network-recorded', 'undone'],
      ['link-created', 'undone'],
      ['shim-ready', 'undone'],
      ['network-answered', 'done'],
    ],
  },
  // Without DHCP the record is written once, answered: 'endpoint-recorded' is its content synced, not yet renamed.
  {
    name: 'CreateEndpoint',
    setup: [onParentWithHostAccess],
    step: createEndpoint,
    points: [
      ['endpoint-recorded', 'undone'],
      ['endpoint-answered', 'done'],
    ],
  },
  // A lease taken but not yet recorded cannot be released at start (nothing names it): it expires on the server.
  {
    name: 'CreateEndpoint (DHCP)',
    setup: [dhcpNetwork],
    step: dhcpEndpoint,
    points: [
      ['endpoint-recorded', 'undone'],
      ['dhcp-leased', 'undone'],
      ['lease-recorded', 'undone'],
      ['endpoint-answered', 'done'],
    ],
  },
  // The same for a DHCPv6 lease: the record is written as the exchange starts, and with the lease as its check begins.
  {
    name: 'CreateEndpoint (DHCPv6)',
    setup: [dhcp6Network],
    step: dhcp6Endpoint,
    points: [
      ['endpoint-recorded', 'undone'],
      ['lease6-recorded', 'undone'],
      ['endpoint-answered', 'done'],
    ],
  },
  // A failed Join is followed by Docker's DeleteEndpoint: the endpoint stays until then.
  {
    name: 'Join',
    setup: [onParentWithHostAccess, createEndpoint],
    step: join_,
    points: [
      ['link-created', 'undone'],
      ['endpoint-link-ready', 'undone'],
      ['route-added', 'undone'],
    ],
  },
  {
    name: 'DeleteEndpoint',
    setup: [onParentWithHostAccess, createEndpoint, join_],
    step: deleteEndpoint,
    points: [
      ['endpoint-forgotten', 'done'],
      ['route-removed', 'done'],
    ],
  },
  {
    name: 'DeleteNetwork',
    setup: [internalWithHostAccess, createEndpoint, join_, deleteEndpoint],
    step: deleteNetwork,
    points: [
      ['network-forgotten', 'done'],
      ['shim-removed', 'done'],
    ],
  },
];

const SUBNET = '10.61.0.0/24';
const POOL = `tsmacvlan:${SUBNET}`;
const ipamCall = (method: string, body: Record<string, unknown>): Step => ({
  method: `IpamDriver.${method}`,
  body: () => body,
});
const requestPool = ipamCall('RequestPool', {
  AddressSpace: 'local',
  Pool: SUBNET,
  SubPool: '',
  Options: {},
  V6: false,
});
const requestGateway = ipamCall('RequestAddress', {
  PoolID: POOL,
  Address: '10.61.0.1',
  Options: { RequestAddressType: 'com.docker.network.gateway' },
});
const requestStatic = ipamCall('RequestAddress', { PoolID: POOL, Address: '10.61.0.77', Options: {} });
const requestDynamic = ipamCall('RequestAddress', { PoolID: POOL, Address: '', Options: {} });
const releaseStatic = ipamCall('ReleaseAddress', { PoolID: POOL, Address: '10.61.0.77' });
const releasePool = ipamCall('ReleasePool', { PoolID: POOL });

/** IPAM operations; `held` says which address the operation decides (checked by asking for it again). */
const IPAM_WALK: (Op & { held?: string })[] = [
  {
    name: 'RequestPool (new subnet)',
    setup: [],
    step: requestPool,
    points: [
      ['ipam-snapshot-written', 'undone'],
      ['ipam-saved', 'undone'],
      ['ipam-answered', 'done'],
    ],
  },
  {
    name: 'RequestAddress (gateway)',
    setup: [requestPool],
    step: requestGateway,
    held: '10.61.0.1',
    points: [
      ['ipam-saved', 'undone'],
      ['ipam-answered', 'done'],
    ],
  },
  {
    name: 'RequestAddress (static)',
    setup: [requestPool, requestGateway],
    step: requestStatic,
    held: '10.61.0.77',
    points: [
      ['ipam-saved', 'undone'],
      ['ipam-answered', 'done'],
    ],
  },
  {
    name: 'RequestAddress (dynamic)',
    setup: [requestPool, requestGateway],
    step: requestDynamic,
    held: '10.61.0.2',
    points: [
      ['ipam-saved', 'undone'],
      ['ipam-answered', 'done'],
    ],
  },
  {
    name: 'ReleaseAddress',
    setup: [requestPool, requestGateway, requestStatic],
    step: releaseStatic,
    held: '10.61.0.77',
    points: [['ipam-saved', 'done']],
  },
  {
    name: 'ReleasePool (the last reference)',
    setup: [requestPool],
    step: releasePool,
    points: [['ipam-saved', 'done']],
  },
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

function readRecords(dir: string): {
  networks: { id: string; parent: string; hostAccess?: string }[];
  endpoints: { id: string }[];
} {
  const read = (sub: string) => {
    try {
      return readdirSync(join(dir, sub))
        .filter((f) => f.endsWith('.json'))
        .map((f) => JSON.parse(readFileSync(join(dir, sub, f), 'utf8')));
    } catch {
      return [];
    }
  };
  return { networks: read('networks'), endpoints: read('endpoints') };
}

/** The temporary files of record writes in the state dir. */
function unfinishedWrites(dir: string): string[] {
  return ['networks', 'endpoints'].flatMap((sub) =>
    existsSync(join(dir, sub)) ? readdirSync(join(dir, sub)).filter((f) => f.endsWith('.tmp')) : [],
  );
}

describe('crash at every step of every operation', () => {
  let parent: string;
  let daemon: Daemon | undefined;
  let pointsWalked = 0;

  beforeAll(async () => {
    assertPrivateNetns();
    parent = uniqueName('par');
    vethPair(parent);
    dhcpLab = await DhcpLab.create('tmvH');
    inNs(dhcpLab.switchNs, 'ip', '-6', 'addr', 'add', `${DHCP6_PREFIX}1/64`, 'dev', 'br0', 'nodad');
    await dhcpLab.startServer(['--enable-ra', `--dhcp-range=${DHCP6_PREFIX}10,${DHCP6_PREFIX}ff,64,2m`]);
  });
  afterAll(async () => {
    daemon?.child.kill('SIGKILL');
    deleteLink(parent);
    await dhcpLab?.close();
    console.log(`crash points walked: ${pointsWalked}`);
  });

  /** Starts a daemon on a fresh state dir, runs `setup`, then runs `step` in a daemon that dies at `point`. */
  async function crashAt(dir: string, setup: Step[], step: Step, point: string) {
    const socket = join(dir, 'p.sock');
    const start = async (env: NodeJS.ProcessEnv = {}) => {
      daemon = spawnDaemon(
        ['serve', '--socket', socket, '--state-dir', join(dir, 'state'), '--log-level', 'warn'],
        env,
      );
      await waitForSocket(socket, daemon);
      return daemon;
    };
    let d = await start();
    for (const s of setup) expect((await post(socket, s.method, s.body(parent))).status).toBe(200);
    d.child.kill('SIGTERM');
    await d.exited;

    d = await start({ TSMACVLAN_CRASH_AT: point });
    await expect(post(socket, step.method, step.body(parent))).rejects.toThrow(/socket hang up|ECONNRESET/);
    await d.exited;
    expect(d.child.signalCode).toBe('SIGKILL');
    pointsWalked++;

    // Restarted, the state loads, and Docker's retry (an empty body) gets an error that says what happened.
    await start();
    const retry = await post(socket, step.method);
    expect(retry.status).toBe(400);
    expect(retry.json.Err).toMatch(/empty body.*cut short.*Run the command again/);
    return socket;
  }

  const cases = WALK.flatMap((op) => op.points.map(([point, outcome]) => ({ ...op, point, outcome })));
  it.each(cases)(
    "$name, killed at $point: $outcome after the restart, and the user's retry succeeds",
    async ({ setup, step, point, outcome }) => {
      const dir = mkdtempSync(join(tmpdir(), 'tsmv-crash-'));
      try {
        const socket = await crashAt(dir, setup, step, point);
        // Every link of the plugin's is one the state owns.
        const { networks, endpoints } = readRecords(join(dir, 'state'));
        const owned = new Set([
          ...endpoints.map((e) => endpointLinkName(e.id)),
          ...networks.flatMap((n) => [
            n.parent,
            'tsmvp' + n.id.slice(0, 10),
            ...(n.hostAccess ? [shimName(n.id)] : []),
          ]),
        ]);
        await eventually(() => expect(linkNames().filter((n) => n.startsWith('tsmv') && !owned.has(n))).toEqual([]));
        expect([...networks, ...endpoints].filter((r) => 'unanswered' in r)).toEqual([]);
        expect(unfinishedWrites(join(dir, 'state'))).toEqual([]); // the start removed what a write cut short left

        // The operation is undone or done, as promised.
        const hasNetwork = networks.some((n) => n.id === NET);
        const hasEndpoint = endpoints.some((e) => e.id === EP);
        if (step.method.endsWith('CreateNetwork')) expect(hasNetwork).toBe(outcome === 'done');
        if (step.method.endsWith('CreateEndpoint')) expect(hasEndpoint).toBe(outcome === 'done');
        if (step === dhcpEndpoint) {
          // A recorded lease of an unanswered endpoint is released at start; an answered one is kept, on both sides.
          const onServer = () => dhcpLab.serverLeases().some((l) => l.mac === DHCP_MAC);
          if (point === 'lease-recorded') await eventually(() => expect(onServer()).toBe(false));
          if (outcome === 'done') expect(onServer()).toBe(true);
          if (outcome === 'done') expect(endpoints.find((e) => e.id === EP)).toHaveProperty('lease.mac', DHCP_MAC);
        }
        if (step === dhcp6Endpoint) {
          // dnsmasq's DHCPv6 lease lines name the client by its DUID (DUID-LL of the endpoint's MAC).
          const duid = `00:03:00:01:${DHCP6_MAC}`;
          const onServer = () => dhcpLab.serverLeases().some((l) => l.clientId === duid && l.address.includes(':'));
          if (point === 'lease6-recorded') await eventually(() => expect(onServer()).toBe(false));
          if (outcome === 'done') expect(onServer()).toBe(true);
          if (outcome === 'done')
            expect(endpoints.find((e) => e.id === EP)).toHaveProperty('dhcp6.lease.mac', DHCP6_MAC);
        }
        if (step === join_) {
          // Docker follows a failed Join with DeleteEndpoint, then the user's retry makes a new endpoint and joins it.
          expect((await post(socket, deleteEndpoint.method, deleteEndpoint.body(parent))).status).toBe(200);
          await eventually(() => expect(linkNames()).not.toContain(endpointLinkName(EP)));
          expect((await post(socket, createEndpoint.method, createEndpoint.body(parent))).status).toBe(200);
        }
        if (step === deleteEndpoint) {
          expect(hasEndpoint).toBe(false);
          expect(ip('-4', 'route', 'show')).not.toContain(`10.60.0.9 dev ${shimName(NET)}`); // the start removed the host route
        }
        if (step === deleteNetwork) expect(hasNetwork).toBe(false);

        // The user's retry (the full request, as a re-run of the command sends it) succeeds where the operation was undone.
        if (outcome === 'undone') expect((await post(socket, step.method, step.body(parent))).status).toBe(200);
        if (step === join_) expect(ip('-4', 'route', 'show')).toContain(`10.60.0.9 dev ${shimName(NET)}`);
        if (step === deleteEndpoint || step === deleteNetwork)
          await eventually(() => expect(linkNames()).not.toContain(endpointLinkName(EP)));
        if (step === deleteNetwork)
          await eventually(() => expect(linkNames().filter((n) => n.startsWith('tsmv'))).toEqual([]));

        // And everything can still be taken down to nothing.
        await post(socket, deleteEndpoint.method, deleteEndpoint.body(parent));
        await post(socket, deleteNetwork.method, deleteNetwork.body(parent));
        await eventually(() => expect(linkNames().filter((n) => n.startsWith('tsmv'))).toEqual([]));
        expect(readRecords(join(dir, 'state'))).toEqual({ networks: [], endpoints: [] });
      } finally {
        daemon?.child.kill('SIGKILL');
        deleteLinksByPrefix('tsmv');
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  const ipamCases = IPAM_WALK.flatMap((op) => op.points.map(([point, outcome]) => ({ ...op, point, outcome })));
  it.each(ipamCases)(
    '$name, killed at $point: $outcome after the restart, no address held twice',
    async ({ setup, step, point, outcome, held }) => {
      const dir = mkdtempSync(join(tmpdir(), 'tsmv-crash-'));
      const journal = () => existsSync(join(dir, 'state', 'ipam', '10.61.0.0_24.jnl'));
      try {
        const socket = await crashAt(dir, setup, step, point);
        const ask = (address: string) =>
          post(socket, 'IpamDriver.RequestAddress', { PoolID: POOL, Address: address, Options: {} });
        const released = step === releaseStatic || step === releasePool;
        if (step === requestPool) {
          expect(journal()).toBe(outcome === 'done');
        } else if (step === releasePool) {
          expect(journal()).toBe(false);
        } else if (held) {
          // The address is held exactly when the operation took effect: asking for it again tells.
          const takenNow = outcome === 'done' ? !released : released;
          const again = await ask(held);
          expect(again.status, JSON.stringify(again.json)).toBe(takenNow ? 500 : 200);
          if (takenNow) expect(again.json.Err).toMatch(/already in use/);
          else expect((await post(socket, releaseStatic.method, { PoolID: POOL, Address: held })).status).toBe(200);
        }
        // The user's retry succeeds where the operation was undone; then everything goes, and so does the state file.
        if (outcome === 'undone') expect((await post(socket, step.method, step.body(parent))).status).toBe(200);
        if (step !== releasePool) {
          for (const address of ['10.61.0.1', '10.61.0.2', '10.61.0.77'])
            await post(socket, 'IpamDriver.ReleaseAddress', { PoolID: POOL, Address: address });
          expect((await post(socket, releasePool.method, releasePool.body(parent))).status).toBe(200);
        }
        expect(journal()).toBe(false); // exactly one reference was held: one ReleasePool dropped the pool
      } finally {
        daemon?.child.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it('walks every crash point the source declares', () => {
    const declared = new Set<string>();
    const scan = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        // The cluster table's points are walked by test/integration/cluster/crash.test.ts, which checks them.
        if (entry.isDirectory()) {
          if (entry.name !== 'cluster') scan(path);
        } else for (const m of readFileSync(path, 'utf8').matchAll(/crashPoint\('([^']+)'\)/g)) declared.add(m[1]);
      }
    };
    scan(join(__dirname, '../../src'));
    const walked = new Set([...cases, ...ipamCases].map((c) => c.point));
    // The start-up migration's points are walked by test/integration/state-migration.test.ts, which checks them.
    expect([...declared].filter((p) => !walked.has(p) && !p.startsWith('migration-'))).toEqual([]);
  });
});
