// `tsmacvlan status` as a process (the built CLI) against the real kernel, in a private network namespace; the networks
// and endpoints are made through the plugin's HTTP API.
import { VERSION } from '../../../src/version';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { endpointLinkName } from '../../../src/driver/endpoint-naming';
import { internalParentName } from '../../../src/driver/parents';
import type { StatusReport } from '../../../src/inspect/status';
import { STATUS_JSON_SCHEMA } from '../../../src/inspect/status-schema';
import { assertPrivateNetns, deleteLink, deleteLinksByPrefix, ip, link, uniqueName, vethPair } from '../../helpers/net';
import { TEST_DRIVER, startPlugin, type TestPlugin } from '../../helpers/plugin';
import { CLI } from '../../helpers/serve';
import { stateGroup } from '../../../src/state/instance';

const validate = new Ajv({ allErrors: true }).compile(STATUS_JSON_SCHEMA);
const id = () => randomBytes(32).toString('hex');

function status(stateDir: string, json = true): { code: number | null; report: StatusReport; text: string } {
  // The in-process plugin serves as TEST_DRIVER: status finds its links by that name's device group.
  const socket = `/run/docker/plugins/${TEST_DRIVER}.sock`;
  const run = spawnSync(
    process.execPath,
    [CLI, 'status', '--socket', socket, '--state-dir', stateDir, ...(json ? ['--json'] : [])],
    { encoding: 'utf8' },
  );
  if (!json) return { code: run.status, report: undefined as unknown as StatusReport, text: run.stdout };
  const report = JSON.parse(run.stdout) as StatusReport;
  expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
  return { code: run.status, report, text: run.stdout };
}

/** Every file of the state dir and its contents: status must leave them as they are. */
function fingerprint(dir: string): string {
  const hash = createHash('sha256');
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const path = join(d, name);
      hash.update(`${path}\0${statSync(path).mtimeMs}\0`);
      if (statSync(path).isDirectory()) walk(path);
      else hash.update(readFileSync(path));
    }
  };
  walk(dir);
  return hash.digest('hex');
}

describe('tsmacvlan status', () => {
  let plugin: TestPlugin;
  let parent: string;
  const extraLinks: string[] = [];
  const sleepers: ChildProcess[] = [];

  beforeAll(() => assertPrivateNetns());
  beforeEach(async () => {
    parent = uniqueName('st');
    vethPair(parent);
    plugin = await startPlugin();
  });
  afterEach(async () => {
    await plugin.destroy();
    for (const s of sleepers.splice(0)) s.kill('SIGKILL');
    for (const name of [parent, ...extraLinks.splice(0)]) deleteLink(name);
    deleteLinksByPrefix('tsmv');
  });

  async function createNetwork(networkId: string, generic: Record<string, unknown>, pool: string) {
    const res = await plugin.call('NetworkDriver.CreateNetwork', {
      NetworkID: networkId,
      Options: { 'com.docker.network.generic': generic },
      IPv4Data: [{ Pool: `${pool}.0/24`, Gateway: `${pool}.1/24` }],
    });
    expect(res.status).toBe(200);
  }

  async function attach(networkId: string, address: string, mac: string): Promise<string> {
    const endpointId = id();
    const created = await plugin.call('NetworkDriver.CreateEndpoint', {
      NetworkID: networkId,
      EndpointID: endpointId,
      Interface: { Address: address, MacAddress: mac },
    });
    expect(created.status).toBe(200);
    expect((await plugin.call('NetworkDriver.Join', { NetworkID: networkId, EndpointID: endpointId })).status).toBe(
      200,
    );
    return endpointId;
  }

  /** What Docker does at container start: the endpoint's link moves into the container's namespace (here a sleeper's). */
  async function moveIntoContainer(linkName: string): Promise<void> {
    const sleeper = spawn('unshare', ['--net', '--', 'sleep', '600'], { stdio: 'ignore' });
    sleepers.push(sleeper);
    const deadline = Date.now() + 5000;
    // The sleeper's namespace is ready once unshare has exec'd sleep.
    while (!readFileSync(`/proc/${sleeper.pid}/cmdline`, 'utf8').startsWith('sleep')) {
      if (Date.now() > deadline) throw new Error('the sleeper did not start');
      await new Promise((r) => setTimeout(r, 10));
    }
    ip('link', 'set', linkName, 'netns', String(sleeper.pid));
  }

  it('shows two networks and three endpoints, with each endpoint link on the host or in its container, and changes nothing', async () => {
    const lan = id();
    const internal = id();
    await createNetwork(lan, { parent }, '10.81.0');
    await createNetwork(internal, {}, '10.82.0');
    const e1 = await attach(lan, '10.81.0.5/24', '02:42:0a:51:00:05');
    const e2 = await attach(lan, '10.81.0.6/24', '02:42:0a:51:00:06');
    const e3 = await attach(internal, '10.82.0.5/24', '02:42:0a:52:00:05');
    await moveIntoContainer(endpointLinkName(e1));
    // Docker's IPAM calls for the first network's subnet, as with --ipam-driver tsmacvlan.
    const pool = await plugin.call('IpamDriver.RequestPool', {
      AddressSpace: 'local',
      Pool: '10.81.0.0/24',
      SubPool: '10.81.0.128/25',
      Options: {},
      V6: false,
    });
    expect(pool.status).toBe(200);
    for (const address of ['10.81.0.1', '10.81.0.5', '10.81.0.6']) {
      expect(
        (await plugin.call('IpamDriver.RequestAddress', { PoolID: pool.json.PoolID, Address: address, Options: {} }))
          .status,
      ).toBe(200);
    }
    // And one from the range: the only address in it (the others are outside).
    const dynamic = await plugin.call('IpamDriver.RequestAddress', { PoolID: pool.json.PoolID, Options: {} });
    expect(dynamic.json).toEqual({ Address: '10.81.0.128/24', Data: {} });
    const before = fingerprint(plugin.stateDir);

    const { code, report } = status(plugin.stateDir);
    expect(code).toBe(0);
    expect(report.stateDir).toBe(plugin.stateDir);
    expect(report.networks).toHaveLength(2);
    expect(report.networks.find((n) => n.id === lan)).toEqual({
      id: lan,
      parent,
      parentPresent: true,
      kind: 'macvlan',
      mode: 'bridge',
      flag: null,
      internal: false,
      vlan: null,
      subnets: ['10.81.0.0/24'],
      hostAccess: null,
      endpoints: 2,
      prefixLost: null,
    });
    expect(report.networks.find((n) => n.id === internal)).toMatchObject({
      parent: internalParentName(internal),
      parentPresent: true,
      internal: true,
      endpoints: 1,
    });
    const where = Object.fromEntries(report.endpoints.map((e) => [e.id, [e.location, e.hostLink]]));
    expect(where).toEqual({
      [e1]: ['container', null],
      [e2]: ['host', endpointLinkName(e2)],
      [e3]: ['host', endpointLinkName(e3)],
    });
    expect(report.endpoints.find((e) => e.id === e2)).toMatchObject({
      networkId: lan,
      mac: '02:42:0a:51:00:06',
      addresses: ['10.81.0.6/24'],
    });
    expect(report.pools).toEqual([
      {
        poolId: pool.json.PoolID,
        pool: '10.81.0.0/24',
        subPool: '10.81.0.128/25',
        v6: false,
        allocated: 4,
        refs: 1,
        routerPrefix: null,
      },
    ]);
    expect(report.ranges).toEqual([
      { subnet: '10.81.0.0/24', range: '10.81.0.128/25', scope: 'host', allocated: 1, capacity: '127' },
    ]);
    expect(report).toMatchObject({ driver: TEST_DRIVER, group: stateGroup(plugin.stateDir) });
    expect(report.drift).toEqual([]);

    const { text } = status(plugin.stateDir, false);
    expect(text).toMatch(
      new RegExp(
        `^${pool.json.PoolID.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} +10\\.81\\.0\\.0/24 +10\\.81\\.0\\.128/25 +4 +1$`,
        'm',
      ),
    );
    expect(text).toMatch(
      /^SUBNET +RANGE +SCOPE +ALLOCATED +CAPACITY +FULL\n10\.81\.0\.0\/24 +10\.81\.0\.128\/25 +host +1 +127 +0\.8%$/m,
    );
    expect(text).toMatch(
      new RegExp(`^${lan.slice(0, 12)} +${parent} +macvlan +bridge +- +10\\.81\\.0\\.0/24 +2$`, 'm'),
    );
    expect(text).toMatch(
      new RegExp(
        `^${internal.slice(0, 12)} +${internalParentName(internal)} \\(internal\\) +macvlan +bridge +- +10\\.82\\.0\\.0/24 +1$`,
        'm',
      ),
    );
    expect(text).toMatch(
      new RegExp(`^${e1.slice(0, 12)} +${lan.slice(0, 12)} +in container +02:42:0a:51:00:05 +10\\.81\\.0\\.5/24$`, 'm'),
    );
    expect(text).toMatch(
      new RegExp(
        `^${e3.slice(0, 12)} +${internal.slice(0, 12)} +${endpointLinkName(e3)} +02:42:0a:52:00:05 +10\\.82\\.0\\.5/24$`,
        'm',
      ),
    );
    expect(text.trim().split('\n').pop()).toBe('drift: none');
    expect(fingerprint(plugin.stateDir)).toBe(before);
  });

  it("reports drift: a missing parent and a leaked marked link; an endpoint link deleted behind the plugin's back is not drift", async () => {
    const lan = id();
    const other = id();
    const otherParent = uniqueName('st');
    vethPair(otherParent);
    extraLinks.push(otherParent);
    await createNetwork(lan, { parent }, '10.83.0');
    await createNetwork(other, { parent: otherParent }, '10.84.0');
    const e1 = await attach(lan, '10.83.0.5/24', '02:42:0a:53:00:05');
    const e2 = await attach(other, '10.84.0.5/24', '02:42:0a:54:00:05');

    // Gone from the host: indistinguishable from a running container's endpoint, which is normal.
    ip('link', 'del', endpointLinkName(e1));
    let { report } = status(plugin.stateDir);
    expect(report.endpoints.find((e) => e.id === e1)).toMatchObject({ location: 'container', hostLink: null });
    expect(report.drift).toEqual([]);

    // Links of the plugin's that no record owns (one in its device group, one marked by alias only), and a parent that disappears.
    const leak = uniqueName('stlk');
    ip('link', 'add', leak, 'link', parent, 'type', 'macvlan', 'mode', 'bridge');
    ip('link', 'set', leak, 'group', String(stateGroup(plugin.stateDir)));
    ip('link', 'set', leak, 'alias', 'tsmacvlan:endpoint');
    const stray = uniqueName('stal');
    ip('link', 'add', stray, 'link', parent, 'type', 'macvlan', 'mode', 'bridge');
    ip('link', 'set', stray, 'alias', 'tsmacvlan:endpoint');
    extraLinks.push(leak, stray);
    ip('link', 'del', otherParent);
    expect(link(endpointLinkName(e2))).toBeUndefined(); // its macvlans went with it

    let code;
    ({ code, report } = status(plugin.stateDir));
    expect(code).toBe(0); // drift is reported, not failed on (doctor does that)
    expect(report.drift).toEqual([
      {
        kind: 'parent-missing',
        subject: otherParent,
        message: `the parent '${otherParent}' of network(s) ${other.slice(0, 12)} does not exist: containers cannot join; the links of its 1 endpoint(s) went with it`,
        fix: expect.stringContaining(`bring '${otherParent}' back`),
      },
      {
        kind: 'leaked-link',
        subject: leak,
        message: `link '${leak}' (tsmacvlan:endpoint) is the plugin's, but no record owns it`,
        fix: expect.stringMatching(
          new RegExp(`^restart the plugin, or run 'tsmacvlan gc' .*: it deletes it; or by hand: ip link del ${leak}$`),
        ),
      },
      {
        kind: 'leaked-link',
        subject: stray,
        message: `link '${stray}' (tsmacvlan:endpoint) is marked as tsmacvlan's by its alias, in no instance's device group, but no record owns it`,
        fix: `no tsmacvlan start removes it (it carries no instance's device group): ip link del ${stray}`,
      },
    ]);
    expect(report.networks.find((n) => n.id === other)?.parentPresent).toBe(false);
    expect(report.endpoints.find((e) => e.id === e2)).toMatchObject({ location: 'gone', hostLink: null });

    const { text } = status(plugin.stateDir, false);
    expect(text).toContain(`${otherParent} (missing)`);
    expect(text).toContain('gone (parent missing)');
    expect(text).toMatch(/^drift: 3$/m);
    expect(text).toMatch(new RegExp(`^ {2}leaked-link {2}link '${leak}'`, 'm'));
    expect(text).toMatch(/^ {6}fix: restart the plugin, or run 'tsmacvlan gc'/m);
  });

  it('creates no state dir that is missing, and exits 1 when a record cannot be read', () => {
    const absent = join(plugin.stateDir, 'not-there');
    const { code, report } = status(absent);
    expect(code).toBe(0);
    expect(report).toEqual({
      version: 1,
      tsmacvlanVersion: VERSION,
      stateDir: absent,
      driver: TEST_DRIVER,
      plugin: null,
      group: null,
      networks: [],
      endpoints: [],
      pools: [],
      ranges: [],
      devices: [],
      leases: [],
      slaac: [],
      drift: [],
      unreadable: [],
      stateFormat: { state: 'none', formats: null, writtenBy: null, message: 'no state yet' },
      cluster: null,
    });
    expect(existsSync(absent)).toBe(false);

    mkdirSync(join(plugin.stateDir, 'networks'), { recursive: true });
    writeFileSync(join(plugin.stateDir, 'networks', 'bad.json'), '{');
    const broken = status(plugin.stateDir);
    expect(broken.code).toBe(1);
    expect(broken.report.unreadable).toEqual([
      { file: join(plugin.stateDir, 'networks', 'bad.json'), error: expect.stringMatching(/^not valid JSON/) },
    ]);
  });
});
