// `serve --metrics-address` as a process: off by default (prom-client is never loaded then), on by flag or
// TSMACVLAN_METRICS_ADDRESS, refused with what to type when the address is wrong or taken.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertPrivateNetns } from '../../helpers/net';
import { freePort, scrape } from '../../helpers/prometheus';
import { type Daemon, spawnDaemon, waitForSocket } from '../../helpers/serve';

describe('serve --metrics-address', () => {
  let dir: string;
  const daemons: Daemon[] = [];

  beforeAll(() => {
    assertPrivateNetns();
    dir = mkdtempSync(join(tmpdir(), 'tmvM-'));
  });
  afterEach(async () => {
    for (const d of daemons.splice(0)) {
      d.child.kill('SIGKILL');
      await d.exited;
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function start(name: string, extra: string[], env: NodeJS.ProcessEnv = {}): { daemon: Daemon; socket: string } {
    const socket = join(dir, `${name}.sock`);
    const args = ['serve', '--socket', socket, '--state-dir', join(dir, name), '--log-level', 'info', ...extra];
    const daemon = spawnDaemon(args, env);
    daemons.push(daemon);
    return { daemon, socket };
  }

  it('loads no metrics code without it, even with the variable set empty (the managed plugin default)', async () => {
    // A preload that writes the modules the process loaded when it exits (SIGTERM: the plugin exits 0).
    const preload = join(dir, 'modules-at-exit.js');
    const out = join(dir, 'modules.json');
    writeFileSync(
      preload,
      `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(Object.keys(require.cache))));`,
    );
    const { daemon, socket } = start('off', [], {
      NODE_OPTIONS: `--require ${preload}`,
      TSMACVLAN_METRICS_ADDRESS: '',
    });
    await waitForSocket(socket, daemon);
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
    const modules = JSON.parse(readFileSync(out, 'utf8')) as string[];
    expect(modules.some((m) => m.includes('/dist/cli/main.js'))).toBe(true);
    expect(modules.filter((m) => /prom-client|\/dist\/metrics\//.test(m))).toEqual([]);
    expect(daemon.output()).not.toMatch(/serving metrics/);
  });

  it('serves /metrics at TSMACVLAN_METRICS_ADDRESS; other paths and methods are refused', async () => {
    const at = `127.0.0.1:${await freePort()}`;
    const { daemon, socket } = start('env', [], { TSMACVLAN_METRICS_ADDRESS: at });
    await waitForSocket(socket, daemon);
    expect(daemon.output()).toMatch(new RegExp(`"address":"${at}".*serving metrics at /metrics`));
    expect(await scrape(at)).toMatch(/^tsmacvlan_networks 0$/m);
    expect((await fetch(`http://${at}/nope`)).status).toBe(404);
    expect((await fetch(`http://${at}/metrics`, { method: 'POST' })).status).toBe(405);
    expect(await (await fetch(`http://${at}/`)).text()).toContain('/metrics');
  });

  it('refuses an address something else listens on, and gives its socket back', async () => {
    const port = await freePort();
    const taken: Server = createServer().listen(port, '127.0.0.1');
    await new Promise((r) => taken.once('listening', r));
    try {
      const busy = start('busy', ['--metrics-address', `127.0.0.1:${port}`]);
      expect(await busy.daemon.exited).toBe(1);
      expect(busy.daemon.output()).toContain(
        `tsmacvlan: cannot serve metrics on 127.0.0.1:${port} (EADDRINUSE): something else listens there; give another --metrics-address`,
      );
      expect(busy.daemon.output()).not.toMatch(/tsmacvlan ready/);
      expect(existsSync(busy.socket)).toBe(false);
    } finally {
      taken.close();
    }
  });
});
