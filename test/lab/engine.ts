// The suite's own Docker Engines, from TypeScript (test/lab/engine.sh does the work, so that the shell side of the
// suite starts and removes them the same way). An engine is its root directory: data root, exec root, socket and pid
// file live under it, so a handle can be made again from the root alone (e.g. from TSMV_ENGINE_ROOT in a test).
import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const ENGINE_SH = join(__dirname, 'engine.sh');
const execFileP = promisify(execFile);

/** Where test/lab/engines.sh unpacks Debian 12's 20.10, the engine when no lab names one. */
const UNPACKED_20_10 = join(__dirname, '../../.engines/20.10');

/**
 * The binary dirs of the lab's engine (TSMV_ENGINE_BIN, set by test/lab/in-lab.sh), else of the unpacked 20.10: never
 * the host's own Docker.
 */
export const DEFAULT_BIN_DIR =
  process.env.TSMV_ENGINE_BIN ?? `${join(UNPACKED_20_10, 'usr/bin')}:${join(UNPACKED_20_10, 'usr/sbin')}`;

/** The client of the lab's engine, of its own version (TSMV_DOCKER), else the unpacked 20.10's. */
export const DOCKER_CLIENT = process.env.TSMV_DOCKER ?? join(UNPACKED_20_10, 'usr/bin/docker');

/** A program of the engine in `binDir` (e.g. `ctr`, its containerd's client). */
export function engineProgram(name: string, binDir = DEFAULT_BIN_DIR): string {
  for (const dir of binDir.split(':')) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not in this dir
    }
  }
  throw new Error(`no ${name} in the engine's dirs ${binDir}: unpack the engines with bash test/lab/engines.sh`);
}

export class Engine {
  constructor(readonly root: string) {}

  /** The engine the lab of this run started for the suite (test/lab/in-lab.sh). */
  static ofLab(): Engine {
    const root = process.env.TSMV_ENGINE_ROOT;
    if (!root)
      throw new Error('no lab engine: run the e2e suite with bash test/lab/in-lab.sh npx vitest run --project e2e');
    return new Engine(root);
  }

  /**
   * Starts an engine under root inside the network namespace netns (a name under /run/netns), from the binaries in
   * binDir (a directory or a PATH-like list).
   */
  static async start(root: string, netns: string, binDir = DEFAULT_BIN_DIR): Promise<Engine> {
    await engineSh(['start', root, netns, binDir]);
    return new Engine(root);
  }

  get socket(): string {
    return join(this.root, 'docker.sock');
  }

  /** DOCKER_HOST for a client of this engine. */
  get host(): string {
    return `unix://${this.socket}`;
  }

  get execRoot(): string {
    return join(this.root, 'exec');
  }

  /** Its --data-root: its plugin store is `<data root>/plugins`. */
  get dataRoot(): string {
    return join(this.root, 'data');
  }

  /**
   * A managed plugin's socket. Docker on Linux keeps them in /run/docker/plugins/<plugin id>/ whatever the exec root
   * (the id is unique, so engines do not collide there): moby's getPluginExecRoot up to 29, and managed-plugin.test.ts
   * on 20.10, 26.1 and 28.5. `<exec root>/plugins/<plugin id>/` is looked at first all the same.
   */
  managedPluginSocket(pluginId: string, socket: string): string {
    const underExecRoot = join(this.execRoot, 'plugins', pluginId, socket);
    return existsSync(join(this.execRoot, 'plugins', pluginId))
      ? underExecRoot
      : join('/run/docker/plugins', pluginId, socket);
  }

  /** A managed plugin's state directory on the host: its propagated mount, which Docker makes under the data root. */
  managedPluginStateDir(pluginId: string): string {
    return join(this.root, 'data', 'plugins', pluginId, 'propagated-mount');
  }

  /** SIGKILLs its dockerd and the containerd that dockerd started, as a crash would. */
  async kill(): Promise<void> {
    await engineSh(['kill', this.root]);
  }

  /** Starts it again as it was started (same namespace, binaries and state). */
  async restart(): Promise<void> {
    await engineSh(['restart', this.root]);
  }

  /** Removes its containers, stops it and deletes its root. */
  async remove(): Promise<void> {
    await engineSh(['remove', this.root]);
  }
}

async function engineSh(args: string[]): Promise<void> {
  try {
    await execFileP('bash', [ENGINE_SH, ...args], { timeout: 300_000 });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`test/lab/engine.sh ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}
