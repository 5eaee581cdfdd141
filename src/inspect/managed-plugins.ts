// The tsmacvlan managed plugins Docker has installed on this host, read from Docker's own plugin store without its
// socket: `<data root>/plugins/<plugin id>/config.json` holds each plugin's name, whether it is enabled, its config
// (the socket it listens on, its propagated mount) and its settings (the host directories of its mounts).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The socket file every tsmacvlan plugin listens on (config.json `interface.socket`); its name is the driver name. */
export const PLUGIN_SOCKET = 'tsmacvlan.sock';
/**
 * Docker on Linux keeps each managed plugin's runtime directory, and so its socket, in `/run/docker/plugins/<plugin
 * id>/`, whatever its --exec-root (from 17.x up to 29 at least: moby's getPluginExecRoot). A legacy plugin's socket
 * sits in the same directory, as `<name>.sock`.
 */
export const PLUGINS_RUNTIME_DIR = '/run/docker/plugins';
export const DEFAULT_DOCKER_DATA_ROOT = '/var/lib/docker';
export const DOCKER_DAEMON_JSON = '/etc/docker/daemon.json';

export interface ManagedPlugin {
  /** Docker's plugin id (64 hex digits). */
  id: string;
  /** Its name with its tag, as users give it to `-d`: `tsmacvlan:latest`. */
  name: string;
  enabled: boolean;
  /** Where it listens while enabled. */
  socket: string;
  /**
   * Its state directory on the host: its propagated mount, which Docker makes at `<data root>/plugins/<id>/
   * propagated-mount` and removes with the plugin; for a plugin built before 0.2.0, the host directory of its `state`
   * mount.
   */
  stateDir: string | undefined;
  /** Where its etcd TLS files are on the host: `tls/` in its state dir (before 0.2.0: its `tls` mount's directory). */
  tlsDir: string | undefined;
  /** True when its state is its propagated mount, which `docker plugin rm` removes with the plugin. */
  stateGoesWithIt: boolean;
}

export interface PluginStore {
  /** The directory read: `<data root>/plugins`. */
  dir: string;
  plugins: ManagedPlugin[];
  /** Why the store, or one plugin's config in it, could not be read (not root, a broken file). */
  problems: string[];
}

/** Docker's data root: `data-root` of its daemon.json when set there, else the default. */
export function dockerDataRoot(daemonJson = DOCKER_DAEMON_JSON): string {
  try {
    const dataRoot = (JSON.parse(readFileSync(daemonJson, 'utf8')) as { 'data-root'?: unknown })['data-root'];
    if (typeof dataRoot === 'string' && dataRoot !== '') return dataRoot;
  } catch {
    // No daemon.json (the usual case), or one dockerd itself would refuse: the default.
  }
  return DEFAULT_DOCKER_DATA_ROOT;
}

interface StoredMount {
  Name?: unknown;
  Source?: unknown;
}

interface StoredPlugin {
  Id?: unknown;
  Name?: unknown;
  Enabled?: unknown;
  Config?: { Interface?: { Socket?: unknown; Types?: unknown }; PropagatedMount?: unknown };
  Settings?: { Mounts?: StoredMount[] };
}

function mountSource(plugin: StoredPlugin, name: string): string | undefined {
  const mount = (Array.isArray(plugin.Settings?.Mounts) ? plugin.Settings.Mounts : []).find((m) => m?.Name === name);
  return typeof mount?.Source === 'string' && mount.Source !== '' ? mount.Source : undefined;
}

/** Docker's directory of a plugin's propagated mount (moby's plugin manager: `<plugin dir>/propagated-mount`). */
export const PROPAGATED_MOUNT_DIR = 'propagated-mount';

/**
 * Where a plugin's state and TLS files are on the host: its propagated mount when its config has one (tsmacvlan 0.2.0
 * and later), else its `state` and `tls` mounts' sources (0.1.0, `docker plugin set NAME state.source=DIR`).
 */
function hostDirs(
  plugin: StoredPlugin,
  pluginDir: string,
): Pick<ManagedPlugin, 'stateDir' | 'tlsDir' | 'stateGoesWithIt'> {
  const propagated = plugin.Config?.PropagatedMount;
  if (typeof propagated === 'string' && propagated !== '') {
    const stateDir = join(pluginDir, PROPAGATED_MOUNT_DIR);
    return { stateDir, tlsDir: join(stateDir, 'tls'), stateGoesWithIt: true };
  }
  return { stateDir: mountSource(plugin, 'state'), tlsDir: mountSource(plugin, 'tls'), stateGoesWithIt: false };
}

/** One plugin's stored config, when it is a tsmacvlan plugin: a network driver listening on tsmacvlan.sock. */
function parsePlugin(text: string, pluginDir: string, runtimeDir: string): ManagedPlugin | undefined {
  const plugin = (JSON.parse(text) as { plugin?: StoredPlugin }).plugin;
  const face = plugin?.Config?.Interface;
  if (!plugin || face?.Socket !== PLUGIN_SOCKET) return undefined;
  if (!Array.isArray(face.Types) || !face.Types.includes('docker.networkdriver/1.0')) return undefined;
  if (typeof plugin.Id !== 'string' || !/^[0-9a-f]{64}$/.test(plugin.Id) || typeof plugin.Name !== 'string')
    throw new Error('no plugin id or name');
  return {
    id: plugin.Id,
    name: plugin.Name,
    enabled: plugin.Enabled === true,
    socket: join(runtimeDir, plugin.Id, PLUGIN_SOCKET),
    ...hostDirs(plugin, pluginDir),
  };
}

/** Every tsmacvlan plugin in Docker's plugin store under `dataRoot`; none when Docker has no plugin store there. */
export function listManagedPlugins(dataRoot: string, runtimeDir = PLUGINS_RUNTIME_DIR): PluginStore {
  const dir = join(dataRoot, 'plugins');
  const store: PluginStore = { dir, plugins: [], problems: [] };
  let ids: string[];
  try {
    ids = readdirSync(dir).filter((name) => /^[0-9a-f]{64}$/.test(name));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') store.problems.push(`cannot read ${dir} (${code}): run as root`);
    return store;
  }
  for (const id of ids.sort()) {
    const file = join(dir, id, 'config.json');
    try {
      const plugin = parsePlugin(readFileSync(file, 'utf8'), join(dir, id), runtimeDir);
      if (plugin) store.plugins.push(plugin);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue; // a plugin being pulled: no config yet
      store.problems.push(`cannot read ${file}: ${code ?? (err as Error).message}`);
    }
  }
  return store;
}

/** `tsmacvlan:latest (id 0123456789ab, enabled, state /var/lib/tsmacvlan)`. */
export function describePlugin(plugin: ManagedPlugin): string {
  return `${plugin.name} (id ${plugin.id.slice(0, 12)}, ${plugin.enabled ? 'enabled' : 'disabled'}, state ${plugin.stateDir ?? 'not mounted'})`;
}
