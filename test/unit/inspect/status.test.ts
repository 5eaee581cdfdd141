import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import { afterAll, describe, expect, it } from 'vitest';
import { endpointLinkName } from '../../../src/driver/endpoint-naming';
import type { Links } from '../../../src/kernel/links';
import { internalParentName } from '../../../src/driver/parents';
import { collectStatus, formatStatus } from '../../../src/inspect/status';
import { STATUS_JSON_SCHEMA } from '../../../src/inspect/status-schema';
import { type LinkInfo } from '../../../src/kernel/link-info';
import { N1, N2, N3, E1, E2, networks, endpoints, DRIVER, INSTANCE, healthy } from '../../helpers/state-fixtures';

const validate = new Ajv({ allErrors: true }).compile(STATUS_JSON_SCHEMA);

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
        kind: 'macvlan',
        mode: 'bridge',
        flag: null,
        internal: false,
        vlan: null,
        subnets: ['10.1.0.0/24'],
        hostAccess: null,
        endpoints: 1,
        prefixLost: null,
      },
      {
        id: N2,
        parent: 'eth1.10',
        parentPresent: true,
        kind: 'macvlan',
        mode: 'private',
        flag: null,
        internal: false,
        vlan: { id: 10, owned: true },
        subnets: ['10.2.0.0/24', 'fd00::/64'],
        hostAccess: null,
        endpoints: 1,
        prefixLost: null,
      },
      {
        id: N3,
        parent: internalParentName(N3),
        parentPresent: true,
        kind: 'macvlan',
        mode: 'bridge',
        flag: null,
        internal: true,
        vlan: null,
        subnets: [],
        hostAccess: null,
        endpoints: 0,
        prefixLost: null,
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
        prefixLost: null,
      },
      {
        id: E2,
        networkId: N2,
        hostLink: endpointLinkName(E2),
        location: 'host',
        mac: '02:42:0a:02:00:05',
        addresses: ['10.2.0.5/24', 'fd00::5/64'],
        prefixLost: null,
      },
    ]);
    expect(report.drift).toEqual([]);

    const text = formatStatus(report);
    expect(text).toMatch(/^NETWORK +PARENT +KIND +MODE +VLAN +SUBNETS +ENDPOINTS$/m);
    expect(text).toMatch(
      new RegExp(`^${N2.slice(0, 12)} +eth1\\.10 +macvlan +private +10 owned +10\\.2\\.0\\.0/24,fd00::/64 +1$`, 'm'),
    );
    expect(text).toMatch(
      new RegExp(`^${N3.slice(0, 12)} +${internalParentName(N3)} \\(internal\\) +macvlan +bridge +- +- +0$`, 'm'),
    );
    expect(text).toMatch(
      new RegExp(`^${E1.slice(0, 12)} +${N1.slice(0, 12)} +in container +02:42:0a:01:00:05 +10\\.1\\.0\\.5/24$`, 'm'),
    );
    expect(text).toMatch(new RegExp(`^${E2.slice(0, 12)} +${N2.slice(0, 12)} +${endpointLinkName(E2)} +`, 'm'));
    expect(text.trim().split('\n').pop()).toBe('drift: none');
  });

  it('shows an ipvlan network with its kind, mode and flag', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'st-ipvlan-'));
    try {
      mkdirSync(join(dir, 'networks'));
      const ipvlan = { ...networks[0]!, kind: 'ipvlan', mode: 'l3', flag: 'private' };
      writeFileSync(join(dir, 'networks', `${N1}.json`), JSON.stringify(ipvlan));
      const report = await collectStatus(dir, DRIVER, fake(healthy()));
      expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
      expect(report.networks[0]).toMatchObject({ kind: 'ipvlan', mode: 'l3', flag: 'private' });
      expect(formatStatus(report)).toMatch(new RegExp(`^${N1.slice(0, 12)} +eth1 +ipvlan +l3 private +- +`, 'm'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
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
      tsmacvlanVersion: '0.1.0',
      stateDir: '/x',
      driver: 'tsmacvlan',
      plugin: null,
      group: 1,
      networks: [],
      endpoints: [],
      pools: [],
      ranges: [],
      leases: [],
      slaac: [],
      drift: [],
      unreadable: [],
      stateFormat: { state: 'current', formats: { 'network-record': 2 }, writtenBy: '0.2.0', message: 'formats ...' },
      cluster: null,
    };
    expect(validate(ok)).toBe(true);
    expect(validate({ ...ok, stateFormat: { ...ok.stateFormat, state: 'later' } })).toBe(false);
    const cluster = {
      endpoints: ['http://10.0.0.5:2379'],
      prefix: '/tsmacvlan',
      instance: 'a1',
      subnets: [
        {
          subnet: '10.9.0.0/24',
          size: '254',
          used: 2,
          free: '252',
          owners: { a1: { container: 1, gateway: 1, aux: 0 } },
        },
      ],
      error: null,
    };
    expect(validate({ ...ok, cluster })).toBe(true);
    expect(validate({ ...ok, cluster: { ...cluster, subnets: [{ ...cluster.subnets[0], free: -1 }] } })).toBe(false);
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
    const plugin = { name: 'tsmacvlan:latest', id: 'ab'.repeat(32), enabled: true };
    expect(validate({ ...ok, plugin })).toBe(true);
    expect(validate({ ...ok, plugin: { ...plugin, id: 'ab' } })).toBe(false);
  });
});
