// `tsmacvlan uninstall` after `docker plugin rm -f` of a managed plugin that still had a host_access network: what
// Docker leaves (not the state: the propagated mount goes with the plugin; the shim and its address stay in the host's
// kernel) and the one command that removes the rest. Once, on the newest engine (vitest.config.ts): the other engines'
// runs find the same plugin the same way (managed-plugin.test.ts).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stateGroup } from '../../src/state/instance';
import { docker, dockerOk, removeDockerObjects, run } from './docker';
import { createManagedPlugin, managedPluginStateDir, removeManagedPlugin, tsmacvlan } from './managed-plugin';
import { createSwitch, destroyAllSwitches, type Switch } from './topology';

const PLUGIN = 'tsmv-pkg-uninstall:latest';
const PREFIX = 'tsmv-pkg-un-';

describe(`uninstall after docker plugin rm -f of ${PLUGIN}`, () => {
  let stateDir: string;
  let sw: Switch;
  let group: number | undefined;
  let shim = '';

  beforeAll(async () => {
    await removeDockerObjects(PREFIX);
    await createManagedPlugin(PLUGIN);
    await dockerOk(['plugin', 'enable', PLUGIN]);
    stateDir = await managedPluginStateDir(PLUGIN);
    sw = await createSwitch({ subnetPrefix: '10.232.25' });
  }, 900_000);

  afterAll(async () => {
    await removeDockerObjects(PREFIX);
    await removeManagedPlugin(PLUGIN);
    // Whatever a failed run left of the plugin's links (its group: this test's instance only).
    if (group !== undefined) {
      const left = await run('ip', ['-o', 'link', 'show', 'group', String(group)], { allowFail: true });
      for (const name of left.stdout.matchAll(/^\d+: ([^:@]+)/gm))
        await run('ip', ['link', 'del', name[1]], { allowFail: true });
    }
    await destroyAllSwitches();
  });

  it('is refused while the plugin is installed; after rm -f the state is gone, and --orphans deletes the shim left', async () => {
    const left = `${PREFIX}left`;
    await dockerOk(
      ['network', 'create', '-d', PLUGIN, '-o', `parent=${sw.parent}`, '-o', 'host_access=10.232.25.250'].concat([
        '--subnet',
        '10.232.25.0/24',
        '--aux-address',
        'host=10.232.25.250',
        left,
      ]),
    );
    const networkId = await dockerOk(['network', 'inspect', '-f', '{{.Id}}', left]);
    group = stateGroup(stateDir);
    expect(group).toBeDefined();
    shim = `tsmvh${networkId.slice(0, 10)}`;
    await dockerOk(['plugin', 'disable', '-f', PLUGIN]);
    const installed = await tsmacvlan('uninstall', '--dry-run');
    expect(installed.code).toBe(1);
    expect(installed.stderr).toContain(
      `the managed plugin ${PLUGIN} is still installed, and docker plugin rm removes its state (${stateDir}) with it`,
    );
    await dockerOk(['plugin', 'rm', '-f', PLUGIN]);

    // What remains: not the plugin's directory nor its propagated mount (the state, with tls/), but the shim with its
    // address, in the host's namespace.
    expect(existsSync(stateDir) || existsSync(dirname(stateDir))).toBe(false);
    expect((await run('ip', ['-o', 'link', 'show', 'group', String(group)])).stdout).toContain(`${shim}@`);
    expect((await run('ip', ['-o', 'addr', 'show', 'dev', shim])).stdout).toContain('10.232.25.250/32');

    const where = ['--state-dir', stateDir, '--tls-dir', join(stateDir, 'tls')];
    const listed = await tsmacvlan('uninstall', '--dry-run', '--json', ...where);
    expect(listed.code, listed.stderr).toBe(0);
    const orphan = `device group ${group}, whose instance's state is gone (a plugin removed with its networks)`;
    expect(JSON.parse(listed.stdout)).toMatchObject({
      stateDir,
      instance: null,
      removed: [],
      kept: expect.arrayContaining([
        { target: `link ${shim}`, why: `${orphan}: give --orphans to delete it` },
        { target: stateDir, why: 'no such directory: nothing to remove' },
      ]),
    });
    const done = await tsmacvlan('uninstall', '--orphans', '--json', ...where);
    expect(done.code, done.stderr).toBe(0);
    expect(JSON.parse(done.stdout).removed).toEqual([
      {
        kind: 'link',
        target: shim,
        detail: `host-access shim; its address and host routes go with it; ${orphan}`,
      },
    ]);
    expect((await run('ip', ['-o', 'link', 'show', 'group', String(group)])).stdout.trim()).toBe('');
    // Docker still lists the network of the plugin it no longer has, and removes it without the plugin.
    expect(await dockerOk(['network', 'ls', '--filter', `name=${left}`, '--format', '{{.Name}}'])).toBe(left);
    expect((await docker(['network', 'rm', left], { allowFail: true })).code).toBe(0);
  });
});
