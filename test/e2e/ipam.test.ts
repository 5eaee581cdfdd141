// The IPAM under a real Docker Engine: `--ipam-driver tsmacvlan` with gateway, range, aux address, IPv6.
import { describe, expect, it } from 'vitest';
import { docker, dockerOk, ping, runSleeper, uniqueName } from './docker';
import { DRIVER, withPluginDaemon } from './plugin-daemon';
import { createSwitch } from './topology';

const PREFIX = 'tsmv-ipam-';
const IMAGE = 'tsmacvlan-test/busybox:latest';

async function addresses(container: string, network: string): Promise<{ v4: string; v6: string }> {
  const out = await dockerOk([
    'inspect',
    '-f',
    `{{with index .NetworkSettings.Networks "${network}"}}{{.IPAddress}} {{.GlobalIPv6Address}}{{end}}`,
    container,
  ]);
  const [v4, v6] = out.split(' ');
  return { v4, v6 };
}

function lastOctet(address: string): number {
  return Number(address.split('.')[3]);
}

describe('IPAM with Docker', () => {
  const plugin = withPluginDaemon(PREFIX);

  it('hands 50 parallel containers distinct addresses in the range, a static one outside it, IPv6 to all, and says when the range is exhausted', async () => {
    const sw = await createSwitch({ subnetPrefix: '10.231.60' });
    const net = uniqueName(PREFIX);
    await dockerOk([
      'network',
      'create',
      '-d',
      DRIVER,
      '--ipam-driver',
      DRIVER,
      '--subnet',
      '10.231.60.0/24',
      '--gateway',
      '10.231.60.1',
      '--ip-range',
      '10.231.60.128/26',
      '--aux-address',
      'host=10.231.60.130',
      '--ipv6',
      '--subnet',
      'fd00:231:60::/64',
      '-o',
      `parent=${sw.parent}`,
      net,
    ]);

    const names = Array.from({ length: 50 }, () => uniqueName(PREFIX));
    const runs = await Promise.all(
      names.map((name) =>
        docker(['run', '-d', '--name', name, '--network', net, IMAGE, 'sleep', '3600'], {
          allowFail: true,
          timeoutMs: 180_000,
        }),
      ),
    );
    expect(runs.filter((r) => r.code !== 0).map((r) => r.stderr)).toEqual([]);
    const given = await Promise.all(names.map((name) => addresses(name, net)));
    const v4 = given.map((a) => a.v4);
    expect(new Set(v4).size).toBe(50);
    for (const address of v4) {
      expect(address).toMatch(/^10\.231\.60\.\d+$/);
      expect(lastOctet(address)).toBeGreaterThanOrEqual(128);
      expect(lastOctet(address)).toBeLessThanOrEqual(191);
      expect(['10.231.60.1', '10.231.60.130']).not.toContain(address);
    }
    const v6 = given.map((a) => a.v6);
    expect(v6.every((a) => a.startsWith('fd00:231:60::'))).toBe(true);
    expect(new Set(v6).size).toBe(50);

    const fixed = uniqueName(PREFIX);
    await runSleeper(fixed, { network: net, ip: '10.231.60.77' }); // static, outside --ip-range
    expect((await addresses(fixed, net)).v4).toBe('10.231.60.77');
    expect(await ping(fixed, v4[0])).toBe(true);
    expect(await ping(fixed, sw.bridgeIp)).toBe(true);
    const taken = await docker(
      ['run', '-d', '--name', uniqueName(PREFIX), '--network', net, '--ip', '10.231.60.77', IMAGE, 'sleep', '60'],
      { allowFail: true },
    );
    // Refused: the run fails (125, Docker's own error) naming the address.
    expect(taken.code).toBe(125);
    expect(taken.stderr).toMatch(/10\.231\.60\.77/);

    // The range holds 64 addresses, one of them the aux address: 13 more fit, the next is refused in words.
    const rest = Array.from({ length: 13 }, () => uniqueName(PREFIX));
    const more = await Promise.all(
      rest.map((name) =>
        docker(['run', '-d', '--name', name, '--network', net, IMAGE, 'sleep', '3600'], {
          allowFail: true,
          timeoutMs: 120_000,
        }),
      ),
    );
    expect(more.filter((r) => r.code !== 0).map((r) => r.stderr)).toEqual([]);
    const over = await docker(['run', '-d', '--name', uniqueName(PREFIX), '--network', net, IMAGE, 'sleep', '60'], {
      allowFail: true,
    });
    expect(over.code).not.toBe(0);
    expect(over.stderr).toMatch(/exhausted/);
    expect(over.stderr).toMatch(/10\.231\.60\.128\/26/);
  });

  it('starts empty after everything is removed and the plugin restarted', async () => {
    const sw = await createSwitch({ subnetPrefix: '10.231.61' });
    const create = async () => {
      const net = uniqueName(PREFIX);
      await dockerOk([
        'network',
        'create',
        '-d',
        DRIVER,
        '--ipam-driver',
        DRIVER,
        '--subnet',
        '10.231.61.0/24',
        '-o',
        `parent=${sw.parent}`,
        net,
      ]);
      return net;
    };
    const first = await create();
    const a = uniqueName(PREFIX);
    await runSleeper(a, { network: first });
    const before = (await addresses(a, first)).v4;
    await dockerOk(['rm', '-f', a]);
    await dockerOk(['network', 'rm', first]);
    await plugin().restart();

    const second = await create();
    const b = uniqueName(PREFIX);
    await runSleeper(b, { network: second });
    // A fresh subnet hands out its first address again: nothing of the first network was left allocated.
    expect((await addresses(b, second)).v4).toBe(before);
    expect(before).toBe('10.231.61.2');
  });
});
