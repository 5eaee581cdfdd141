// Doctor's 802.1q verdict: a kernel without VLANs is a FAIL only where a VLAN is needed, else a WARN (and exit 0).
import { VERSION } from '../../../src/version';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import pino from 'pino';
import { STATE_FILES } from '../../../src/inspect/state-formats';
import { migrateState } from '../../../src/state/migrate';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Links } from '../../../src/kernel/links';
import type { LinkDetails, LinkInfo } from '../../../src/kernel/link-info';
import type { NetworkRecord } from '../../../src/driver/network-options';
import { diagnose } from '../../../src/inspect/doctor/doctor';
import type { KernelProbe } from '../../../src/inspect/doctor/kernel-probe';
import type { HostFacts } from '../../../src/inspect/doctor/parents';
import { N1, N2 } from '../../helpers/state-fixtures';

const NO_VLANS: KernelProbe = {
  lower: 'veth',
  macvlan: { ok: true },
  ipvlan: { ok: true },
  vlan: { ok: false, errno: 'EOPNOTSUPP' },
};

const up = (name: string, index: number, over: Partial<LinkDetails> = {}): LinkDetails => ({
  name,
  index,
  up: true,
  loopback: false,
  mtu: 1500,
  carrier: true,
  operstate: 'up',
  mac: `02:00:00:00:00:0${index}`,
  ...over,
});

// A link layer that answers from a fixed list, as the kernel would.
function fakeLinks(list: LinkDetails[]): Links {
  return {
    details: async (name: string) => list.find((l) => l.name === name),
    list: async () => list as LinkInfo[],
  } as unknown as Links;
}

describe("doctor's 802.1q verdict on a kernel without VLANs", () => {
  const dir = mkdtempSync(join(tmpdir(), 'tmvT-doctor-'));
  const socket = join(dir, 'tsmacvlan-unit.sock');
  const facts: HostFacts = { sysfs: join(dir, 'sys'), hypervisor: false };
  const host = [up('lo', 1, { loopback: true }), up('eth1', 2)];
  let plugin: Server;

  /** A state dir holding these network records. */
  function stateWith(name: string, networks: NetworkRecord[]): string {
    const stateDir = join(dir, name);
    mkdirSync(join(stateDir, 'networks'), { recursive: true });
    for (const n of networks) writeFileSync(join(stateDir, 'networks', `${n.id}.json`), JSON.stringify(n));
    migrateState(stateDir, STATE_FILES, pino({ level: 'silent' })); // as the plugin's start leaves it
    return stateDir;
  }
  const run = (stateDir: string, parents: string[] = [], links = host) =>
    diagnose({ parents, socket, stateDir, json: true }, fakeLinks(links), NO_VLANS, facts);
  const onEth1: NetworkRecord = {
    id: N1,
    parent: 'eth1',
    ownsParent: false,
    kind: 'macvlan',
    mode: 'bridge',
    internal: false,
  };

  beforeAll(async () => {
    mkdirSync(facts.sysfs);
    // The plugin answering on its socket, as on a healthy host.
    plugin = createServer((req, res) =>
      res.end(
        JSON.stringify(
          req.url === '/Tsmacvlan.Version' ? { Version: VERSION } : { Implements: ['NetworkDriver', 'IpamDriver'] },
        ),
      ),
    );
    await new Promise<void>((resolve) => plugin.listen(socket, resolve));
  });
  afterAll(async () => {
    await new Promise((resolve) => plugin.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it('WARNs, with the modprobe advice, when no recorded network and no --parent uses a VLAN: a healthy host exits 0', async () => {
    const report = await run(stateWith('plain', [onEth1]), ['eth1']);
    expect(report.checks.find((c) => c.id === 'kernel.8021q')).toMatchObject({
      status: 'WARN',
      message: expect.stringContaining('no recorded network and no --parent needs one'),
      fix: expect.stringContaining('modprobe 8021q'),
    });
    for (const check of report.checks.filter((c) => c.id !== 'kernel.8021q' && c.id !== 'privileges'))
      expect(check.status, `${check.id}: ${check.message}`).toBe('OK');
    // Exit status is report.ok; only the privileges of whoever runs the unit tests could still make it FAIL.
    const privileges = report.checks.find((c) => c.id === 'privileges')!;
    expect(report.ok).toBe(privileges.status !== 'FAIL');
  });

  it('FAILs, naming it, when a recorded network has a VLAN parent (to re-create at start)', async () => {
    const onVlan: NetworkRecord = {
      id: N2,
      parent: 'eth1.10',
      ownsParent: true,
      kind: 'macvlan',
      mode: 'bridge',
      internal: false,
    };
    const report = await run(stateWith('vlan', [onEth1, onVlan]));
    expect(report.checks.find((c) => c.id === 'kernel.8021q')).toMatchObject({
      status: 'FAIL',
      message: expect.stringContaining(`needed by network ${N2.slice(0, 12)} (parent eth1.10)`),
      fix: expect.stringContaining('modprobe 8021q'),
    });
    expect(report.ok).toBe(false);
  });

  it('FAILs, naming it, when a --parent given to doctor is a VLAN; not for a link of another kind named like one', async () => {
    const stateDir = stateWith('given', [onEth1]);
    const given = await run(stateDir, ['eth1.20']);
    expect(given.checks.find((c) => c.id === 'kernel.8021q')).toMatchObject({
      status: 'FAIL',
      message: expect.stringContaining('needed by --parent eth1.20,'),
    });
    expect(given.ok).toBe(false);
    // eth1.30 exists and is a macvlan: it is used as it is, no VLAN is made.
    const lookalike = await run(stateDir, ['eth1.30'], [...host, up('eth1.30', 3, { kind: 'macvlan' })]);
    expect(lookalike.checks.find((c) => c.id === 'kernel.8021q')?.status).toBe('WARN');
  });
});
