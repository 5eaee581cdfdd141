// The plugin as Docker meets it: `tsmacvlan serve` in the lab's namespace on /run/docker/plugins/<driver>.sock.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { spawnDaemon, waitForSocket, type Daemon } from '../helpers/serve';
import { runId } from '../lab/lab';
import { stateGroup } from '../../src/state/instance';
import { removeDockerObjects, run } from './docker';
import { destroyAllSwitches } from './topology';

/**
 * This run's driver name: every dockerd finds legacy plugins in the one /run/docker/plugins, so a name of its own keeps
 * a real `tsmacvlan`, and the instances of other runs on the same machine, apart from this one.
 */
export const DRIVER = `tsmacvlan-${runId()}`;
export const SOCKET = `/run/docker/plugins/${DRIVER}.sock`;

export interface PluginDaemon {
  stateDir: string;
  daemon: Daemon;
  /** SIGTERM and wait; the state dir stays. */
  stop(): Promise<void>;
  /** Stops it and starts it again on the same state. */
  restart(): Promise<void>;
  /** SIGKILLs it (no clean-up of any kind, as a crash) and starts it again on the same state. */
  killAndRestart(): Promise<void>;
  /** Stops it and removes its state. */
  destroy(): Promise<void>;
}

/** `args`: more of serve's flags (e.g. --metrics-address); `env`: more of its environment. */
export async function startPluginDaemon(
  stateDir = mkdtempSync(join(tmpdir(), 'tsmv-e2e-state-')),
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
): Promise<PluginDaemon> {
  const launch = async () => {
    const daemon = spawnDaemon(['serve', '--socket', SOCKET, '--state-dir', stateDir, ...args], env);
    await waitForSocket(SOCKET, daemon);
    return daemon;
  };
  const handle: PluginDaemon = {
    stateDir,
    daemon: await launch(),
    async stop() {
      const { child } = handle.daemon;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await handle.daemon.exited;
      }
    },
    async restart() {
      await handle.stop();
      handle.daemon = await launch();
    },
    async killAndRestart() {
      handle.daemon.child.kill('SIGKILL');
      await handle.daemon.exited;
      handle.daemon = await launch();
    },
    async destroy() {
      await handle.stop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
  return handle;
}

/**
 * The hooks every e2e file with the legacy plugin needs: the plugin up for the file, and after each test (and the
 * file) its Docker objects (named with `prefix`) and switches gone. Returns the daemon, once started.
 */
export function withPluginDaemon(prefix: string, env: NodeJS.ProcessEnv = {}): () => PluginDaemon {
  let plugin: PluginDaemon | undefined;
  const cleanUp = async () => {
    await removeDockerObjects(prefix);
    await destroyAllSwitches();
  };
  beforeAll(async () => {
    plugin = await startPluginDaemon(undefined, [], env);
  });
  afterEach(cleanUp);
  afterAll(async () => {
    await cleanUp();
    await plugin?.destroy();
  });
  return () => {
    if (!plugin) throw new Error('the plugin daemon is not started yet');
    return plugin;
  };
}

/**
 * The links of the plugin instance whose state is stateDir (its device group) of the given kinds (e: endpoint,
 * h: host-access shim, i: internal parent), by their names: `tsmv` + kind + 10 characters.
 */
export async function pluginLinksOnHost(stateDir: string, kinds = 'ehi'): Promise<string[]> {
  const group = stateGroup(stateDir);
  if (group === undefined) throw new Error(`${stateDir} holds no plugin instance id: the plugin never started there`);
  const out = (await run('ip', ['-o', 'link', 'show', 'group', String(group)])).stdout;
  return [...out.matchAll(new RegExp(`^\\d+: (tsmv[${kinds}][0-9a-zA-Z]{10})[:@]`, 'gm'))].map((m) => m[1]);
}
