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
  /** Host directories of its mounts. */
  state: string;
  tls?: string;
}

export function writeStoredPlugin(dataRoot: string, spec: StoredPluginSpec): void {
  const dir = join(dataRoot, 'plugins', spec.id);
  mkdirSync(dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(__dirname, '../../config.json'), 'utf8'));
  const mount = (name: string, source: string) => {
    const m = config.mounts.find((m: { name: string }) => m.name === name);
    const { description, destination, type, options, settable } = m;
    return {
      Description: description,
      Destination: destination,
      Name: name,
      Options: options,
      Settable: settable,
      Source: source,
      Type: type,
    };
  };
  const plugin = {
    Config: {
      Interface: { Socket: spec.socket ?? config.interface.socket, Types: config.interface.types },
      Entrypoint: config.entrypoint,
    },
    Enabled: spec.enabled ?? true,
    Id: spec.id,
    Name: spec.name,
    PluginReference: `docker.io/library/${spec.name}`,
    Settings: {
      Env: ['LOG_LEVEL=info'],
      Mounts: [mount('state', spec.state), mount('tls', spec.tls ?? '/etc/tsmacvlan')],
    },
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ plugin, Config: 'sha256:0', Blobsums: [] }));
}
