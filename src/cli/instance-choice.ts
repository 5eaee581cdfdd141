// Which tsmacvlan instance of this host an operator command (doctor, status, gc, uninstall) looks at: its socket and
// its state dir. Given flags (or the environment) win; what they leave out comes from the managed plugin they match;
// with none, the one instance found, a managed plugin in Docker's plugin store or the service's socket.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  describePlugin,
  dockerDataRoot,
  listManagedPlugins,
  type ManagedPlugin,
  PLUGINS_RUNTIME_DIR,
  type PluginStore,
} from '../inspect/managed-plugins';
import { UsageError } from './usage';

export const DEFAULT_SOCKET = '/run/docker/plugins/tsmacvlan.sock';
export const DEFAULT_STATE_DIR = '/var/lib/tsmacvlan';

export const WHERE_FLAGS = ['--socket', '--state-dir', '--plugin', '--docker-data-root'];

export interface Instance {
  socket: string;
  stateDir: string;
  /** The managed plugin it is, when Docker's plugin store has one with that socket or state dir. */
  plugin?: ManagedPlugin;
  /** How it was found, in a sentence (doctor prints it). */
  found: string;
}

/** Where Docker keeps plugins' sockets on this host (tests give their own). */
export interface HostPaths {
  runtimeDir: string;
  /** The service's socket (a legacy plugin's), looked for when nothing is given. */
  serviceSocket: string;
}

const HOST: HostPaths = { runtimeDir: PLUGINS_RUNTIME_DIR, serviceSocket: DEFAULT_SOCKET };

/** The values of WHERE_FLAGS; the environment stands in for --socket, --state-dir and --docker-data-root. */
export function chooseInstance(
  values: Map<string, string>,
  env: NodeJS.ProcessEnv = process.env,
  host: HostPaths = HOST,
): Instance {
  const socket = values.get('--socket') ?? (env.TSMACVLAN_SOCKET || undefined);
  const stateDir = values.get('--state-dir') ?? (env.TSMACVLAN_STATE_DIR || undefined);
  const ref = values.get('--plugin');
  const dataRoot = dataRootOf(values, env);
  if (ref !== undefined && (values.has('--socket') || values.has('--state-dir')))
    throw new UsageError(
      '--plugin names a managed plugin, its socket and its state dir: give it without --socket and --state-dir',
    );
  const store = listManagedPlugins(dataRoot, host.runtimeDir);
  if (ref !== undefined) return byReference(store, ref);
  if (socket !== undefined || stateDir !== undefined) {
    const plugin =
      store.plugins.find((p) => socket !== undefined && resolve(p.socket) === resolve(socket)) ??
      store.plugins.find((p) => stateDir !== undefined && p.stateDir && resolve(p.stateDir) === resolve(stateDir));
    return {
      socket: socket ?? plugin?.socket ?? host.serviceSocket,
      stateDir: stateDir ?? plugin?.stateDir ?? DEFAULT_STATE_DIR,
      ...(plugin && { plugin }),
      found: plugin ? `given, and the managed plugin ${describePlugin(plugin)}` : 'given',
    };
  }
  return onlyOne(store, host.serviceSocket);
}

function dataRootOf(values: Map<string, string>, env: NodeJS.ProcessEnv): string {
  return values.get('--docker-data-root') ?? (env.TSMACVLAN_DOCKER_DATA_ROOT || dockerDataRoot());
}

/**
 * The state dirs of every instance this host knows of, whatever the flags chose: each managed plugin's in Docker's
 * plugin store, and the service's default. A link marked by none of them belongs to an instance whose state is gone.
 */
export function knownStateDirs(
  values: Map<string, string>,
  env: NodeJS.ProcessEnv = process.env,
  host: HostPaths = HOST,
): string[] {
  const store = listManagedPlugins(dataRootOf(values, env), host.runtimeDir);
  return [DEFAULT_STATE_DIR, ...store.plugins.flatMap((p) => (p.stateDir ? [p.stateDir] : []))];
}

function byReference(store: PluginStore, ref: string): Instance {
  const named = store.plugins.filter((p) => p.name === ref || p.name === `${ref}:latest` || p.id === ref);
  const matches = named.length ? named : store.plugins.filter((p) => ref.length >= 4 && p.id.startsWith(ref));
  if (matches.length !== 1) {
    const what = matches.length ? `${matches.length} managed plugins match '${ref}'` : `no tsmacvlan plugin '${ref}'`;
    throw new UsageError(`${what} in ${store.dir}: ${installed(store)}`);
  }
  return managed(matches[0], `--plugin ${ref}`);
}

function managed(plugin: ManagedPlugin, how: string): Instance {
  if (!plugin.stateDir)
    throw new Error(
      `the managed plugin ${plugin.name} has neither a propagated mount nor a 'state' mount: it is not a tsmacvlan plugin this CLI knows`,
    );
  return {
    socket: plugin.socket,
    stateDir: plugin.stateDir,
    plugin,
    found: `${how}: the managed plugin ${describePlugin(plugin)}`,
  };
}

/** With nothing given: the one instance on this host, the defaults when there is none, a usage error for several. */
function onlyOne(store: PluginStore, serviceSocket: string): Instance {
  const service = existsSync(serviceSocket);
  const count = store.plugins.length + (service ? 1 : 0);
  if (count === 0) {
    const unread = store.problems.length ? ` (${store.problems.join('; ')})` : '';
    return {
      socket: serviceSocket,
      stateDir: DEFAULT_STATE_DIR,
      found: `no managed tsmacvlan plugin in ${store.dir}${unread} and no socket at ${serviceSocket}: the defaults`,
    };
  }
  if (count === 1 && service)
    return { socket: serviceSocket, stateDir: DEFAULT_STATE_DIR, found: `the service's socket ${serviceSocket}` };
  if (count === 1) return managed(store.plugins[0], `the only one in ${store.dir}`);
  const choices = store.plugins.map((p) => `--plugin ${p.name} for ${describePlugin(p)}`);
  if (service) choices.push(`--socket ${serviceSocket} --state-dir DIR for the service on ${serviceSocket}`);
  throw new UsageError(`this host has ${count} tsmacvlan instances; say which: ${choices.join('; ')}`);
}

function installed(store: PluginStore): string {
  if (store.plugins.length === 0)
    return 'none is installed there (give --docker-data-root if Docker keeps its data elsewhere)';
  return `installed: ${store.plugins.map(describePlugin).join('; ')}`;
}
