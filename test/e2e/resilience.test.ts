// Under load and restarts, with a real Docker Engine: parallel starts, concurrent connect/disconnect, dockerd killed
// and started again, the plugin restarted while dockerd runs.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Engine } from '../lab/engine';
import { TEST_IMAGE, docker, dockerOk, eventually, ping, runSleeper, uniqueName } from './docker';
import { DRIVER, pluginLinksOnHost, withPluginDaemon } from './plugin-daemon';
import { createSwitch, type Switch } from './topology';

const PREFIX = 'tsmv-res-';

async function addressOf(container: string, network: string): Promise<string> {
  return dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, container]);
}

async function network(sw: Switch, subnet: string, range?: string): Promise<string> {
  const name = uniqueName(PREFIX);
  await dockerOk([
    'network',
    'create',
    '-d',
    DRIVER,
    '--ipam-driver',
    DRIVER,
    '-o',
    `parent=${sw.parent}`,
    '--subnet',
    subnet,
    ...(range ? ['--ip-range', range] : []),
    name,
  ]);
  return name;
}

/**
 * Kills the lab's dockerd outright, as a crash under systemd would (the unit's whole control group: dockerd and the
 * containerd it runs; an orphaned containerd would keep the next dockerd from starting its own), and starts it again.
 * Only the lab's own engine: the pid in its pid file and the containerd it started.
 */
async function crashAndRestartDockerd(): Promise<void> {
  const engine = Engine.ofLab();
  await engine.kill();
  await engine.restart();
}

describe('resilience with Docker', () => {
  const plugin = withPluginDaemon(PREFIX);

  it('starts 100 containers in parallel on one network: all run, all addresses distinct, no link left after', async () => {
    const sw = await createSwitch({ subnetPrefix: '10.231.50' });
    const net = await network(sw, '10.231.50.0/24');
    const names = Array.from({ length: 100 }, () => uniqueName(PREFIX));
    const started = await Promise.all(
      names.map((name) =>
        docker(['run', '-d', '--name', name, '--network', net, TEST_IMAGE, 'sleep', '3600'], {
          allowFail: true,
          timeoutMs: 240_000,
        }),
      ),
    );
    expect(started.filter((r) => r.code !== 0).map((r) => r.stderr)).toEqual([]);
    const addresses = await Promise.all(names.map((name) => addressOf(name, net)));
    expect(new Set(addresses).size).toBe(100);
    expect(await ping(names[0], addresses[99])).toBe(true);
    await dockerOk(['rm', '-f', ...names], { timeoutMs: 240_000 });
    const failures = plugin()
      .daemon.output()
      .split('\n')
      .filter((l) => /"status":(4|5)\d\d/.test(l));
    expect(failures).toEqual([]);
    // `docker rm -f` answers before dockerd has torn down every endpoint: wait for Docker's view, then the plugin's.
    await eventually(
      async () => expect(await dockerOk(['network', 'inspect', '-f', '{{len .Containers}}', net])).toBe('0'),
      60_000,
    );
    await eventually(async () => expect(await pluginLinksOnHost(plugin().stateDir, 'e')).toEqual([]));
    const recordsLeft = () => readdirSync(join(plugin().stateDir, 'endpoints')).filter((f) => f.endsWith('.json'));
    await eventually(() => expect(recordsLeft()).toEqual([]));
    // Docker 20.10's own count of a network's endpoints can go stale when many are removed at once: the network is
    // then refused with 'has active endpoints' though no container is on it, until dockerd's next start ("Fixing
    // inconsistent endpoint_cnt ... Expected=0, Actual=8", seen here once). Docker's built-in macvlan driver with its
    // own IPAM does the same (100 containers, rm -f: network rm refused for 30 s with none on it). The plugin is not
    // asked about it, and waiting does not mend it: dockerd's next start fixes the count, and the network must then go.
    const removed = await eventually(() => dockerOk(['network', 'rm', net]), 10_000).then(
      () => true,
      (err: Error) => {
        if (!/has active endpoints/.test(err.message)) throw err;
        return false;
      },
    );
    if (!removed) {
      console.log(`docker network rm ${net}: Docker's endpoint count is stale; restarting the lab's dockerd`);
      await crashAndRestartDockerd();
      await dockerOk(['network', 'rm', net]);
    }
    expect((await docker(['network', 'inspect', net], { allowFail: true })).code).not.toBe(0);
    await eventually(() =>
      expect(readdirSync(join(plugin().stateDir, 'networks')).filter((f) => f.endsWith('.json'))).toEqual([]),
    );
  });

  it('survives connect/disconnect loops from several shells at once', async () => {
    const sw = await createSwitch({ subnetPrefix: '10.231.51' });
    const net = await network(sw, '10.231.51.0/24');
    const shells = Array.from({ length: 4 }, () => uniqueName(PREFIX));
    for (const name of shells) await runSleeper(name, { network: 'none' });
    for (const name of shells) await dockerOk(['network', 'disconnect', 'none', name]);
    const loop = async (name: string) => {
      for (let i = 0; i < 10; i++) {
        await dockerOk(['network', 'connect', net, name]);
        await dockerOk(['network', 'disconnect', net, name]);
      }
    };
    await Promise.all(shells.map(loop));
    await eventually(async () => expect(await pluginLinksOnHost(plugin().stateDir, 'e')).toEqual([]));
    for (const name of shells) await dockerOk(['network', 'connect', net, name]);
    const addresses = await Promise.all(shells.map((name) => addressOf(name, net)));
    expect(new Set(addresses).size).toBe(4);
    expect(await ping(shells[0], addresses[3])).toBe(true);
  });

  it('keeps working when the plugin restarts under a running dockerd, and when dockerd is killed and started again', async () => {
    const sw = await createSwitch({ subnetPrefix: '10.231.52' });
    const net = await network(sw, '10.231.52.0/24');
    const [a, b] = [uniqueName(PREFIX), uniqueName(PREFIX)];
    await runSleeper(a, { network: net });
    await plugin().restart();
    await runSleeper(b, { network: net });
    expect(await ping(b, await addressOf(a, net))).toBe(true);

    await crashAndRestartDockerd();
    // Containers dockerd stopped come back with `start`; new ones join; the network is the same.
    await dockerOk(['start', a, b]);
    const c = uniqueName(PREFIX);
    await runSleeper(c, { network: net });
    const addresses = await Promise.all([a, b, c].map((n) => addressOf(n, net)));
    expect(new Set(addresses).size).toBe(3);
    expect(await ping(c, addresses[0])).toBe(true);
    expect(await ping(a, sw.bridgeIp)).toBe(true);
    await dockerOk(['rm', '-f', a, b, c]);
    await dockerOk(['network', 'rm', net]);
    await eventually(async () => expect(await pluginLinksOnHost(plugin().stateDir, 'e')).toEqual([]));
  });
});
