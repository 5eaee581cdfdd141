// Probe before use under a real Docker Engine: squatters on the test switch (devices the plugin does not know, each
// with a MAC of its own, holding addresses of the range, IPv4 and IPv6). 20 `docker run` at once never get their
// addresses; `docker run --ip` of a squatter's address fails naming its MAC; a squatter that leaves is freed by the
// re-probe and its address can be used again. The cluster IPAM's part is in multi-host.test.ts.
import { describe, expect, it } from 'vitest';
import { CLI } from '../helpers/serve';
import { docker, dockerOk, run, uniqueName } from './docker';
import { DRIVER, withPluginDaemon } from './plugin-daemon';
import { createSwitch, type Switch } from './topology';

const PREFIX = 'tsmv-probe-';
const IMAGE = 'tsmacvlan-test/busybox:latest';
const SQUAT = { a: '02:5c:00:00:00:0a', b: '02:5c:00:00:00:0b', c: '02:5c:00:00:00:0c' };

/**
 * A device on the switch: a veth in its namespace, the other end a port of the bridge, with `mac` and `addresses`.
 * The namespace answers ARP only on the link that holds the address (arp_ignore=1), as separate devices would.
 */
async function squatter(sw: Switch, name: string, mac: string, addresses: string[]): Promise<void> {
  await sw.exec(['sysctl', '-qw', 'net.ipv4.conf.all.arp_ignore=1']);
  await sw.exec(['ip', 'link', 'add', name, 'address', mac, 'type', 'veth', 'peer', 'name', `${name}b`]);
  await sw.exec(['ip', 'link', 'set', `${name}b`, 'master', sw.bridge, 'up']);
  for (const address of addresses) {
    const v6 = address.includes(':');
    await sw.exec(['ip', 'addr', 'add', address, 'dev', name, ...(v6 ? ['nodad'] : [])]);
  }
  await sw.exec(['ip', 'link', 'set', name, 'up']);
}

async function addressesOf(container: string): Promise<{ v4: string; v6: string }> {
  const format = '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.GlobalIPv6Address}}{{end}}';
  const [v4, v6] = (await dockerOk(['inspect', '-f', format, container])).split(' ');
  return { v4: v4!, v6: v6! };
}

describe('probe before use with Docker', () => {
  const plugin = withPluginDaemon(PREFIX, { TSMACVLAN_PROBE_RECHECK_SECONDS: '2' });

  it("20 started at once never get a squatter's address; --ip of one fails naming its MAC; one that leaves is freed", async () => {
    const sw = await createSwitch({ subnetPrefix: '10.231.70', ipv6Prefix: 'fd31:231:70::' });
    await squatter(sw, 'sqa', SQUAT.a, ['10.231.70.130/24', '10.231.70.133/24', 'fd31:231:70::82/64']);
    await squatter(sw, 'sqb', SQUAT.b, ['10.231.70.131/24']);
    await squatter(sw, 'sqc', SQUAT.c, ['10.231.70.136/24', 'fd31:231:70::85/64']);
    const net = uniqueName(PREFIX);
    await dockerOk([
      'network',
      'create',
      '-d',
      DRIVER,
      '--ipam-driver',
      DRIVER,
      '--subnet',
      '10.231.70.0/24',
      '--gateway',
      '10.231.70.1',
      '--ip-range',
      '10.231.70.128/27',
      '--ipv6',
      '--subnet',
      'fd31:231:70::/64',
      '--gateway',
      'fd31:231:70::1',
      '--ip-range',
      'fd31:231:70::80/123',
      '-o',
      `parent=${sw.parent}`,
      net,
    ]);
    const names = Array.from({ length: 20 }, () => uniqueName(PREFIX));
    const started = await Promise.all(
      names.map((name) =>
        docker(['run', '-d', '--name', name, '--network', net, IMAGE, 'sleep', '3600'], {
          allowFail: true,
          timeoutMs: 180_000,
        }),
      ),
    );
    expect(started.filter((r) => r.code !== 0).map((r) => r.stderr)).toEqual([]);
    const got = await Promise.all(names.map(addressesOf));
    const v4 = got.map((a) => a.v4);
    const v6 = got.map((a) => a.v6);
    expect(new Set(v4).size).toBe(20);
    expect(new Set(v6).size).toBe(20);
    for (const squatted of ['10.231.70.130', '10.231.70.131', '10.231.70.133', '10.231.70.136'])
      expect(v4).not.toContain(squatted);
    for (const squatted of ['fd31:231:70::82', 'fd31:231:70::85']) expect(v6).not.toContain(squatted);

    const refused = await docker(
      ['run', '-d', '--name', uniqueName(PREFIX), '--network', net, '--ip', '10.231.70.131', IMAGE, 'sleep', '3600'],
      { allowFail: true },
    );
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(
      `address 10.231.70.131 is in use on the LAN: the device with MAC ${SQUAT.b} answered for it on ${sw.parent} (ARP)`,
    );

    // The squatter of .136 leaves: the re-probe frees it, and a --ip of it starts.
    const status = async () =>
      (await run(process.execPath, [CLI, 'status', '--state-dir', plugin().stateDir, '--json'])).stdout;
    expect(JSON.parse(await status()).devices.map((d: { address: string }) => d.address)).toContain('10.231.70.136');
    await sw.exec(['ip', 'link', 'del', 'sqc']);
    for (let i = 0; i < 100 && (await status()).includes('"10.231.70.136"'); i++)
      await new Promise((r) => setTimeout(r, 200));
    expect(await status()).not.toContain('"10.231.70.136"');
    const again = uniqueName(PREFIX);
    await dockerOk(['run', '-d', '--name', again, '--network', net, '--ip', '10.231.70.136', IMAGE, 'sleep', '3600']);
    expect((await addressesOf(again)).v4).toBe('10.231.70.136');
  }, 300_000);
});
