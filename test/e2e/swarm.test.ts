// tsmacvlan under Docker Swarm: swarm refuses legacy plugins, so this installs the managed plugin (plugin/create.sh
// --reuse: the build managed-plugin.test.ts made is reused when the inputs are unchanged). A single-node swarm on
// loopback, a config-only network holding the subnet, --ip-range and parent of this node, a swarm-scoped network
// made from it, and a 2-replica service: both tasks run with distinct addresses and reach each other.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, docker, dockerOk, eventually, ping, removeDockerObjects, run, waitFor } from './docker';
import { createManagedPlugin, managedPluginStateDir, removeManagedPlugin } from './managed-plugin';
import { createSwitch, destroyAllSwitches, type Switch } from './topology';

const PLUGIN = process.env.TSMV_PLUGIN_NAME ?? 'tsmv-pkg-tsmacvlan:latest';
const PREFIX = 'tsmv-pkg-';
const CONFIG_NET = 'tsmv-pkg-cfg';
const SWARM_NET = 'tsmv-pkg-swarm';
const SERVICE = 'tsmv-pkg-svc';
const IP_RANGE = '10.232.30.64/26';

const swarmState = () => dockerOk(['info', '-f', '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}']);
const serviceContainers = async () =>
  (await dockerOk(['ps', '-aq', '--filter', `label=com.docker.swarm.service.name=${SERVICE}`]))
    .split('\n')
    .filter(Boolean);
const ipOn = (container: string, network: string) =>
  dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, container]);

async function removeService(): Promise<void> {
  await docker(['service', 'rm', SERVICE], { allowFail: true });
  await waitFor(async () => (await serviceContainers()).length === 0, 60_000, {
    intervalMs: 250,
    what: `the tasks of ${SERVICE} to be removed`,
  });
}

describe(`Docker Swarm with the managed plugin ${PLUGIN}`, () => {
  let createdSwarm = false;
  let hadGwBridge = false;
  let stateSource: string;
  let sw: Switch;

  beforeAll(async () => {
    // The lab's engine is this run's own: no swarm yet, and the swarm made here is gone with the engine.
    const [state] = (await swarmState()).split(' ');
    hadGwBridge = (await docker(['network', 'inspect', 'docker_gwbridge'], { allowFail: true })).code === 0;
    if (state === 'inactive') {
      // Address pools of swarm networks (ingress) inside the tests' 10.232.0.0/16 as well.
      await dockerOk([
        'swarm',
        'init',
        '--advertise-addr',
        '127.0.0.1',
        '--listen-addr',
        '127.0.0.1:2377',
        '--default-addr-pool',
        '10.232.128.0/20',
        '--default-addr-pool-mask-length',
        '24',
      ]);
      createdSwarm = true;
      // No ports are published: without the routing mesh, dockerd creates no ingress sandbox and no docker_gwbridge.
      await docker(['network', 'rm', 'ingress'], { input: 'y\n', allowFail: true });
    } else {
      throw new Error(`the lab's engine is in swarm state '${state}': it must be a fresh engine with no swarm`);
    }
    await removeDockerObjects(PREFIX + 'sw-');
    for (const n of [SWARM_NET, `${SWARM_NET}-att`, CONFIG_NET])
      await docker(['network', 'rm', n], { allowFail: true });

    console.log(`[swarm] ${(await createManagedPlugin(PLUGIN)).summary}`);
    await dockerOk(['plugin', 'enable', PLUGIN]);
    stateSource = await managedPluginStateDir(PLUGIN);
    sw = await createSwitch({ subnetPrefix: '10.232.30' });
  }, 900_000);

  afterAll(async () => {
    await removeService().catch(() => {});
    await removeDockerObjects(PREFIX + 'sw-');
    for (const n of [SWARM_NET, `${SWARM_NET}-att`, CONFIG_NET])
      await docker(['network', 'rm', n], { allowFail: true });
    await removeManagedPlugin(PLUGIN);
    if (createdSwarm) {
      // Slow (~15 s per remote driver dockerd knows whose socket is gone: it retries DiscoverDelete on each).
      await docker(['swarm', 'leave', '--force'], { allowFail: true, timeoutMs: 180_000 });
      if (!hadGwBridge) await docker(['network', 'rm', 'docker_gwbridge'], { allowFail: true });
    }
    await destroyAllSwitches();
  });

  it('a swarm network needs the plugin name with its tag', async () => {
    await dockerOk([
      'network',
      'create',
      '--config-only',
      '--subnet',
      sw.subnet,
      '--gateway',
      sw.bridgeIp,
      '--ip-range',
      IP_RANGE,
      '-o',
      `parent=${sw.parent}`,
      CONFIG_NET,
    ]);
    const untagged = PLUGIN.replace(/:[^:/]+$/, '');
    const res = await docker(
      ['network', 'create', '-d', untagged, '--scope', 'swarm', '--config-from', CONFIG_NET, `${PREFIX}sw-untagged`],
      { allowFail: true },
    );
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain(`could not resolve driver ${untagged}`);
  });

  it('a 2-replica service on a swarm network from a config-only network: distinct addresses, reachable from each other', async () => {
    await dockerOk(['network', 'create', '-d', PLUGIN, '--scope', 'swarm', '--config-from', CONFIG_NET, SWARM_NET]);
    await dockerOk([
      'service',
      'create',
      '--detach',
      '--quiet',
      '--name',
      SERVICE,
      '--network',
      SWARM_NET,
      '--endpoint-mode',
      'dnsrr',
      '--replicas',
      '2',
      '--stop-grace-period',
      '1s',
      TEST_IMAGE,
      'sleep',
      '3600',
    ]);
    await waitFor(
      async () => {
        const states = (
          await dockerOk([
            'service',
            'ps',
            '--filter',
            'desired-state=running',
            '--format',
            '{{.CurrentState}}|{{.Error}}',
            SERVICE,
          ])
        ).split('\n');
        const failed = states.find((s) => /\|./.test(s));
        if (failed) throw new Error(`task error: ${failed}`);
        return states.length === 2 && states.every((s) => s.startsWith('Running'));
      },
      90_000,
      { intervalMs: 250, what: 'both tasks running' },
    );
    const tasks = await serviceContainers();
    expect(tasks).toHaveLength(2);
    const ips = await Promise.all(tasks.map((t) => ipOn(t, SWARM_NET)));
    expect(new Set(ips).size).toBe(2);
    for (const ip of ips) expect(Number(ip.split('.')[3])).toBeGreaterThanOrEqual(64); // from --ip-range 10.232.30.64/26
    for (const ip of ips) expect(Number(ip.split('.')[3])).toBeLessThan(128);
    expect(await ping(tasks[0], ips[1])).toBe(true);
    expect(await ping(tasks[1], ips[0])).toBe(true);
    expect(await ping(tasks[0], sw.bridgeIp)).toBe(true);
    // The task has just this one interface (no docker_gwbridge leg): the plugin gave it the gateway.
    expect(
      (await dockerOk(['exec', tasks[0], 'ip', '-o', '-4', 'addr'])).split('\n').filter((l) => !/ lo /.test(l)),
    ).toHaveLength(1);

    const endpoints = await Promise.all(
      tasks.map((t) =>
        dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${SWARM_NET}").EndpointID}}`, t]),
      ),
    );
    await removeService();
    await eventually(async () => {
      const links = (await run('ip', ['-o', 'link', 'show'])).stdout;
      for (const ep of endpoints) expect(links).not.toContain(`: tsmve${ep.slice(0, 10)}`);
    });
    // The node's copy of a swarm network lives only while a task uses it: the plugin's state is empty again.
    await waitFor(() => readdirSync(join(stateSource, 'networks')).length === 0, 10_000, {
      what: 'DeleteNetwork on the node',
    });
    expect(readdirSync(join(stateSource, 'endpoints'))).toEqual([]);
    await dockerOk(['network', 'rm', SWARM_NET]);
  });

  it('standalone containers need --attachable on the swarm network', async () => {
    await dockerOk(['network', 'create', '-d', PLUGIN, '--scope', 'swarm', '--config-from', CONFIG_NET, SWARM_NET]);
    const refused = await docker(
      ['run', '-d', '--name', `${PREFIX}sw-refused`, '--network', SWARM_NET, TEST_IMAGE, 'sleep', '60'],
      { allowFail: true },
    );
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('not manually attachable');
    await dockerOk(['network', 'rm', SWARM_NET]);

    const attachable = `${SWARM_NET}-att`;
    await dockerOk([
      'network',
      'create',
      '-d',
      PLUGIN,
      '--scope',
      'swarm',
      '--attachable',
      '--config-from',
      CONFIG_NET,
      attachable,
    ]);
    const [x, y] = [`${PREFIX}sw-x`, `${PREFIX}sw-y`];
    await dockerOk(['run', '-d', '--name', x, '--network', attachable, TEST_IMAGE, 'sleep', '3600']);
    // (Docker 20.10 ignores --ip here: the swarm manager allocates attachments from the range.)
    await dockerOk(['run', '-d', '--name', y, '--network', attachable, TEST_IMAGE, 'sleep', '3600']);
    const [ipX, ipY] = [await ipOn(x, attachable), await ipOn(y, attachable)];
    expect(ipX).not.toBe(ipY);
    expect(await ping(x, ipY)).toBe(true);
    expect(await ping(y, ipX)).toBe(true);
    await dockerOk(['rm', '-f', x, y]);
    await dockerOk(['network', 'rm', attachable]);
    await waitFor(() => readdirSync(join(stateSource, 'networks')).length === 0, 10_000, {
      what: 'DeleteNetwork on the node',
    });
  });
});
