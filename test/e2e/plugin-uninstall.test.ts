// `tsmacvlan uninstall` after `docker plugin rm -f` of a managed plugin that still had a host_access network: what
// Docker leaves (the state dir, the TLS dir, the shim and its routes) and the one command that removes it. Once, on the
// newest engine (vitest.config.ts): the other engines' runs find the same plugin the same way (managed-plugin.test.ts).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stateGroup } from '../../src/state/instance';
import { docker, dockerOk, removeDockerObjects, run } from './docker';
import { createPlugin, removePlugin, tsmacvlan } from './managed-plugin';
import { createSwitch, destroyAllSwitches, type Switch } from './topology';

const PLUGIN = 'tsmv-pkg-uninstall:latest';
const PREFIX = 'tsmv-pkg-un-';

describe(`uninstall after docker plugin rm -f of ${PLUGIN}`, () => {
  let stateSource: string;
  let sw: Switch;

  beforeAll(async () => {
    await removeDockerObjects(PREFIX);
    stateSource = mkdtempSync(join(tmpdir(), 'tsmv-pkg-un-state-'));
    await createPlugin(PLUGIN, stateSource);
    await dockerOk(['plugin', 'enable', PLUGIN]);
    sw = await createSwitch({ subnetPrefix: '10.232.25' });
  }, 900_000);

  afterAll(async () => {
    await removeDockerObjects(PREFIX);
    await removePlugin(PLUGIN);
    await destroyAllSwitches();
    if (stateSource) rmSync(stateSource, { recursive: true, force: true });
    if (stateSource) rmSync(`${stateSource}-tls`, { recursive: true, force: true });
  });

  it('is refused while the plugin is installed, then removes its shim and routes, state dir and empty TLS dir', async () => {
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
    await dockerOk(['plugin', 'disable', '-f', PLUGIN]);
    const installed = await tsmacvlan('uninstall', '--dry-run');
    expect(installed.code).toBe(1);
    expect(installed.stderr).toContain(
      `the managed plugin ${PLUGIN} is still installed and keeps its state in ${stateSource}`,
    );
    await dockerOk(['plugin', 'rm', '-f', PLUGIN]);

    const group = stateGroup(stateSource);
    const shim = `tsmvh${networkId.slice(0, 10)}`;
    expect((await run('ip', ['-o', 'link', 'show', 'group', String(group)])).stdout).toContain(shim);
    const where = ['--state-dir', stateSource, '--tls-dir', `${stateSource}-tls`];
    const recorded = await tsmacvlan('uninstall', ...where);
    expect(recorded.code).toBe(1);
    expect(recorded.stderr).toContain(`still records network(s) ${networkId.slice(0, 12)}`);
    const done = await tsmacvlan('uninstall', '--force', '--json', ...where);
    expect(done.code).toBe(0);
    expect(JSON.parse(done.stdout).removed).toEqual([
      { kind: 'link', target: shim, detail: 'host-access shim; its address and host routes go with it' },
      {
        kind: 'state',
        target: stateSource,
        detail: expect.stringMatching(/^instance [0-9a-f]{32}: 1 network\(s\), 0 endpoint\(s\)$/),
      },
      { kind: 'tls', target: `${stateSource}-tls`, detail: 'empty' },
    ]);
    expect(existsSync(stateSource) || existsSync(`${stateSource}-tls`)).toBe(false);
    expect((await run('ip', ['-o', 'link', 'show', 'group', String(group)])).stdout.trim()).toBe('');
    // Docker still lists the network of the plugin it no longer has, and removes it without the plugin.
    expect(await dockerOk(['network', 'ls', '--filter', `name=${left}`, '--format', '{{.Name}}'])).toBe(left);
    expect((await docker(['network', 'rm', left], { allowFail: true })).code).toBe(0);
  });
});
