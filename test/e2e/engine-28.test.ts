// What only Docker 28 and later ask of a network driver: IPv6-only networks (`--ipv4=false`) with Docker's IPAM and
// with ours, a MAC address per network (`--network name=...,mac-address=...`) and endpoint sysctls
// (`com.docker.network.endpoint.sysctls`, applied by Docker inside the container). vitest.config.ts includes this file
// only when the lab's engine is 28.x or later (TSMV_ENGINE, set by test/run-all.sh): older engines refuse the flags.
import { beforeAll, describe, expect, it } from 'vitest';
import { containerExec, dockerOk, ping, runSleeper, uniqueName, waitFor } from './docker';
import { DRIVER, withPluginDaemon } from './plugin-daemon';
import { createSwitch, type Switch } from './topology';

const PREFIX = 'tsmv-e28-';

/** The container's interface with an address starting with `subnetStart` (e.g. 'fd31:233:1:'), and its MAC. */
async function linkWithAddress(container: string, subnetStart: string): Promise<{ ifname: string; mac: string }> {
  const out = (await containerExec(container, ['ip', '-o', 'addr', 'show'])).stdout;
  const line = out.split('\n').find((l) => l.includes(` ${subnetStart}`));
  if (!line) throw new Error(`${container} has no address in ${subnetStart}*:\n${out}`);
  const ifname = line.split(/\s+/)[1];
  const mac = (await containerExec(container, ['cat', `/sys/class/net/${ifname}/address`])).stdout.trim();
  return { ifname, mac };
}

const inspectNet = (container: string, network: string, field: string) =>
  dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").${field}}}`, container]);

/** Pings until a reply comes (a fresh IPv6 address is tentative until DAD is done), for at most 20 s. */
const reaches = (container: string, address: string) =>
  waitFor(() => ping(container, address), 20_000, { intervalMs: 500, what: `${container} to reach ${address}` });

describe('Docker 28 endpoint and network options', () => {
  withPluginDaemon(PREFIX);

  beforeAll(async () => {
    const version = await dockerOk(['version', '-f', '{{.Server.Version}}']);
    if (Number(version.split('.')[0]) < 28)
      throw new Error(`these tests need Docker 28 or later, the lab runs ${version}`);
  });

  for (const ipam of ['default', 'tsmacvlan'] as const) {
    it(`an IPv6-only network (--ipv4=false) with ${ipam === 'default' ? "Docker's" : 'our'} IPAM: containers get only IPv6 addresses and reach each other and the switch`, async () => {
      const n = ipam === 'default' ? 1 : 2;
      const sw = await createSwitch({ subnetPrefix: `10.233.${n}`, ipv6Prefix: `fd31:233:${n}::` });
      const net = uniqueName(PREFIX);
      await dockerOk([
        'network',
        'create',
        '-d',
        DRIVER,
        ...(ipam === 'default' ? [] : ['--ipam-driver', DRIVER]),
        '--ipv4=false',
        '--ipv6',
        '--subnet',
        sw.subnet6!,
        '--gateway',
        sw.bridgeIp6!,
        '-o',
        `parent=${sw.parent}`,
        net,
      ]);
      expect(await dockerOk(['network', 'inspect', '-f', '{{.EnableIPv4}} {{.EnableIPv6}}', net])).toBe('false true');
      const [a, b] = [uniqueName(PREFIX), uniqueName(PREFIX)];
      await runSleeper(a, { network: net });
      await runSleeper(b, { network: net, extraArgs: ['--ip6', `fd31:233:${n}::77`] });

      expect(await inspectNet(a, net, 'IPAddress')).toBe('');
      const addressA = await inspectNet(a, net, 'GlobalIPv6Address');
      expect(addressA.startsWith(`fd31:233:${n}::`)).toBe(true);
      expect([sw.bridgeIp6, `fd31:233:${n}::77`]).not.toContain(addressA);
      expect(await inspectNet(b, net, 'GlobalIPv6Address')).toBe(`fd31:233:${n}::77`);
      for (const c of [a, b]) {
        const { ifname } = await linkWithAddress(c, `fd31:233:${n}:`);
        expect((await containerExec(c, ['ip', '-4', '-o', 'addr', 'show', 'dev', ifname])).stdout.trim()).toBe('');
      }
      expect(await reaches(a, `fd31:233:${n}::77`)).toBe(true);
      expect(await reaches(b, addressA)).toBe(true);
      expect(await reaches(a, sw.bridgeIp6!)).toBe(true);
    });
  }

  it('a MAC address per network (--network name=...,mac-address=...): each interface carries its own, and the switch sees it', async () => {
    const switches: Switch[] = [
      await createSwitch({ subnetPrefix: '10.233.3' }),
      await createSwitch({ subnetPrefix: '10.233.4' }),
    ];
    const macs = ['02:42:0a:e9:03:0a', '02:42:0a:e9:04:0a'];
    const nets = switches.map(() => uniqueName(PREFIX));
    for (const [i, sw] of switches.entries())
      await dockerOk(['network', 'create', '-d', DRIVER, '--subnet', sw.subnet, '-o', `parent=${sw.parent}`, nets[i]]);
    const c = uniqueName(PREFIX);
    await runSleeper(c, {
      extraArgs: nets.flatMap((net, i) => ['--network', `name=${net},mac-address=${macs[i]},ip=10.233.${i + 3}.10`]),
    });
    for (const [i, sw] of switches.entries()) {
      expect((await linkWithAddress(c, `10.233.${i + 3}.`)).mac).toBe(macs[i]);
      expect(await inspectNet(c, nets[i], 'MacAddress')).toBe(macs[i]);
      expect(await ping(c, sw.bridgeIp)).toBe(true);
      const neighbour = (await sw.exec(['ip', 'neigh', 'show', `10.233.${i + 3}.10`])).stdout;
      expect(neighbour).toContain(`lladdr ${macs[i]}`);
    }
  });

  it('endpoint sysctls (driver-opt com.docker.network.endpoint.sysctls) are set on the container interface, and only on it', async () => {
    const sw = await createSwitch({ subnetPrefix: '10.233.5' });
    const net = uniqueName(PREFIX);
    await dockerOk(['network', 'create', '-d', DRIVER, '--subnet', sw.subnet, '-o', `parent=${sw.parent}`, net]);
    const sysctls = 'net.ipv4.conf.IFNAME.log_martians=1,net.ipv4.conf.IFNAME.arp_ignore=2';
    const [tuned, plain] = [uniqueName(PREFIX), uniqueName(PREFIX)];
    // A CSV field in quotes: the sysctls' own commas must not split --network's value.
    await runSleeper(tuned, {
      extraArgs: ['--network', `name=${net},"driver-opt=com.docker.network.endpoint.sysctls=${sysctls}"`],
    });
    await runSleeper(plain, { network: net });
    const read = async (c: string) => {
      const { ifname } = await linkWithAddress(c, '10.233.5.');
      const value = async (key: string) =>
        (await containerExec(c, ['cat', `/proc/sys/net/ipv4/conf/${ifname}/${key}`])).stdout.trim();
      return { log_martians: await value('log_martians'), arp_ignore: await value('arp_ignore') };
    };
    expect(await read(tuned)).toEqual({ log_martians: '1', arp_ignore: '2' });
    expect(await read(plain)).toEqual({ log_martians: '0', arp_ignore: '0' });
    expect(await ping(tuned, sw.bridgeIp)).toBe(true);
  });
});
