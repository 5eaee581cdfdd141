// Doctor: the managed plugin Docker has installed (enabled?), and the version that answers on the socket.
import { describePlugin, type ManagedPlugin } from '../managed-plugins';
import { VERSION } from '../../version';
import type { Check } from './check';

export function pluginCheck(plugin: ManagedPlugin, found: string | undefined): Check {
  if (!plugin.enabled) {
    return {
      id: 'plugin',
      status: 'FAIL',
      message: `the managed plugin ${describePlugin(plugin)} is installed but disabled: Docker cannot use its networks`,
      fix: `docker plugin enable ${plugin.name}`,
    };
  }
  return { id: 'plugin', status: 'OK', message: found ?? `the managed plugin ${describePlugin(plugin)}` };
}

/** The plugin that answers runs this CLI's version, or the operator is told which one to bring level. */
export function versionCheck(running: string | undefined): Check {
  if (running === undefined) {
    return {
      id: 'version',
      status: 'WARN',
      message: `the plugin does not say its version (it predates /Tsmacvlan.Version); this CLI is tsmacvlan ${VERSION}`,
      fix: 'upgrade the plugin to the version of this CLI (docs/cli.md, "Versions")',
    };
  }
  if (running !== VERSION) {
    return {
      id: 'version',
      status: 'WARN',
      message: `the plugin runs tsmacvlan ${running}, this CLI is ${VERSION}: status, gc and uninstall read its state as ${VERSION} writes it`,
      fix: `install the CLI of version ${running}, or upgrade the plugin to ${VERSION} (docs/cli.md, "Versions")`,
    };
  }
  return { id: 'version', status: 'OK', message: `the plugin runs tsmacvlan ${running}, as this CLI` };
}
