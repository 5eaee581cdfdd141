// The built CLI as a process: its version, help and exit statuses; gc --json; and doctor and status with no flags
// finding a managed plugin the way they find one on a host (Docker's plugin store, the plugin's socket under
// /run/docker/plugins/<id>/, here the private one test/in-netns.sh mounts), played by a real daemon.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { commandHelp, COMMANDS } from '../../src/cli/usage';
import { DOCTOR_JSON_SCHEMA } from '../../src/inspect/doctor/check';
import { STATUS_JSON_SCHEMA } from '../../src/inspect/status-schema';
import { stateGroup } from '../../src/state/instance';
import {
  assertPrivateNetns,
  assertPrivatePluginsDir,
  deleteLink,
  ip,
  linkNames,
  uniqueName,
  vethPair,
} from '../helpers/net';
import { writeStoredPlugin } from '../helpers/plugin-store';
import { CLI, post, spawnDaemon, waitForSocket, type Daemon } from '../helpers/serve';

assertPrivateNetns();
assertPrivatePluginsDir();

const VERSION = JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')).version as string;

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const run = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ...env },
  });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('tsmacvlan as a command', () => {
  let dir: string;
  const daemons: Daemon[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsmv-cli-'));
  });
  afterEach(async () => {
    for (const d of daemons.splice(0)) {
      d.child.kill('SIGKILL');
      await d.exited;
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("--version prints package.json's version, and --help every command, exit 0", () => {
    expect(cli(['--version'])).toEqual({ code: 0, stdout: `tsmacvlan ${VERSION}\n`, stderr: '' });
    expect(cli(['version']).stdout).toBe(`tsmacvlan ${VERSION}\n`);
    const help = cli(['--help']);
    expect(help.code).toBe(0);
    for (const command of COMMANDS) {
      expect(help.stdout).toMatch(new RegExp(`^ {2}${command} `, 'm'));
      const run = cli([command, '--help']);
      expect(run.code, command).toBe(0);
      expect(run.stdout).toBe(`${commandHelp(command)}\n`);
    }
    expect(cli(['gc', '-h']).stdout).toBe(`${commandHelp('gc')}\n`);
    expect(cli(['help', 'uninstall']).stdout).toBe(`${commandHelp('uninstall')}\n`);
  });

  it('usage errors exit 2, say what is wrong and what to type, and do nothing', () => {
    const stateDir = join(dir, 'never');
    const cases: [string[], string][] = [
      [[], 'tsmacvlan: no command given\nusage: tsmacvlan COMMAND'],
      [['doctr'], "tsmacvlan: unknown command 'doctr'\nusage: tsmacvlan COMMAND"],
      [['status', '--sate-dir', stateDir], "unknown or incomplete argument '--sate-dir'\nusage: tsmacvlan status"],
      [['serve', '--log-level', 'loud'], "log level 'loud' is not one of"],
      [['doctor', '--etcd-ca', '/ca.pem'], '--etcd-ca needs --etcd'],
      [
        ['gc', '--cluster', '--state-dir', stateDir, '--etcd', 'http://127.0.0.1:9'],
        'gc --cluster needs --forget-instance ID',
      ],
      [
        ['gc', '--forget-instance', 'abc', '--state-dir', stateDir],
        "type 'tsmacvlan gc --cluster --forget-instance abc --etcd URL'",
      ],
      [
        ['status', '--plugin', 'tsmacvlan:9', '--docker-data-root', join(dir, 'docker')],
        "no tsmacvlan plugin 'tsmacvlan:9'",
      ],
      [['--version', 'now'], '--version takes no arguments'],
    ];
    for (const [args, message] of cases) {
      const run = cli(args);
      expect({ args, code: run.code }).toEqual({ args, code: 2 });
      expect(run.stderr).toContain(message);
    }
    expect(existsSync(stateDir)).toBe(false);
  });

  it('the start-up log line carries the version', async () => {
    const socket = join(dir, 'ver.sock');
    const daemon = spawnDaemon(['serve', '--socket', socket, '--state-dir', join(dir, 'ver-state')]);
    daemons.push(daemon);
    await waitForSocket(socket, daemon, 30_000);
    const ready = daemon
      .output()
      .split('\n')
      .filter((line) => line.includes('"msg":"tsmacvlan ready"'))
      .map((line) => JSON.parse(line));
    expect(ready).toEqual([expect.objectContaining({ version: VERSION, socket })]);
    expect((await post(socket, 'Tsmacvlan.Version')).json).toEqual({ Version: VERSION });
  });

  it("gc --json says what it would repair and what it repaired, in gc's lines' words", async () => {
    const stateDir = join(dir, 'gc-state');
    const socket = join(dir, 'gc.sock');
    const daemon = spawnDaemon(['serve', '--socket', socket, '--state-dir', stateDir]);
    await waitForSocket(socket, daemon, 30_000); // writes the instance id
    daemon.child.kill('SIGTERM');
    await daemon.exited;
    const parent = uniqueName('gcp');
    const leak = uniqueName('gcl');
    vethPair(parent);
    try {
      ip('link', 'add', 'link', parent, 'name', leak, 'group', String(stateGroup(stateDir)), 'type', 'macvlan');
      const args = ['gc', '--state-dir', stateDir, '--socket', socket, '--json'];
      const dry = JSON.parse(cli([...args, '--dry-run']).stdout);
      const repair = {
        action: 'delete',
        link: leak,
        reason: 'macvlan link that no network or endpoint of the state owns',
        message: `delete link ${leak}: macvlan link that no network or endpoint of the state owns`,
      };
      expect(dry).toEqual({ version: 1, dryRun: true, stateDir, repairs: [repair] });
      expect(linkNames()).toContain(leak);
      const done = cli(args);
      expect(done.code).toBe(0);
      expect(JSON.parse(done.stdout)).toEqual({ version: 1, dryRun: false, stateDir, repairs: [repair] });
      expect(linkNames()).not.toContain(leak);
      expect(cli(args).stdout).toBe(
        JSON.stringify({ version: 1, dryRun: false, stateDir, repairs: [] }, null, 2) + '\n',
      );
    } finally {
      deleteLink(leak);
      deleteLink(parent);
    }
  });
});

describe('doctor and status with no flags, on a host with a managed plugin', () => {
  const validateDoctor = new Ajv({ allErrors: true }).compile(DOCTOR_JSON_SCHEMA);
  const validateStatus = new Ajv({ allErrors: true }).compile(STATUS_JSON_SCHEMA);
  const id = randomBytes(32).toString('hex');
  const name = 'tsmacvlan:latest';
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let stateDir: string;
  let daemon: Daemon | undefined;
  const socket = join('/run/docker/plugins', id, 'tsmacvlan.sock');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsmv-managed-'));
    // What Docker's data root holds for an installed plugin; the daemon plays the plugin on its socket, with its
    // state in the plugin's propagated mount.
    stateDir = writeStoredPlugin(join(dir, 'docker'), { id, name });
    env = { TSMACVLAN_DOCKER_DATA_ROOT: join(dir, 'docker') };
    daemon = spawnDaemon(['serve', '--socket', socket, '--state-dir', stateDir]);
    await waitForSocket(socket, daemon, 30_000);
    const created = await post(socket, 'NetworkDriver.CreateNetwork', {
      NetworkID: 'nmanaged',
      Options: { 'com.docker.network.generic': {} },
      IPv4Data: [{ Pool: '10.71.0.0/24' }],
    });
    expect(created.status).toBe(200);
  });
  afterAll(async () => {
    daemon?.child.kill('SIGKILL');
    await daemon?.exited;
    // The internal network's parent and veth peer stay after a stop, as for a real plugin: this state's own links go.
    if (existsSync(stateDir)) {
      const listed = ip('-o', 'link', 'show', 'group', String(stateGroup(stateDir))).trim();
      for (const line of listed ? listed.split('\n') : []) deleteLink(line.split(': ')[1]!.split('@')[0]!);
    }
    rmSync(join('/run/docker/plugins', id), { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it('find its socket and its propagated mount as its state dir, and say which version answers', () => {
    const run = cli(['doctor', '--json'], env);
    const report = JSON.parse(run.stdout);
    expect(validateDoctor(report), JSON.stringify(validateDoctor.errors)).toBe(true);
    const check = (id: string) => report.checks.find((c: { id: string }) => c.id === id);
    expect(check('plugin')).toEqual({
      id: 'plugin',
      status: 'OK',
      message: `the only one in ${dir}/docker/plugins: the managed plugin ${name} (id ${id.slice(0, 12)}, enabled, state ${stateDir})`,
    });
    expect(check('socket')).toMatchObject({ status: 'OK', message: expect.stringContaining(socket) });
    expect(check('version')).toMatchObject({
      status: 'OK',
      message: `the plugin runs tsmacvlan ${VERSION}, as this CLI`,
    });
    expect(check('state')).toMatchObject({
      status: 'OK',
      message: expect.stringContaining(`${stateDir}: 1 network(s)`),
    });
    expect(report.tsmacvlanVersion).toBe(VERSION);

    const status = JSON.parse(cli(['status', '--json'], env).stdout);
    expect(validateStatus(status), JSON.stringify(validateStatus.errors)).toBe(true);
    expect(status).toMatchObject({
      tsmacvlanVersion: VERSION,
      stateDir,
      driver: name,
      plugin: { name, id, enabled: true },
      networks: [expect.objectContaining({ id: 'nmanaged' })],
    });
    expect(cli(['status'], env).stdout.split('\n')[0]).toBe(
      `tsmacvlan ${VERSION}  state: ${stateDir}  driver: ${name} (managed plugin, enabled) (device group ${stateGroup(stateDir)})`,
    );
  });

  it('say how to enable a disabled one, and refuse to guess between two', async () => {
    daemon?.child.kill('SIGTERM');
    await daemon?.exited;
    daemon = undefined;
    writeStoredPlugin(join(dir, 'docker'), { id, name, enabled: false });
    const run = cli(['doctor', '--json'], env);
    expect(run.code).toBe(1);
    const checks = JSON.parse(run.stdout).checks as { id: string; status: string; fix?: string }[];
    expect(checks.find((c) => c.id === 'plugin')).toMatchObject({
      status: 'FAIL',
      fix: `docker plugin enable ${name}`,
    });
    expect(checks.find((c) => c.id === 'socket')).toMatchObject({
      status: 'FAIL',
      fix: `enable the plugin: docker plugin enable ${name}`,
    });

    const other = randomBytes(32).toString('hex');
    const next = writeStoredPlugin(join(dir, 'docker'), { id: other, name: 'tsmacvlan:next' });
    const both = cli(['status'], env);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('this host has 2 tsmacvlan instances; say which: --plugin tsmacvlan:');
    const picked = JSON.parse(cli(['status', '--json', '--plugin', 'tsmacvlan:next'], env).stdout);
    expect(picked).toMatchObject({ stateDir: next, driver: 'tsmacvlan:next', plugin: { id: other } });
  });
});
