// `tsmacvlan serve` as a process: socket, signals, state across restarts.
import { mkdtempSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { assertPrivateNetns, deleteLink, uniqueName, vethPair } from '../helpers/net';
import { post, spawnDaemon, waitForSocket, type Daemon } from '../helpers/serve';

describe('tsmacvlan serve', () => {
  let dir: string;
  let parent: string;
  const daemons: Daemon[] = [];

  beforeAll(() => assertPrivateNetns());
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsmv-serve-'));
    parent = uniqueName('par');
    vethPair(parent);
  });
  afterEach(() => {
    for (const d of daemons.splice(0)) d.child.kill('SIGKILL');
    deleteLink(parent);
    rmSync(dir, { recursive: true, force: true });
  });

  function start(socket: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Daemon {
    const daemon = spawnDaemon(['serve', '--socket', socket, '--state-dir', join(dir, 'state'), ...extra], env);
    daemons.push(daemon);
    return daemon;
  }

  it('listens on a root-only socket whose file name is the driver name, and leaves on SIGTERM keeping its state', async () => {
    const socket = join(dir, 'plugins', 'tsmacvlan-test.sock');
    const daemon = start(socket);
    await waitForSocket(socket, daemon);
    expect(statSync(socket).mode & 0o777).toBe(0o600);
    expect(basename(socket, '.sock')).toBe('tsmacvlan-test');
    expect(await post(socket, 'Plugin.Activate')).toEqual({
      status: 200,
      json: { Implements: ['NetworkDriver', 'IpamDriver'] },
    });
    const created = await post(socket, 'NetworkDriver.CreateNetwork', {
      NetworkID: 'n1',
      Options: { 'com.docker.network.generic': { parent } },
      IPv4Data: [{ Pool: '10.9.0.0/24', Gateway: '10.9.0.1/24' }],
    });
    expect(created.status).toBe(200);

    daemon.child.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
    expect(existsSync(socket)).toBe(false);
    expect(daemon.output()).toMatch(/"method":"\/NetworkDriver.CreateNetwork","networkId":"n1","status":200,"ms":/);

    const again = start(socket);
    await waitForSocket(socket, again);
    await post(socket, 'NetworkDriver.CreateEndpoint', {
      NetworkID: 'n1',
      EndpointID: 'e1',
      Interface: { Address: '10.9.0.2/24', MacAddress: '02:42:0a:09:00:02' },
    });
    const joined = await post(socket, 'NetworkDriver.Join', { NetworkID: 'n1', EndpointID: 'e1' });
    expect(joined.json).toMatchObject({ Gateway: '10.9.0.1' });
    await post(socket, 'NetworkDriver.DeleteEndpoint', { NetworkID: 'n1', EndpointID: 'e1' });
  });

  it('takes its settings from TSMACVLAN_SOCKET, TSMACVLAN_STATE_DIR and LOG_LEVEL', async () => {
    const socket = join(dir, 'env.sock');
    const daemon = spawnDaemon(['serve'], {
      TSMACVLAN_SOCKET: socket,
      TSMACVLAN_STATE_DIR: join(dir, 'envstate'),
      LOG_LEVEL: 'warn',
    });
    daemons.push(daemon);
    await waitForSocket(socket, daemon);
    await post(socket, 'NetworkDriver.CreateNetwork', {
      NetworkID: 'nenv',
      Options: { 'com.docker.network.generic': { parent } },
    });
    expect(existsSync(join(dir, 'envstate', 'networks', 'nenv.json'))).toBe(true);
    expect(daemon.output()).not.toMatch(/"msg":"request"/); // info lines are off at warn
  });

  it('refuses to start a second instance on a live socket, and replaces a stale one', async () => {
    const socket = join(dir, 'one.sock');
    const first = start(socket);
    await waitForSocket(socket, first);
    const second = start(socket);
    expect(await second.exited).toBe(1);
    expect(second.output()).toMatch(`another server is already listening on ${socket}`);
    first.child.kill('SIGKILL');
    await first.exited;
    expect(existsSync(socket)).toBe(true); // a killed server leaves its socket
    const third = start(socket);
    await waitForSocket(socket, third);
    expect((await post(socket, 'Plugin.Activate')).status).toBe(200);
  });

  it('rejects unknown arguments with the usage, exit status 2', async () => {
    const daemon = spawnDaemon(['serve', '--sokcet', 'x']);
    expect(await daemon.exited).toBe(2);
    expect(daemon.output()).toMatch(/unknown or incomplete argument '--sokcet'[\s\S]*usage: tsmacvlan serve/);
  });
});
