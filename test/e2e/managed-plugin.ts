// The managed plugin in the lab's engine, for the e2e files that install one: created from plugin/build
// (plugin/create.sh --reuse, which test/e2e/provision.sh leaves up to date: the lab cannot reach the npm registry to
// build), removed, where its state is, and the operator CLI as the lab's host runs it.
import { join } from 'node:path';
import { CLI } from '../helpers/serve';
import { Engine } from '../lab/engine';
import { DOCKER_BIN, docker, dockerOk, run } from './docker';

const REPO = join(__dirname, '../..');

export interface Created {
  summary: string; // create.sh's last line
  rootfsBytes: number;
  ms: number;
}

/**
 * plugin/create.sh --reuse [--arch ARCH] NAME into the lab's engine, with the prefix provision.sh built plugin/build
 * with. Another architecture's plugin comes from plugin/build-ARCH, which test/e2e/provision.sh leaves too.
 */
export async function createManagedPlugin(name: string, arch?: string): Promise<Created> {
  const t0 = Date.now();
  const args = ['--reuse', ...(arch ? ['--arch', arch] : []), name];
  // stderr into stdout, so that a failure shows docker build's messages in order.
  const res = await run('bash', ['-c', 'exec bash "$0" "$@" 2>&1', join(REPO, 'plugin/create.sh'), ...args], {
    timeoutMs: 900_000,
    allowFail: true,
    env: { ...process.env, DOCKER: DOCKER_BIN, TSMACVLAN_BUILD_PREFIX: 'tsmv-pkg-' },
  });
  if (res.code !== 0)
    throw new Error(
      `plugin/create.sh ${args.join(' ')} failed (${res.code}); plugin/build${arch ? `-${arch}` : ''} must be up to ` +
        `date, as test/e2e/provision.sh leaves it (a build in the lab cannot reach the npm registry):\n` +
        res.stdout.split('\n').slice(-40).join('\n'),
    );
  const summary = res.stdout.trim().split('\n').pop() ?? '';
  const bytes = /rootfs \d+ MB \((\d+) bytes\)/.exec(summary);
  if (!bytes) throw new Error(`no size in create.sh's last line: ${summary}`);
  return { summary, rootfsBytes: Number(bytes[1]), ms: Date.now() - t0 };
}

/** Disables (forced) and removes a plugin of the lab's engine, whatever state it is in. */
export async function removeManagedPlugin(name: string): Promise<void> {
  await docker(['plugin', 'disable', '-f', name], { allowFail: true });
  await docker(['plugin', 'rm', '-f', name], { allowFail: true });
}

/** The host directory of a plugin's state: its propagated mount (docs/install.md, "Where the state is"). */
export async function managedPluginStateDir(name: string): Promise<string> {
  return Engine.ofLab().managedPluginStateDir(await dockerOk(['plugin', 'inspect', '-f', '{{.Id}}', name]));
}

/**
 * The operator CLI as on the lab's host, with no flags: it finds the plugin in its engine's plugin store (the lab's
 * dockerd keeps its data under the lab, not /var/lib/docker: TSMACVLAN_DOCKER_DATA_ROOT says where, as
 * `--docker-data-root` would).
 */
export async function tsmacvlan(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [CLI, ...args], {
    allowFail: true,
    env: { ...process.env, TSMACVLAN_DOCKER_DATA_ROOT: Engine.ofLab().dataRoot },
  });
}
