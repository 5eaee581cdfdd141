// status's pieces without a kernel: reading the state dir read-only, the drift rules, the tables, the JSON schema.
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { endpointLinkName, type EndpointRecord } from '../../../src/driver/endpoint-naming';
import { shimName } from '../../../src/driver/host-access';
import { IpamService } from '../../../src/ipam/service';
import type { Links } from '../../../src/kernel/links';
import type { NetworkRecord } from '../../../src/driver/network-options';
import { instanceGroup } from '../../../src/kernel/marks';
import { internalParentName } from '../../../src/driver/parents';
import { describeRepair, planRepairs } from '../../../src/driver/reconcile';
import { STATUS_JSON_SCHEMA, collectStatus, formatStatus } from '../../../src/inspect/status';
import { type LinkInfo } from '../../../src/kernel/link-info';
import { findDrift } from '../../../src/inspect/drift';
import { readState } from '../../../src/inspect/state-snapshot';

const validate = new Ajv({ allErrors: true }).compile(STATUS_JSON_SCHEMA);

const N1 = '1'.repeat(64);
const N2 = '2'.repeat(64);
const N3 = '3'.repeat(64);
const E1 = 'e1'.repeat(32);
const E2 = 'e2'.repeat(32);

const networks: NetworkRecord[] = [
  {
    id: N1,
    parent: 'eth1',
    ownsParent: false,
    mode: 'bridge',
    internal: false,
    ipv4: { pool: '10.1.0.0/24', gateway: '10.1.0.1' },
  },
  {
    id: N2,
    parent: 'eth1.10',
    ownsParent: true,
    mode: 'private',
    internal: false,
    ipv4: { pool: '10.2.0.0/24' },
    ipv6: { pool: 'fd00::/64' },
  },
  { id: N3, parent: internalParentName(N3), ownsParent: true, mode: 'bridge', internal: true },
];
const endpoints: EndpointRecord[] = [
  { id: E1, networkId: N1, mac: '02:42:0a:01:00:05', ipv4: '10.1.0.5/24' },
  { id: E2, networkId: N2, mac: '02:42:0a:02:00:05', ipv4: '10.2.0.5/24', ipv6: 'fd00::5/64' },
];

const DRIVER = 'tsmacvlan-unit';
/** This state's instance id: its links carry device group G. */
const INSTANCE = 'unit-instance';
const G = instanceGroup(INSTANCE);

let index = 10;
const l = (name: string, over: Partial<LinkInfo> = {}): LinkInfo => ({
  index: index++,
  name,
  up: true,
  loopback: false,
  mtu: 1500,
  ...over,
});
/** The host as it should be: every parent present, E1's container running (its link is not on the host), E2 just joined. */
const healthy = (): LinkInfo[] => [
  l('lo', { loopback: true }),
  l('eth1'),
  l('eth1.10', { kind: 'vlan', vlanId: 10, alias: 'tsmacvlan:vlan', group: G }),
  l(internalParentName(N3), { kind: 'dummy', alias: 'tsmacvlan:internal', group: G }),
  l(endpointLinkName(E2), { kind: 'macvlan', alias: 'tsmacvlan:endpoint', mac: '02:42:0a:02:00:05', group: G }),
];

describe('planRepairs', () => {
  it('rolls back records of creates never answered, and deletes the links they made', () => {
    const unansweredNetwork = { ...networks[1], unanswered: true as const };
    const unansweredEndpoint = { ...endpoints[1], unanswered: true as const };
    const repairs = planRepairs(
      healthy(),
      G,
      [networks[0], unansweredNetwork, networks[2]],
      [endpoints[0], unansweredEndpoint],
    );
    expect(repairs.map(describeRepair)).toEqual([
      `forget network ${N2}: its CreateNetwork was saved but never answered (tsmacvlan stopped first), so Docker does not know it`,
      `forget endpoint ${E2}: its CreateEndpoint was saved but never answered (tsmacvlan stopped first), so Docker does not know it`,
      `delete link ${endpointLinkName(E2)}: endpoint link that no network or endpoint of the state owns`,
      'delete link eth1.10: VLAN parent link that no network or endpoint of the state owns',
    ]);
    expect(planRepairs(healthy(), G, networks, endpoints)).toEqual([]);
  });
});

describe('findDrift', () => {
  it('finds none on a healthy host: a recorded endpoint whose link is absent is in its container, which is normal', () => {
    expect(findDrift({ networks, endpoints }, healthy(), G)).toEqual([]);
  });

  it("does not count links named like the plugin's without its group or alias, nor another instance's links", () => {
    const foreign = [
      l('tsmve0123456789', { kind: 'macvlan' }),
      l('tsmvi0123456789', { alias: 'someone else' }),
      l('tsmve7777777777', { kind: 'macvlan', alias: 'tsmacvlan:endpoint', group: instanceGroup('tsmacvlan-other') }),
    ];
    expect(findDrift({ networks, endpoints }, [...healthy(), ...foreign], G)).toEqual([]);
  });

  it('flags a missing parent once, naming its networks, with the right way back for a parent the plugin made and one it did not', () => {
    const host = healthy().filter((x) => x.name !== 'eth1' && x.name !== 'eth1.10' && x.name !== endpointLinkName(E2));
    const drift = findDrift({ networks: [...networks, { ...networks[0], id: '4'.repeat(64) }], endpoints }, host, G);
    expect(drift).toEqual([
      expect.objectContaining({
        kind: 'parent-missing',
        subject: 'eth1',
        fix: expect.stringContaining("bring 'eth1' back"),
      }),
      expect.objectContaining({
        kind: 'parent-missing',
        subject: 'eth1.10',
        message: expect.stringContaining('VLAN parent'),
        fix: expect.stringContaining('tsmacvlan gc'),
      }),
    ]);
    expect(drift[0].message).toBe(
      `the parent 'eth1' of network(s) ${'1'.repeat(12)}, ${'4'.repeat(12)} does not exist: containers cannot join; the links of its 1 endpoint(s) went with it`,
    );
  });

  it('flags what the plugin would delete at start (as gc would): its links no record owns, and its orphan VLANs', () => {
    const host = [
      ...healthy(),
      l('tsmve9999999999', { kind: 'macvlan', alias: 'tsmacvlan:endpoint', group: G }),
      l('tsmvi9999999999', { kind: 'dummy', alias: 'tsmacvlan:internal', group: G }),
      l('tsmvh9999999999', { kind: 'macvlan', alias: 'tsmacvlan:shim', group: G }),
      l('eth1.20', { kind: 'vlan', vlanId: 20, alias: 'tsmacvlan:vlan', group: G }),
      l('tsmve8888888888', { kind: 'macvlan', group: G }), // a crash before its alias
    ];
    const drift = findDrift({ networks, endpoints }, host, G);
    expect(drift.map((d) => [d.kind, d.subject])).toEqual([
      ['leaked-link', 'tsmve9999999999'],
      ['leaked-link', 'tsmvh9999999999'],
      ['leaked-link', 'tsmve8888888888'],
      ['leaked-link', 'tsmvi9999999999'],
      ['orphan-vlan', 'eth1.20'],
    ]);
    expect(drift[0]).toEqual({
      kind: 'leaked-link',
      subject: 'tsmve9999999999',
      message: "link 'tsmve9999999999' (tsmacvlan:endpoint) is the plugin's, but no record owns it",
      fix: "restart the plugin, or run 'tsmacvlan gc' while it is stopped ('tsmacvlan gc --dry-run' shows what it would do): it deletes it; or by hand: ip link del tsmve9999999999",
    });
    expect(drift[4]).toMatchObject({
      message: "VLAN 'eth1.20' (id 20) is the plugin's, but no network uses it",
      fix: expect.stringContaining('tsmacvlan gc'),
    });
  });

  it('flags links marked tsmacvlan:* by alias in no device group: no start of any instance removes them', () => {
    const host = [
      ...healthy(),
      l('stodd', { kind: 'macvlan', alias: 'tsmacvlan:endpoint' }),
      l('eth1.30', { kind: 'vlan', vlanId: 30, alias: 'tsmacvlan:vlan' }),
    ];
    const drift = findDrift({ networks, endpoints }, host, G);
    expect(drift).toEqual([
      {
        kind: 'leaked-link',
        subject: 'stodd',
        message:
          "link 'stodd' (tsmacvlan:endpoint) is marked as tsmacvlan's by its alias, in no instance's device group, but no record owns it",
        fix: "no tsmacvlan start removes it (it carries no instance's device group): ip link del stodd",
      },
      expect.objectContaining({ kind: 'orphan-vlan', subject: 'eth1.30' }),
    ]);
    // A recorded parent marked that way (made by a version before device groups) is in use, not drift.
    const old = healthy().map((x) => (x.name === 'eth1.10' ? { ...x, group: undefined } : x));
    expect(findDrift({ networks, endpoints }, old, G)).toEqual([]);
  });

  it('flags a host_access network without its shim (only while the parent is there), and an endpoint without its network', () => {
    const withShim = [{ ...networks[0], hostAccess: '10.1.0.250' }, networks[1], networks[2]];
    expect(findDrift({ networks: withShim, endpoints }, healthy(), G)).toEqual([
      expect.objectContaining({ kind: 'shim-missing', subject: shimName(N1) }),
    ]);
    expect(
      findDrift(
        { networks: withShim, endpoints },
        [...healthy(), l(shimName(N1), { alias: 'tsmacvlan:shim', group: G })],
        G,
      ),
    ).toEqual([]);
    expect(findDrift({ networks: networks.slice(1), endpoints }, healthy(), G)).toEqual([
      expect.objectContaining({
        kind: 'orphan-endpoint',
        subject: E1,
        fix: expect.stringContaining(`endpoints/${E1}.json`),
      }),
    ]);
  });
});

describe('readState', () => {
  const root = mkdtempSync(join(tmpdir(), 'st-state-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('creates nothing: a missing state dir is reported as missing and stays missing', () => {
    const dir = join(root, 'absent');
    expect(readState(dir)).toEqual({
      stateDir: dir,
      exists: false,
      networks: [],
      endpoints: [],
      pools: [],
      unreadable: [],
    });
    expect(existsSync(dir)).toBe(false);
  });

  it('reads records, ignores temp files, and lists files that are not valid JSON or not records', () => {
    const dir = join(root, 'state');
    mkdirSync(join(dir, 'networks'), { recursive: true });
    writeFileSync(join(dir, 'networks', `${N1}.json`), JSON.stringify(networks[0]));
    writeFileSync(join(dir, 'networks', `${N2}.json.tmp`), '{"half');
    writeFileSync(join(dir, 'networks', `${N3}.json`), '{"id":');
    writeFileSync(
      join(dir, 'networks', 'x.json'),
      JSON.stringify({ id: 'x', parent: 'eth1', mode: 'bridgy', ownsParent: false }),
    );
    const state = readState(dir);
    expect(state.exists).toBe(true);
    expect(state.networks).toEqual([networks[0]]);
    expect(state.endpoints).toEqual([]); // no endpoints dir yet: nothing recorded, not an error
    expect(state.unreadable).toEqual([
      { file: join(dir, 'networks', `${N3}.json`), error: expect.stringMatching(/^not valid JSON/) },
      { file: join(dir, 'networks', 'x.json'), error: "not a record: mode 'bridgy' is not a macvlan mode" },
    ]);
  });
});

describe('address pools', () => {
  const root = mkdtempSync(join(tmpdir(), 'st-pools-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const files = () =>
    Object.fromEntries(readdirSync(join(root, 'ipam')).map((f) => [f, readFileSync(join(root, 'ipam', f), 'utf8')]));

  it('are read from the IPAM journals exactly as the plugin lists them, without the rewrite its start does', async () => {
    const ipam = new IpamService(root, pino({ level: 'silent' }));
    const v4 = await ipam.requestPool({ pool: '10.9.0.0/24', subPool: '10.9.0.128/25' });
    await ipam.requestPool({ pool: '10.9.0.0/24', subPool: '10.9.0.128/25' }); // a second network on the same pool
    const v6 = await ipam.requestPool({ pool: 'fd09::/64', v6: true });
    await ipam.requestAddress(v4.poolId, '10.9.0.1', { RequestAddressType: 'com.docker.network.gateway' });
    await ipam.requestAddress(v4.poolId, undefined, {});
    await ipam.requestAddress(v6.poolId, undefined, {});
    const listed = ipam.listPools();
    await ipam.close();
    appendFileSync(join(root, 'ipam', readdirSync(join(root, 'ipam'))[0]), '{"t":"addr'); // a write cut short by a crash
    const before = files();

    const { pools, unreadable } = readState(root);
    expect(unreadable).toEqual([]);
    expect(pools).toEqual(
      listed.map((p) => ({
        poolId: p.poolId,
        pool: p.pool,
        subPool: p.subPool ?? null,
        v6: p.v6,
        allocated: p.allocated,
        refs: p.refs,
      })),
    );
    expect(pools.find((p) => p.poolId === v4.poolId)).toMatchObject({
      pool: '10.9.0.0/24',
      subPool: '10.9.0.128/25',
      v6: false,
      allocated: 2,
      refs: 2,
    });
    expect(files()).toEqual(before); // the torn line is still there: status compacts nothing
  });

  it('a journal the plugin could not load is reported as unreadable', () => {
    writeFileSync(join(root, 'ipam', '10.10.0.0_24.jnl'), 'not json\n');
    writeFileSync(join(root, 'ipam', '10.11.0.0_24.jnl'), '{"t":"pool","p":1}\n');
    const { unreadable } = readState(root);
    expect(unreadable).toEqual([
      { file: join(root, 'ipam', '10.10.0.0_24.jnl'), error: expect.stringContaining('line 1 is not valid JSON') },
      {
        file: join(root, 'ipam', '10.11.0.0_24.jnl'),
        error: expect.stringContaining('does not start with a subnet header; fix or remove it'),
      },
    ]);
  });
});

describe('the report', () => {
  const root = mkdtempSync(join(tmpdir(), 'st-report-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  for (const sub of ['networks', 'endpoints']) mkdirSync(join(root, sub));
  for (const n of networks) writeFileSync(join(root, 'networks', `${n.id}.json`), JSON.stringify(n));
  for (const e of endpoints) writeFileSync(join(root, 'endpoints', `${e.id}.json`), JSON.stringify(e));
  writeFileSync(join(root, 'instance'), `${INSTANCE}\n`); // this state's instance: its links carry group G
  const fake = (host: LinkInfo[]) => ({ list: async () => host }) as unknown as Links;

  it('lists networks and endpoints with where each endpoint link is, and validates against its schema', async () => {
    const report = await collectStatus(root, DRIVER, fake(healthy()));
    expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
    expect(report.networks).toEqual([
      {
        id: N1,
        parent: 'eth1',
        parentPresent: true,
        mode: 'bridge',
        internal: false,
        vlan: null,
        subnets: ['10.1.0.0/24'],
        hostAccess: null,
        endpoints: 1,
      },
      {
        id: N2,
        parent: 'eth1.10',
        parentPresent: true,
        mode: 'private',
        internal: false,
        vlan: { id: 10, owned: true },
        subnets: ['10.2.0.0/24', 'fd00::/64'],
        hostAccess: null,
        endpoints: 1,
      },
      {
        id: N3,
        parent: internalParentName(N3),
        parentPresent: true,
        mode: 'bridge',
        internal: true,
        vlan: null,
        subnets: [],
        hostAccess: null,
        endpoints: 0,
      },
    ]);
    expect(report.endpoints).toEqual([
      {
        id: E1,
        networkId: N1,
        hostLink: null,
        location: 'container',
        mac: '02:42:0a:01:00:05',
        addresses: ['10.1.0.5/24'],
      },
      {
        id: E2,
        networkId: N2,
        hostLink: endpointLinkName(E2),
        location: 'host',
        mac: '02:42:0a:02:00:05',
        addresses: ['10.2.0.5/24', 'fd00::5/64'],
      },
    ]);
    expect(report.drift).toEqual([]);

    const text = formatStatus(report);
    expect(text).toMatch(/^NETWORK +PARENT +MODE +VLAN +SUBNETS +ENDPOINTS$/m);
    expect(text).toMatch(
      new RegExp(`^${N2.slice(0, 12)} +eth1\\.10 +private +10 owned +10\\.2\\.0\\.0/24,fd00::/64 +1$`, 'm'),
    );
    expect(text).toMatch(
      new RegExp(`^${N3.slice(0, 12)} +${internalParentName(N3)} \\(internal\\) +bridge +- +- +0$`, 'm'),
    );
    expect(text).toMatch(
      new RegExp(`^${E1.slice(0, 12)} +${N1.slice(0, 12)} +in container +02:42:0a:01:00:05 +10\\.1\\.0\\.5/24$`, 'm'),
    );
    expect(text).toMatch(new RegExp(`^${E2.slice(0, 12)} +${N2.slice(0, 12)} +${endpointLinkName(E2)} +`, 'm'));
    expect(text.trim().split('\n').pop()).toBe('drift: none');
  });

  it('says an endpoint is gone (not in a container) when its parent is missing, and a VLAN id from the name', async () => {
    // Deleting a parent deletes the macvlans on it, in every namespace.
    const report = await collectStatus(
      root,
      DRIVER,
      fake(healthy().filter((x) => x.name !== 'eth1.10' && x.name !== endpointLinkName(E2))),
    );
    expect(validate(report)).toBe(true);
    expect(report.networks[1]).toMatchObject({ parentPresent: false, vlan: { id: 10, owned: true } });
    expect(report.endpoints[1]).toMatchObject({ hostLink: null, location: 'gone' });
    const text = formatStatus(report);
    expect(text).toContain('eth1.10 (missing)');
    expect(text).toContain('gone (parent missing)');
    expect(text).toMatch(
      /^drift: 1\n {2}parent-missing {2}the VLAN parent 'eth1.10' of network\(s\) 222222222222 does not exist/m,
    );
  });

  it('the schema refuses what it does not describe', () => {
    const ok = {
      version: 1,
      stateDir: '/x',
      driver: 'tsmacvlan',
      group: 1,
      networks: [],
      endpoints: [],
      pools: [],
      drift: [],
      unreadable: [],
    };
    expect(validate(ok)).toBe(true);
    expect(validate({ ...ok, drift: [{ kind: 'weird', subject: 'a', message: 'b', fix: 'c' }] })).toBe(false);
    expect(
      validate({
        ...ok,
        endpoints: [
          { id: 'a', networkId: 'b', hostLink: null, location: 'moon', mac: '02:00:00:00:00:01', addresses: [] },
        ],
      }),
    ).toBe(false);
    expect(validate({ ...ok, extra: true })).toBe(false);
  });
});
