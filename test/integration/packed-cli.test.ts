// The CLI as a host gets it without the source tree: `npm pack`, then `npm install -g` of the tarball into a prefix
// of its own, offline (the tarball bundles its dependencies; netlink's binding is compiled at install from the
// bundled, patched source). The installed `tsmacvlan` runs the plugin, and its status and doctor read it.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertPrivateNetns, deleteLink, uniqueName, vethPair } from '../helpers/net';
import { post, spawnProcess, waitForSocket, type Daemon } from '../helpers/serve';

assertPrivateNetns();

const REPO = join(__dirname, '../..');
const VERSION = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version as string;

describe('the packed CLI, installed from its tarball into a scratch prefix', () => {
  let dir: string;
  let prefix: string;
  let bin: string;
  let daemon: Daemon | undefined;
  let parent: string;
  const env = { PATH: `${dirname(process.execPath)}:/usr/bin:/bin` };

  const run = (...args: string[]) => {
    const done = spawnSync(bin, args, { encoding: 'utf8', env, timeout: 60_000 });
    return { code: done.status, stdout: done.stdout, stderr: done.stderr };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsmv-packed-'));
    prefix = join(dir, 'prefix');
    // The build is the suite's (npm run build); prepack would rebuild it.
    // Not execFileSync: a worker blocked for minutes loses vitest's RPC.
    const npm = (...args: string[]) =>
      promisify(execFile)('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], {
        cwd: REPO,
        timeout: 900_000,
      });
    await npm('pack', '--ignore-scripts', '--pack-destination', dir);
    const tarball = join(dir, `tsmacvlan-${VERSION}.tgz`);
    const t0 = Date.now();
    // No network in this namespace: everything must come from the tarball.
    await npm('install', '--global', '--offline', '--prefix', prefix, tarball);
    console.log(`[packed-cli] npm install -g of the tarball: ${Date.now() - t0} ms`);
    bin = join(prefix, 'bin', 'tsmacvlan');
    parent = uniqueName('pkp');
    vethPair(parent);
  }, 900_000);

  afterAll(async () => {
    daemon?.child.kill('SIGKILL');
    await daemon?.exited;
    if (parent) deleteLink(parent);
    rmSync(dir, { recursive: true, force: true });
  });

  it('puts an executable tsmacvlan with its shebang on the prefix PATH, and it says its version', () => {
    const target = realpathSync(bin);
    expect(target).toBe(join(prefix, 'lib/node_modules/tsmacvlan/dist/cli/main.js'));
    expect(statSync(target).mode & 0o111).toBe(0o111);
    expect(readFileSync(target, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
    expect(run('--version')).toEqual({ code: 0, stdout: `tsmacvlan ${VERSION}\n`, stderr: '' });
    // No source, tests or dev dependencies came along.
    const installed = join(prefix, 'lib/node_modules/tsmacvlan');
    expect(readdirSync(installed).sort()).toEqual(
      ['README.md', 'build', 'dist', 'docs', 'node_modules', 'package.json', 'patches', 'plugin', 'scripts'].sort(),
    );
    expect(existsSync(join(installed, 'node_modules/vitest'))).toBe(false);
  });

  it('runs the plugin on the patched netlink binding; its status and doctor read it', async () => {
    const socket = join(dir, 'packed.sock');
    const stateDir = join(dir, 'state');
    daemon = spawnProcess(bin, ['serve', '--socket', socket, '--state-dir', stateDir], env);
    await waitForSocket(socket, daemon, 30_000); // serve refuses to start on an unpatched binding
    const ready = daemon
      .output()
      .split('\n')
      .find((line) => line.includes('"msg":"tsmacvlan ready"'));
    expect(JSON.parse(ready!)).toMatchObject({
      version: VERSION,
      netlinkBinding: join(
        prefix,
        'lib/node_modules/tsmacvlan/node_modules/netlink/build/Release/netlink_binding.node',
      ),
    });
    const created = await post(socket, 'NetworkDriver.CreateNetwork', {
      NetworkID: 'npacked',
      Options: { 'com.docker.network.generic': { parent } },
      IPv4Data: [{ Pool: '10.75.0.0/24' }],
    });
    expect(created.status).toBe(200);

    const where = ['--socket', socket, '--state-dir', stateDir];
    const status = run('status', '--json', ...where);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({
      tsmacvlanVersion: VERSION,
      networks: [expect.objectContaining({ id: 'npacked', parent })],
    });
    const doctor = run('doctor', '--json', ...where);
    const checks = JSON.parse(doctor.stdout).checks as { id: string; status: string; message: string }[];
    expect(checks.find((c) => c.id === 'socket')?.status).toBe('OK');
    expect(checks.find((c) => c.id === 'version')).toMatchObject({
      status: 'OK',
      message: `the plugin runs tsmacvlan ${VERSION}, as this CLI`,
    });
    expect(checks.find((c) => c.id === 'state')?.message).toContain('1 network(s)');
  });
});
