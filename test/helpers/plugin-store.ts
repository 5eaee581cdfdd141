// Docker's plugin store as Docker writes it (moby's plugin manager: <data root>/plugins/<id>/config.json holds
// {"plugin": {Config, Enabled, Id, Name, PluginReference, Settings}, "Config": <digest>, ...}), for the CLI to find.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface StoredPluginSpec {
  id: string;
  name: string;
  enabled?: boolean;
  /** The socket of its config.json (tsmacvlan's: tsmacvlan.sock). */
  socket?: string;
  /**
   * A plugin built before 0.2.0: the host directories of its `state` and `tls` bind mounts. Without it, the plugin is
   * as config.json builds it: its state is its propagated mount.
   */
  legacyMounts?: { state: string; tls?: string };
}

/** Writes the plugin's config.json into Docker's plugin store; returns its state dir on the host. */
export function writeStoredPlugin(dataRoot: string, spec: StoredPluginSpec): string {
  const dir = join(dataRoot, 'plugins', spec.id);
  mkdirSync(dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(__dirname, '../../config.json'), 'utf8'));
  const bind = (name: string, destination: string, source: string) => ({
    Description: `${name} (a plugin built before 0.2.0)`,
    Destination: destination,
    Name: name,
    Options: ['rbind'],
    Settable: ['source'],
    Source: source,
    Type: 'bind',
  });
  const legacy = spec.legacyMounts;
  const plugin = {
    Config: {
      Interface: { Socket: spec.socket ?? config.interface.socket, Types: config.interface.types },
      Entrypoint: config.entrypoint,
      ...(legacy ? { Mounts: [] } : { PropagatedMount: config.propagatedMount }),
    },
    Enabled: spec.enabled ?? true,
    Id: spec.id,
    Name: spec.name,
    PluginReference: `docker.io/library/${spec.name}`,
    Settings: {
      Env: ['LOG_LEVEL=info'],
      Mounts: legacy
        ? [
            bind('state', '/var/lib/tsmacvlan', legacy.state),
            bind('tls', '/etc/tsmacvlan', legacy.tls ?? '/etc/tsmacvlan'),
          ]
        : [],
    },
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ plugin, Config: 'sha256:0', Blobsums: [] }));
  return legacy ? legacy.state : join(dir, 'propagated-mount');
}
