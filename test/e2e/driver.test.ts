// tsmacvlan under a real Docker Engine: the seed experiment on a test-built switch, mode by mode.
import { describe, expect, it } from 'vitest';
import { docker, dockerOk, eventually, ping, runSleeper, uniqueName } from './docker';
import { DRIVER, pluginLinksOnHost, withPluginDaemon } from './plugin-daemon';
import { createSwitch, type Switch } from './topology';

const PREFIX = 'tsmv-drv-';

async function network(sw: Switch, mode: string, extra: string[] = [], subnet = sw.subnet): Promise<string> {
  const name = uniqueName(PREFIX);
  await dockerOk([
    'network',
    'create',
    '-d',
    DRIVER,
    '-o',
    `parent=${sw.parent}`,
    '-o',
    `macvlan_mode=${mode}`,
    '--subnet',
    subnet,
    ...extra,
    name,
  ]);
  return name;
}

describe(`Docker with the ${DRIVER} driver`, () => {
  const plugin = withPluginDaemon(PREFIX);

  it('bridge mode: containers reach each other and the switch, but not an address on the parent itself', async () => {
    const sw = await createSwitch({ subnetPrefix: '10.231.15' });
    const net = await network(sw, 'bridge');
    const [a, b] = [uniqueName(PREFIX), uniqueName(PREFIX)];
    await runSleeper(a, { network: net, ip: '10.231.15.10' });
    await runSleeper(b, { network: net, ip: '10.231.15.11' });
    expect(await ping(a, '10.231.15.11')).toBe(true);
    expect(await ping(b, '10.231.15.10')).toBe(true);
    expect(await ping(a, sw.bridgeIp)).toBe(true);
    expect((await sw.exec(['ping', '-c', '1', '-W', '2', '10.231.15.11'], { allowFail: true })).code).toBe(0);
    // macvlan's known limitation: the parent does not talk to its own macvlans.
    expect(await ping(a, sw.hostIp, { timeoutSec: 1 })).toBe(false);
  });

  it('private mode: containers do not reach each other, do reach the switch', async () => {
    const sw = await createSwitch({ subnetPrefix: '10.231.16' });
    const net = await network(sw, 'private');
    const [a, b] = [uniqueName(PREFIX), uniqueName(PREFIX)];
    await runSleeper(a, { network: net, ip: '10.231.16.10' });
    await runSleeper(b, { network: net, ip: '10.231.16.11' });
    expect(await ping(a, sw.bridgeIp)).toBe(true);
    expect(await ping(b, sw.bridgeIp)).toBe(true);
    expect(await ping(a, '10.231.16.11', { timeoutSec: 1 })).toBe(false);
  });

  it('vepa mode: containers reach each other only once the switch port hairpins', async () => {
    const sw = await createSwitch({ subnetPrefix: '10.231.17' });
    const net = await network(sw, 'vepa');
    const [a, b] = [uniqueName(PREFIX), uniqueName(PREFIX)];
    await runSleeper(a, { network: net, ip: '10.231.17.10' });
    await runSleeper(b, { network: net, ip: '10.231.17.11' });
    expect(await ping(a, sw.bridgeIp)).toBe(true);
    expect(await ping(a, '10.231.17.11', { timeoutSec: 1 })).toBe(false);
    await sw.setHairpin(true);
    expect(await ping(a, '10.231.17.11', { count: 2, timeoutSec: 2 })).toBe(true);
  });

  it('passthru mode: one container works, a second is refused with a clear error', async () => {
    const sw = await createSwitch({ subnetPrefix: '10.231.18' });
    const net = await network(sw, 'passthru');
    const a = uniqueName(PREFIX);
    await runSleeper(a, { network: net, ip: '10.231.18.10' });
    expect(await ping(a, sw.bridgeIp)).toBe(true);
    const second = await docker(
      [
        'run',
        '-d',
        '--name',
        uniqueName(PREFIX),
        '--network',
        net,
        '--ip',
        '10.231.18.11',
        'tsmacvlan-test/busybox:latest',
        'sleep',
        '60',
      ],
      { allowFail: true },
    );
    expect(second.code).not.toBe(0);
    expect(second.stderr).toMatch(
      /macvlan_mode=passthru, which gives parent '.*' to a single container, and one is attached already/,
    );
  });

  it('network connect/disconnect on a running container, rm -f and network rm leave no link behind', async () => {
    const sw = await createSwitch({ subnetPrefix: '10.231.19' });
    const net = await network(sw, 'bridge');
    const other = await network(sw, 'bridge', ['--internal'], '10.231.29.0/24'); // a second network on the same parent
    const a = uniqueName(PREFIX);
    const b = uniqueName(PREFIX);
    await runSleeper(a, { network: net, ip: '10.231.19.10' });
    await runSleeper(b, { network: 'none' });
    await dockerOk(['network', 'disconnect', 'none', b]);
    await dockerOk(['network', 'connect', '--ip', '10.231.19.11', net, b]);
    expect(await ping(b, '10.231.19.10')).toBe(true);
    await dockerOk(['network', 'connect', other, a]);
    await dockerOk(['network', 'disconnect', net, b]);
    expect(await ping(a, '10.231.19.11', { timeoutSec: 1 })).toBe(false);
    await dockerOk(['network', 'connect', net, b]);
    expect(
      await ping(a, await dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, b])),
    ).toBe(true);
    await dockerOk(['rm', '-f', a, b]);
    await dockerOk(['network', 'rm', net, other]);
    await eventually(async () => expect(await pluginLinksOnHost(plugin().stateDir, 'ei')).toEqual([]));
  });

  it('an internal network without a parent: containers talk to each other, nothing else', async () => {
    const net = uniqueName(PREFIX);
    await dockerOk(['network', 'create', '-d', DRIVER, '--subnet', '10.231.20.0/24', net]);
    const [a, b] = [uniqueName(PREFIX), uniqueName(PREFIX)];
    await runSleeper(a, { network: net, ip: '10.231.20.10' });
    await runSleeper(b, { network: net, ip: '10.231.20.11' });
    expect(await ping(a, '10.231.20.11')).toBe(true);
    const routes = await dockerOk(['exec', a, 'ip', 'route']);
    expect(routes).not.toMatch(/default/);
    await dockerOk(['rm', '-f', a, b]);
    await dockerOk(['network', 'rm', net]);
    await eventually(async () => expect(await pluginLinksOnHost(plugin().stateDir, 'ei')).toEqual([]));
  });

  it('shows the option error to the user and creates nothing', async () => {
    const sw = await createSwitch({ subnetPrefix: '10.231.21' });
    const res = await docker(
      [
        'network',
        'create',
        '-d',
        DRIVER,
        '-o',
        `parent=${sw.parent}`,
        '-o',
        'macvlan_mod=vepa',
        '--subnet',
        sw.subnet,
        uniqueName(PREFIX),
      ],
      { allowFail: true },
    );
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain(
      "unknown option 'macvlan_mod'; tsmacvlan accepts: parent, macvlan_mode, ipvlan_mode, ipvlan_flag, mtu, macvlan_source, host_access, vlan_protocol, dhcp, dhcp_timeout",
    );
  });
});
