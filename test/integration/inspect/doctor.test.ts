// `tsmacvlan doctor` as a process (the built CLI) against the real kernel, in a private network namespace.
import { VERSION } from '../../../src/version';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { assertPrivateNetns, deleteLink, deleteLinksByPrefix, ip, uniqueName, vethPair } from '../../helpers/net';
import { CLI, post, spawnDaemon, waitForSocket, type Daemon } from '../../helpers/serve';
import { stateGroup } from '../../../src/state/instance';
import { DOCTOR_JSON_SCHEMA, type DoctorReport, type Check } from '../../../src/inspect/doctor/check';

const validate = new Ajv({ allErrors: true }).compile(DOCTOR_JSON_SCHEMA);

function doctor(...args: string[]): {
  code: number | null;
  report: DoctorReport;
  check: (id: string) => Check | undefined;
} {
  const run = spawnSync(process.execPath, [CLI, 'doctor', '--json', ...args], { encoding: 'utf8', timeout: 60_000 });
  const report = JSON.parse(run.stdout) as DoctorReport;
  expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
  expect(report.ok).toBe(!report.checks.some((c) => c.status === 'FAIL'));
  expect(run.status).toBe(report.ok ? 0 : 1);
  return { code: run.status, report, check: (id) => report.checks.find((c) => c.id === id) };
}

/** The oracle for the 802.1q verdict: can this kernel make a VLAN here? (This machine's cannot; the VM's can.) */
function kernelHasVlans(parent: string): boolean {
  try {
    ip('link', 'add', 'link', parent, 'name', `${parent}.5`, 'type', 'vlan', 'id', '5');
  } catch {
    return false;
  }
  ip('link', 'del', `${parent}.5`);
  return true;
}

function kernelHasIpvlan(parent: string): boolean {
  try {
    ip('link', 'add', 'link', parent, 'name', `${parent}i`, 'type', 'ipvlan', 'mode', 'l2');
  } catch {
    return false;
  }
  ip('link', 'del', `${parent}i`);
  return true;
}

/** Everything about the namespace's links that doctor must leave alone (counters excluded). */
function snapshot(): string {
  return JSON.stringify(
    (JSON.parse(ip('-d', '-j', 'link', 'show')) as Record<string, unknown>[]).map(
      ({ ifname, flags, mtu, address, ifalias, linkinfo, master }) => ({
        ifname,
        flags,
        mtu,
        address,
        ifalias,
        linkinfo,
        master,
      }),
    ),
  );
}

describe('tsmacvlan doctor', () => {
  let dir: string;
  let parent: string;
  let socket: string;
  let stateDir: string;
  const daemons: Daemon[] = [];
  const extraLinks: string[] = [];

  beforeAll(() => assertPrivateNetns());
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'dr-doctor-'));
    parent = uniqueName('dr');
    vethPair(parent);
    socket = join(dir, 'plugins', 'tsmacvlan-dr.sock');
    stateDir = join(dir, 'state');
  });
  afterEach(() => {
    for (const d of daemons.splice(0)) d.child.kill('SIGKILL');
    for (const name of [parent, ...extraLinks.splice(0)]) deleteLink(name);
    deleteLinksByPrefix('tsmv');
    rmSync(dir, { recursive: true, force: true });
  });

  async function startDaemon(): Promise<Daemon> {
    const daemon = spawnDaemon(['serve', '--socket', socket, '--state-dir', stateDir]);
    daemons.push(daemon);
    await waitForSocket(socket, daemon);
    return daemon;
  }

  async function createNetwork(networkId: string, generic: Record<string, unknown>) {
    const res = await post(socket, 'NetworkDriver.CreateNetwork', {
      NetworkID: networkId,
      Options: { 'com.docker.network.generic': generic },
      IPv4Data: [{ Pool: '10.70.0.0/24', Gateway: '10.70.0.1/24' }],
    });
    expect(res.status).toBe(200);
  }

  it('on a healthy setup every check is OK, except 802.1q and ipvlan exactly when this kernel has none (then WARN with modprobe, as no network needs them), and it exits 0; and it changes nothing', async () => {
    const vlans = kernelHasVlans(parent);
    const ipvlans = kernelHasIpvlan(parent); // before the network: no macvlan on the parent yet
    await startDaemon();
    await createNetwork('nhealthy', { parent });
    const before = snapshot();

    const { code, report, check } = doctor('--parent', parent, '--socket', socket, '--state-dir', stateDir);
    expect(report.checks.map((c) => c.id)).toEqual([
      'privileges',
      'kernel.macvlan',
      'kernel.8021q',
      'kernel.ipvlan',
      `parent:${parent}`,
      'socket',
      'version',
      'state',
      'drift',
    ]);
    for (const c of report.checks.filter((c) => c.id !== 'kernel.8021q' && c.id !== 'kernel.ipvlan'))
      expect(c.status, `${c.id}: ${c.message}`).toBe('OK');
    expect(check('kernel.macvlan')?.message).toContain('throwaway network namespace');
    expect(check(`parent:${parent}`)?.message).toBe(
      `${parent}: is up, with carrier; MTU 1500; used by network(s) nhealthy`,
    );
    expect(check('socket')?.message).toContain("Docker's driver name for it is 'tsmacvlan-dr'");
    expect(check('version')?.message).toBe(`the plugin runs tsmacvlan ${VERSION}, as this CLI`);
    expect(report.tsmacvlanVersion).toBe(VERSION);
    expect(check('state')?.message).toContain('1 network(s), 0 endpoint(s)');
    expect(check('kernel.8021q')).toMatchObject(
      vlans
        ? { status: 'OK' }
        : {
            status: 'WARN',
            message: expect.stringMatching(/EOPNOTSUPP|ENOTSUP/),
            fix: expect.stringContaining('modprobe 8021q'),
          },
    );
    expect(check('kernel.ipvlan')).toMatchObject(
      ipvlans
        ? { status: 'OK' }
        : {
            status: 'WARN',
            message: expect.stringMatching(/EOPNOTSUPP|ENOTSUP/),
            fix: expect.stringContaining('modprobe ipvlan'),
          },
    );
    expect(code).toBe(0);
    // Read-only: the probe's links lived and died in a namespace of its own.
    expect(snapshot()).toBe(before);
  });

  it('a --parent that needs a VLAN makes a kernel without 802.1q a FAIL, naming it', async () => {
    await startDaemon();
    const { code, check } = doctor('--parent', `${parent}.10`, '--socket', socket, '--state-dir', stateDir);
    if (kernelHasVlans(parent)) {
      expect(check('kernel.8021q')?.status).toBe('OK');
    } else {
      expect(check('kernel.8021q')).toMatchObject({
        status: 'FAIL',
        message: expect.stringContaining(`needed by --parent ${parent}.10`),
      });
      expect(code).toBe(1);
    }
  });

  it('prints one line per check and the fix under each one that is not OK', async () => {
    const run = spawnSync(
      process.execPath,
      [CLI, 'doctor', '--parent', parent, '--socket', join(dir, 'none.sock'), '--state-dir', stateDir],
      { encoding: 'utf8' },
    );
    expect(run.status).toBe(1);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^OK {4}privileges +running as uid 0/);
    expect(lines.find((l) => l.startsWith('FAIL  socket'))).toContain('the plugin is not running');
    expect(lines[lines.findIndex((l) => l.startsWith('FAIL  socket')) + 1]).toMatch(
      /^ +fix: start the plugin: tsmacvlan serve --socket /,
    );
    // kernel.8021q and kernel.ipvlan are WARN or OK by this kernel's modules (neither is needed here): 7 in all.
    const summary = /^1 FAIL, (\d+) WARN, (\d+) OK \(tsmacvlan (.+)\)$/.exec(lines.at(-1) ?? '');
    expect(summary, lines.at(-1)).not.toBeNull();
    expect(Number(summary![1]) + Number(summary![2])).toBe(7);
    expect(summary![3]).toBe(VERSION);
  });

  it('a parent that is down FAILs with the command to bring it up; its peer, up without carrier, WARNs', () => {
    ip('link', 'set', parent, 'down');
    const { check } = doctor(
      '--parent',
      parent,
      '--parent',
      `${parent}p`,
      '--socket',
      join(dir, 'none.sock'),
      '--state-dir',
      stateDir,
    );
    expect(check(`parent:${parent}`)).toMatchObject({
      status: 'FAIL',
      message: expect.stringContaining('is down'),
      fix: expect.stringContaining(`ip link set ${parent} up`),
    });
    expect(check(`parent:${parent}p`)).toMatchObject({
      status: 'WARN',
      message: expect.stringContaining('no carrier'),
      fix: expect.stringContaining('connect it'),
    });
  });

  it('a missing parent FAILs, whether named with --parent or used by a recorded network', async () => {
    await startDaemon();
    await createNetwork('nmissing', { parent });
    deleteLink(parent);
    const { check } = doctor('--parent', 'drnosuch0', '--socket', socket, '--state-dir', stateDir);
    expect(check('parent:drnosuch0')).toMatchObject({
      status: 'FAIL',
      message: 'drnosuch0: does not exist',
      fix: expect.stringContaining("'ip link'"),
    });
    expect(check(`parent:${parent}`)).toMatchObject({
      status: 'FAIL',
      message: expect.stringContaining('yet network(s) nmissing use it'),
      fix: expect.stringContaining(`bring '${parent}' back`),
    });
  });

  it('a bridge port FAILs, naming the bridge to use instead (the kernel would refuse a macvlan on it)', () => {
    const bridge = uniqueName('drbr');
    ip('link', 'add', bridge, 'type', 'bridge');
    extraLinks.push(bridge);
    ip('link', 'set', parent, 'master', bridge);
    const { check } = doctor('--parent', parent, '--socket', join(dir, 'none.sock'), '--state-dir', stateDir);
    expect(check(`parent:${parent}`)).toMatchObject({
      status: 'FAIL',
      message: expect.stringContaining(`port of bridge '${bridge}'`),
      fix: `use '${bridge}' itself as the parent (-o parent=${bridge})`,
    });
  });

  it('no socket, and a stale socket left by a killed plugin, FAIL with how to start it', async () => {
    const none = doctor('--socket', join(dir, 'none.sock'), '--state-dir', stateDir);
    expect(none.check('socket')).toMatchObject({
      status: 'FAIL',
      message: expect.stringContaining('the plugin is not running'),
      fix: expect.stringContaining(`tsmacvlan serve --socket ${join(dir, 'none.sock')}`),
    });

    const daemon = await startDaemon();
    daemon.child.kill('SIGKILL');
    await daemon.exited;
    const stale = doctor('--socket', socket, '--state-dir', stateDir);
    expect(stale.check('socket')).toMatchObject({
      status: 'FAIL',
      message: expect.stringContaining('nothing listens on it'),
      fix: expect.stringContaining('replaces the stale socket'),
    });
  });

  it('an unreadable state file FAILs the state check; a marked link nobody recorded WARNs as drift', async () => {
    await startDaemon();
    await createNetwork('nstate', { parent });
    writeFileSync(join(stateDir, 'networks', 'broken.json'), '{"id": "broken", ');
    const broken = doctor('--socket', socket, '--state-dir', stateDir);
    expect(broken.check('state')).toMatchObject({
      status: 'FAIL',
      message: expect.stringContaining('broken.json: not valid JSON'),
      fix: expect.stringContaining('repair the file'),
    });
    expect(broken.check('drift')).toBeUndefined(); // no drift verdict on a state it could not read

    rmSync(join(stateDir, 'networks', 'broken.json'));
    // One in the device group of this state's instance (its start would delete it), one marked by alias only.
    const leak = uniqueName('drlk');
    ip('link', 'add', leak, 'link', parent, 'type', 'macvlan', 'mode', 'bridge');
    ip('link', 'set', leak, 'group', String(stateGroup(stateDir)));
    const stray = uniqueName('dral');
    ip('link', 'add', stray, 'link', parent, 'type', 'macvlan', 'mode', 'bridge');
    ip('link', 'set', stray, 'alias', 'tsmacvlan:endpoint');
    extraLinks.push(leak, stray);
    const drift = doctor('--socket', socket, '--state-dir', stateDir);
    expect(drift.check('state')?.status).toBe('OK');
    expect(drift.check(`drift:${leak}`)).toMatchObject({
      status: 'WARN',
      message: expect.stringContaining('leaked-link'),
      fix: expect.stringContaining("run 'tsmacvlan gc'"),
    });
    expect(drift.check(`drift:${stray}`)).toMatchObject({
      status: 'WARN',
      fix: expect.stringContaining(`ip link del ${stray}`),
    });
    expect(drift.code).toBe(0); // drift WARNs, it does not FAIL
  });

  it('a state dir that does not exist is not created', () => {
    const absent = join(dir, 'nothing-here');
    const { check } = doctor('--socket', join(dir, 'none.sock'), '--state-dir', absent);
    expect(check('state')).toMatchObject({ status: 'OK', message: expect.stringContaining('does not exist yet') });
    expect(existsSync(absent)).toBe(false);
  });
});
