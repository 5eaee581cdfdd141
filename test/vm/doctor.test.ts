// doctor and status under a kernel that has 802.1q (run by test/vm/vmrun.sh: this machine's kernel has none).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { StatusReport } from '../../src/inspect/status';
import { STATUS_JSON_SCHEMA } from '../../src/inspect/status-schema';
import { deleteLink, ip, linkNames, vethPair } from '../helpers/net';
import { CLI, post, spawnDaemon, waitForSocket, type Daemon } from '../helpers/serve';
import { stateGroup } from '../../src/state/instance';
import { DOCTOR_JSON_SCHEMA, type DoctorReport } from '../../src/inspect/doctor/check';

const ajv = new Ajv({ allErrors: true });
const validDoctor = ajv.compile(DOCTOR_JSON_SCHEMA);
const validStatus = ajv.compile(STATUS_JSON_SCHEMA);

function cli<T>(validate: (v: unknown) => boolean, ...args: string[]): { code: number | null; out: T } {
  const run = spawnSync(process.execPath, [CLI, ...args, '--json'], { encoding: 'utf8', timeout: 240_000 });
  const out = JSON.parse(run.stdout) as T;
  expect(validate(out), run.stdout).toBe(true);
  return { code: run.status, out };
}

// Every CLI run starts node twice under an emulated CPU (doctor and its probe): slow, so generous timeouts.
const SLOW = 300_000;

describe('doctor and status with 802.1q', () => {
  let dir: string;
  let socket: string;
  let stateDir: string;
  let daemon: Daemon | undefined;

  beforeAll(() => {
    if (!existsSync('/sys/module/8021q'))
      throw new Error('this kernel has no 802.1q: run the vm suite with test/vm/vmrun.sh');
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'dr-vm-'));
    socket = join(dir, 'tsmacvlan-vm.sock');
    stateDir = join(dir, 'state');
    vethPair('dr0');
  });
  afterEach(() => {
    daemon?.child.kill('SIGKILL');
    daemon = undefined;
    for (const name of ['dr0', 'dr0.20', ...linkNames().filter((n) => n.startsWith('tsmv') || n.startsWith('dr0.'))])
      deleteLink(name);
    rmSync(dir, { recursive: true, force: true });
  });

  async function startWithVlanNetwork(): Promise<void> {
    daemon = spawnDaemon(['serve', '--socket', socket, '--state-dir', stateDir]);
    await waitForSocket(socket, daemon, 180_000); // an emulated CPU on a busy host: a start can take minutes
    const created = await post(socket, 'NetworkDriver.CreateNetwork', {
      NetworkID: 'vlan10net',
      Options: { 'com.docker.network.generic': { parent: 'dr0.10' } },
      IPv4Data: [{ Pool: '10.91.0.0/24', Gateway: '10.91.0.1/24' }],
    });
    expect(created.status).toBe(200);
  }

  it(
    "doctor's kernel probe sees macvlan and 802.1q OK, and a VLAN parent to be created is OK",
    () => {
      const before = linkNames();
      const { out } = cli<DoctorReport>(
        validDoctor,
        'doctor',
        '--parent',
        'dr0.10',
        '--socket',
        socket,
        '--state-dir',
        stateDir,
      );
      const check = (id: string) => out.checks.find((c) => c.id === id);
      expect(check('kernel.macvlan')).toMatchObject({ status: 'OK' });
      expect(check('kernel.8021q')).toEqual({
        id: 'kernel.8021q',
        status: 'OK',
        message: 'the kernel creates and deletes 802.1q VLAN links (tried in a throwaway network namespace)',
      });
      expect(check('parent:dr0.10')).toMatchObject({
        status: 'OK',
        message: expect.stringContaining("creates it as VLAN 10 on 'dr0'"),
      });
      expect(linkNames()).toEqual(before); // the probe's links never appeared here
    },
    SLOW,
  );

  it(
    'with the plugin running and a network on a VLAN it created, every check is OK and doctor exits 0',
    async () => {
      await startWithVlanNetwork();
      const { code, out } = cli<DoctorReport>(validDoctor, 'doctor', '--socket', socket, '--state-dir', stateDir);
      for (const c of out.checks) expect(c.status, `${c.id}: ${c.message}`).toBe('OK');
      expect(out.checks.map((c) => c.id)).toEqual([
        'privileges',
        'kernel.macvlan',
        'kernel.8021q',
        'kernel.ipvlan',
        'parent:dr0.10',
        'socket',
        'version',
        'state',
        'drift',
      ]);
      expect(out.checks.find((c) => c.id === 'parent:dr0.10')?.message).toContain('VLAN 10 on dr0');
      expect(out.ok).toBe(true);
      expect(code).toBe(0);

      const status = cli<StatusReport>(validStatus, 'status', '--socket', socket, '--state-dir', stateDir).out;
      expect(status.networks).toEqual([
        {
          id: 'vlan10net',
          parent: 'dr0.10',
          parentPresent: true,
          kind: 'macvlan',
          mode: 'bridge',
          flag: null,
          internal: false,
          vlan: { id: 10, owned: true },
          subnets: ['10.91.0.0/24'],
          prefixLost: null,
          hostAccess: null,
          endpoints: 0,
        },
      ]);
      expect(status.drift).toEqual([]);
    },
    SLOW,
  );

  it(
    "an orphan VLAN marked as the plugin's and a VLAN parent deleted behind its back are drift, with the way back",
    async () => {
      await startWithVlanNetwork();
      // A VLAN of this instance's (its device group), as a 'docker network rm' cut short would leave it.
      ip(
        'link',
        'add',
        'link',
        'dr0',
        'name',
        'dr0.20',
        'group',
        String(stateGroup(stateDir)),
        'type',
        'vlan',
        'id',
        '20',
      );
      ip('link', 'set', 'dr0.20', 'alias', 'tsmacvlan:vlan');
      ip('link', 'del', 'dr0.10');

      const status = cli<StatusReport>(validStatus, 'status', '--socket', socket, '--state-dir', stateDir);
      expect(status.code).toBe(0);
      expect(status.out.drift).toEqual([
        expect.objectContaining({
          kind: 'parent-missing',
          subject: 'dr0.10',
          message: expect.stringContaining('VLAN parent'),
          fix: expect.stringContaining("it re-creates 'dr0.10'"),
        }),
        expect.objectContaining({
          kind: 'orphan-vlan',
          subject: 'dr0.20',
          message: "VLAN 'dr0.20' (id 20) is the plugin's, but no network uses it",
          fix: expect.stringContaining('tsmacvlan gc'),
        }),
      ]);
      expect(status.out.networks[0]).toMatchObject({ parentPresent: false, vlan: { id: 10, owned: true } });

      const { out } = cli<DoctorReport>(validDoctor, 'doctor', '--socket', socket, '--state-dir', stateDir);
      expect(out.checks.find((c) => c.id === 'parent:dr0.10')).toMatchObject({
        status: 'WARN',
        message: expect.stringContaining("re-creates it on 'dr0' at start"),
      });
      expect(out.checks.find((c) => c.id === 'drift:dr0.20')).toMatchObject({
        status: 'WARN',
        fix: expect.stringContaining('ip link del dr0.20'),
      });
      expect(out.ok).toBe(true); // WARNs only
    },
    SLOW,
  );
});
