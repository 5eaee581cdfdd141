// host_access under a real Docker Engine: the host reaching its own macvlan containers, and back.
import { describe, expect, it } from 'vitest';
import { dockerOk, ping, run, runSleeper, uniqueName } from './docker';
import { DRIVER, pluginLinksOnHost, withPluginDaemon } from './plugin-daemon';
import { createSwitch, localRouteDev, type Switch } from './topology';

const PREFIX = 'tsmv-ha-';

/** Ping from the host (the lab's namespace); only ever at container addresses this test made, on a local route. */
/**
 * Whether the host reaches `address`: pings of 1 s each until one is answered, within a generous deadline (a busy
 * machine may lose or delay a first answer); false at once when no local route leads there.
 */
async function hostPing(address: string, deadlineMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + deadlineMs;
  do {
    if (!(await localRouteDev(address))) return false;
    if ((await run('ping', ['-c', '1', '-W', '1', address], { allowFail: true })).code === 0) return true;
  } while (Date.now() < deadline);
  return false;
}

/** The plugin's shims and its routes into the subnet (the parent's own route to its subnet is the switch's). */
async function shimsAndRoutes(stateDir: string, sw: Switch): Promise<{ shims: string[]; routes: string[] }> {
  const routesOut = (await run('ip', ['-4', 'route', 'show'])).stdout;
  const subnetPrefix = sw.subnet.replace(/0\/24$/, '');
  return {
    shims: await pluginLinksOnHost(stateDir, 'h'),
    routes: routesOut.split('\n').filter((r) => r.startsWith(subnetPrefix) && !r.includes(` dev ${sw.parent} `)),
  };
}

describe('host_access with Docker', () => {
  const plugin = withPluginDaemon(PREFIX);

  it('without it the host cannot reach its containers; with it, host ↔ container works through flaps, restarts, and leaves nothing', async () => {
    const sw = await createSwitch({ subnetPrefix: '10.231.40' });

    const plain = uniqueName(PREFIX);
    await dockerOk([
      'network',
      'create',
      '-d',
      DRIVER,
      '-o',
      `parent=${sw.parent}`,
      '--subnet',
      '10.231.40.0/24',
      plain,
    ]);
    const lonely = uniqueName(PREFIX);
    await runSleeper(lonely, { network: plain, ip: '10.231.40.10' });
    expect(await ping(lonely, sw.bridgeIp)).toBe(true); // the container is on the LAN...
    expect(await hostPing('10.231.40.10')).toBe(false); // ...but not reachable from its own host: macvlan's limitation
    await dockerOk(['rm', '-f', lonely]);
    await dockerOk(['network', 'rm', plain]);

    const net = uniqueName(PREFIX);
    await dockerOk([
      'network',
      'create',
      '-d',
      DRIVER,
      '-o',
      `parent=${sw.parent}`,
      '-o',
      'host_access=10.231.40.250',
      '--subnet',
      '10.231.40.0/24',
      '--aux-address',
      'host=10.231.40.250',
      net,
    ]);
    const [a, b] = [uniqueName(PREFIX), uniqueName(PREFIX)];
    await runSleeper(a, { network: net, ip: '10.231.40.10' });
    await runSleeper(b, { network: net, ip: '10.231.40.11' });
    expect(await hostPing('10.231.40.10')).toBe(true);
    expect(await hostPing('10.231.40.11')).toBe(true);
    expect(await ping(a, '10.231.40.250')).toBe(true);
    expect(await ping(a, sw.bridgeIp)).toBe(true); // the LAN still works

    // The parent goes down and up: the shim and its routes are kept, so the host reaches the container again once
    // the link is up (waited on, with a generous deadline).
    await run('ip', ['link', 'set', sw.parent, 'down']);
    await run('ip', ['link', 'set', sw.parent, 'up']);
    expect(await hostPing('10.231.40.10')).toBe(true);
    expect(await ping(b, '10.231.40.250')).toBe(true);

    // The plugin restarts: still working, and new containers get their route.
    await plugin().restart();
    expect(await hostPing('10.231.40.11')).toBe(true);
    const c = uniqueName(PREFIX);
    await runSleeper(c, { network: net, ip: '10.231.40.12' });
    expect(await hostPing('10.231.40.12')).toBe(true);
    expect(await ping(c, '10.231.40.250')).toBe(true);

    await dockerOk(['rm', '-f', a, b, c]);
    await dockerOk(['network', 'rm', net]);
    expect(await shimsAndRoutes(plugin().stateDir, sw)).toEqual({ shims: [], routes: [] });
  });
});
