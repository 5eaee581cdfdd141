// Docker Compose v2 (Debian unstable's docker-compose, a CLI plugin unpacked into .engines/compose by
// test/lab/engines.sh, run by the lab engine's own client) with the Compose Specification file docs/compose.md shows
// (test/e2e/compose.yml: no `version:` key): the plugin as driver and IPAM, driver options, a static address and MAC.
// Two up/down cycles: the services reach each other and the switch, the static address and MAC come back the same,
// and every `down` leaves no network, link, record or pool behind. Uses the legacy-socket plugin (the driver
// tsmacvlan-<run id>), so it does not depend on the managed plugin build.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DOCKER_BIN, docker, dockerOk, eventually, ping, removeDockerObjects, run, type RunResult } from './docker';
import { DRIVER, startPluginDaemon, type PluginDaemon } from './plugin-daemon';
import { createSwitch, destroyAllSwitches, type Switch } from './topology';

const COMPOSE_PLUGIN = join(__dirname, '../../.engines/compose/usr/libexec/docker/cli-plugins/docker-compose');
const PROJECT = 'tsmv-pkg-compose'; // compose names everything <project>-... / <project>_...
const NETWORK = `${PROJECT}_lan`;
const COMPOSE_FILE = join(__dirname, 'compose.yml');
const STATIC_IP = '192.168.1.10'; // as in compose.yml
const STATIC_MAC = '02:42:c0:a8:01:0a';

describe('Docker Compose v2 with the tsmacvlan driver and IPAM', () => {
  let plugin: PluginDaemon;
  let sw: Switch;
  let config: string; // DOCKER_CONFIG: compose as a CLI plugin of the lab's client

  const compose = (args: string[], allowFail = false): Promise<RunResult> =>
    run(DOCKER_BIN, ['compose', '-p', PROJECT, '-f', COMPOSE_FILE, ...args], {
      allowFail,
      timeoutMs: 180_000,
      env: { ...process.env, DOCKER_CONFIG: config, TSMACVLAN_DRIVER: DRIVER, TSMACVLAN_PARENT: sw.parent },
    });
  const inspect = (container: string, field: string) =>
    dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${NETWORK}").${field}}}`, container]);
  const containerOf = async (service: string) => (await compose(['ps', '-q', service])).stdout.trim();

  beforeAll(async () => {
    if (!existsSync(COMPOSE_PLUGIN))
      throw new Error(`${COMPOSE_PLUGIN} is missing: bash test/lab/engines.sh compose (or bash test/e2e/provision.sh)`);
    config = mkdtempSync(join(tmpdir(), 'tsmv-compose-'));
    mkdirSync(join(config, 'cli-plugins'));
    symlinkSync(COMPOSE_PLUGIN, join(config, 'cli-plugins', 'docker-compose'));
    chmodSync(config, 0o700);
    await removeDockerObjects(PROJECT); // leftovers of a crashed run
    await dockerOk(['tag', 'tsmacvlan-test/busybox:latest', 'busybox:latest']); // the file's image, no registry
    plugin = await startPluginDaemon();
    sw = await createSwitch({ subnetPrefix: '192.168.1' });
  });
  afterAll(async () => {
    if (sw) await compose(['down', '--timeout', '1'], true);
    await removeDockerObjects(PROJECT);
    await destroyAllSwitches();
    await plugin?.destroy();
    if (config) rmSync(config, { recursive: true, force: true });
  });

  it('is Compose v2 reading a Compose Specification file (no version key)', async () => {
    const version = await run(DOCKER_BIN, ['compose', 'version', '--short'], {
      env: { ...process.env, DOCKER_CONFIG: config },
    });
    expect(version.stdout.trim()).toMatch(/^2\.\d+\.\d+/);
    expect((await compose(['config', '--quiet'])).code).toBe(0);
  });

  for (const cycle of [1, 2]) {
    it(`up (cycle ${cycle}): driver and IPAM, options, static address and MAC; the services reach each other and the switch`, async () => {
      await compose(['up', '-d']);
      const [a, b] = [await containerOf('a'), await containerOf('b')];
      expect(await inspect(a, 'IPAddress')).toBe(STATIC_IP);
      expect(await inspect(a, 'MacAddress')).toBe(STATIC_MAC);
      const ipB = await inspect(b, 'IPAddress');
      expect(ipB).toMatch(/^192\.168\.1\.\d+$/);
      expect(Number(ipB.split('.')[3])).toBeGreaterThanOrEqual(192); // from ip_range 192.168.1.192/27
      const net = JSON.parse(await dockerOk(['network', 'inspect', '-f', '{{json .}}', NETWORK]));
      expect(net.Driver).toBe(DRIVER);
      expect(net.IPAM.Driver).toBe(DRIVER);
      expect(net.Options).toMatchObject({ parent: sw.parent, macvlan_mode: 'bridge' });
      // The plugin's IPAM holds the pool (its journal is per subnet) and the driver the network and endpoints.
      expect(readdirSync(join(plugin.stateDir, 'ipam')).join(' ')).toContain('192.168.1.0');
      expect(readdirSync(join(plugin.stateDir, 'networks'))).toHaveLength(1);
      expect(readdirSync(join(plugin.stateDir, 'endpoints'))).toHaveLength(2);

      expect(await ping(a, ipB)).toBe(true);
      expect(await ping(b, STATIC_IP)).toBe(true);
      expect(await ping(b, sw.bridgeIp)).toBe(true);
    });

    it(`down (cycle ${cycle}): no container, network, link or record is left`, async () => {
      const [a, b] = [await containerOf('a'), await containerOf('b')];
      const links = (await Promise.all([a, b].map((c) => inspect(c, 'EndpointID')))).map(
        (ep) => `tsmve${ep.slice(0, 10)}`,
      );
      await compose(['down', '--timeout', '1']);
      expect((await docker(['network', 'inspect', NETWORK], { allowFail: true })).code).not.toBe(0);
      const left = await docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${PROJECT}`]);
      expect(left.stdout.trim()).toBe('');
      await eventually(async () => {
        const hostLinks = (await run('ip', ['-o', 'link', 'show'])).stdout;
        for (const link of links) expect(hostLinks).not.toContain(`: ${link}`);
      });
      expect(readdirSync(join(plugin.stateDir, 'networks'))).toEqual([]);
      expect(readdirSync(join(plugin.stateDir, 'endpoints'))).toEqual([]);
    });
  }
});
