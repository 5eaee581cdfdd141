// Docker Compose (Debian's docker-compose v1) with the tsmacvlan driver: test/e2e/docker-compose.yml brought up on a
// test switch, the two services reach each other and the switch, and `down` leaves no network, link or state behind.
// Uses the legacy-socket plugin (driver tsmacvlan-test), so it does not depend on the managed plugin build.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, dockerOk, eventually, ping, removeDockerObjects, run, type RunResult } from './docker';
import { DRIVER, startPluginDaemon, type PluginDaemon } from './plugin-daemon';
import { createSwitch, destroyAllSwitches, type Switch } from './topology';

const PROJECT = 'tsmv-pkg-compose'; // compose names everything <project>_...: the network tsmv-pkg-compose_lan
const NETWORK = `${PROJECT}_lan`;
const COMPOSE_FILE = join(__dirname, 'docker-compose.yml');
const STATIC_IP = '10.232.40.10'; // as in docker-compose.yml

describe('docker-compose with the tsmacvlan driver', () => {
  let plugin: PluginDaemon;
  let sw: Switch;

  const compose = (args: string[], allowFail = false): Promise<RunResult> =>
    run('docker-compose', ['-p', PROJECT, '-f', COMPOSE_FILE, ...args], {
      allowFail,
      timeoutMs: 180_000,
      env: { ...process.env, TSMACVLAN_DRIVER: DRIVER, TSMACVLAN_PARENT: sw.parent },
    });

  beforeAll(async () => {
    await removeDockerObjects(PROJECT); // leftovers of a crashed run
    plugin = await startPluginDaemon();
    sw = await createSwitch({ subnetPrefix: '10.232.40' });
  });
  afterAll(async () => {
    if (sw) await compose(['down', '--timeout', '1'], true);
    await removeDockerObjects(PROJECT);
    await destroyAllSwitches();
    await plugin?.destroy();
  });

  it('up: the services reach each other and the switch; down: no network, link or state is left', async () => {
    await compose(['up', '-d']);
    const id = async (service: string) => (await compose(['ps', '-q', service])).stdout.trim();
    const [a, b] = [await id('a'), await id('b')];
    expect(a).toMatch(/^[0-9a-f]{12,}$/);
    expect(b).toMatch(/^[0-9a-f]{12,}$/);

    const ipOf = (c: string) =>
      dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${NETWORK}").IPAddress}}`, c]);
    const endpointOf = (c: string) =>
      dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${NETWORK}").EndpointID}}`, c]);
    expect(await ipOf(a)).toBe(STATIC_IP);
    const ipB = await ipOf(b);
    expect(ipB).toMatch(/^10\.232\.40\.\d+$/);
    expect(Number(ipB.split('.')[3])).toBeGreaterThanOrEqual(128); // from ip_range 10.232.40.128/25
    expect(await dockerOk(['network', 'inspect', '-f', '{{.Driver}}', NETWORK])).toBe(DRIVER);

    expect(await ping(a, ipB)).toBe(true);
    expect(await ping(b, STATIC_IP)).toBe(true);
    expect(await ping(b, sw.bridgeIp)).toBe(true);

    // The host-side link names of these two endpoints (tsmve + 10 characters of the endpoint id).
    const links = (await Promise.all([a, b].map(endpointOf))).map((ep) => `tsmve${ep.slice(0, 10)}`);
    expect(readdirSync(join(plugin.stateDir, 'networks'))).toHaveLength(1);

    await compose(['down', '--timeout', '1']);
    expect((await docker(['network', 'inspect', NETWORK], { allowFail: true })).code).not.toBe(0);
    expect((await docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${PROJECT}`])).stdout.trim()).toBe(
      '',
    );
    await eventually(async () => {
      const hostLinks = (await run('ip', ['-o', 'link', 'show'])).stdout;
      for (const link of links) expect(hostLinks).not.toContain(`: ${link}`);
    });
    // Nothing else of ours either: no tsmve* link of this plugin, and its state is empty again.
    expect(readdirSync(join(plugin.stateDir, 'networks'))).toEqual([]);
    expect(readdirSync(join(plugin.stateDir, 'endpoints'))).toEqual([]);
  });
});
