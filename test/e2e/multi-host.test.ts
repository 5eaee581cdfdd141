// Two Docker hosts on one LAN (test/lab/multi-host.ts), one subnet and one --ip-range on both through the cluster
// IPAM: containers started in parallel on both get distinct addresses, one reaches another across hosts, the range
// fills to its exact size and the next start fails with the exhaustion message on either, and once everything is
// removed nothing is left in etcd. With squatters on the LAN (probe before use): containers started at once on both
// hosts never get their addresses, each is one device claim in etcd, and a --ip of one fails naming its MAC.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeClaims } from '../../src/cluster/keys';
import { EtcdKv } from '../../src/cluster/etcd';
import { LAN, type LabHost, MultiHostLab } from '../lab/multi-host';

const IMAGE = process.env.TSMV_TEST_IMAGE ?? 'tsmacvlan-test/busybox:latest';
let lab: MultiHostLab | undefined;

/** Starts a container on the lab network of `host`; its address. */
async function start(host: LabHost, name: string): Promise<{ host: LabHost; name: string; address: string }> {
  await host.docker('run', '-d', '--name', name, '--network', 'lan', IMAGE, 'sleep', '600');
  const format = '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}';
  return { host, name, address: (await host.docker('inspect', '-f', format, name)).trim() };
}

beforeAll(async () => {
  lab = await MultiHostLab.create(2, process.env.TSMV_ENGINE_BIN);
}, 600_000);

afterAll(async () => {
  await lab?.destroy();
}, 600_000);

describe('two hosts, one subnet, one --ip-range, one etcd', () => {
  it('parallel containers on both get distinct addresses, reach each other, fill the range exactly; then all is free', async () => {
    const hosts = lab!.hosts;
    for (const host of hosts) {
      const subnet = `--subnet ${LAN} --gateway 10.201.0.1 --ip-range 10.201.0.128/28`;
      await host.docker(
        ...`network create -d ${host.driver} --ipam-driver ${host.driver} -o parent=eth1 ${subnet} lan`.split(' '),
      );
    }
    const perHost = 4;
    const started = await Promise.all(
      hosts.flatMap((host) => Array.from({ length: perHost }, (_, i) => start(host, `c${i}`))),
    );
    const addresses = started.map((c) => c.address);
    console.log(
      `addresses: ${hosts
        .map(
          (h) =>
            `${h.name}: ${started
              .filter((c) => c.host === h)
              .map((c) => c.address)
              .join(' ')}`,
        )
        .join('; ')}`,
    );
    expect(new Set(addresses).size).toBe(hosts.length * perHost);
    for (const address of addresses) expect(address).toMatch(/^10\.201\.0\.(12[89]|13\d|14[0-3])$/);

    const from = started.find((c) => c.host === hosts[0])!;
    const to = started.find((c) => c.host === hosts[1])!;
    expect(await from.host.docker('exec', from.name, 'ping', '-c', '2', '-W', '2', to.address)).toMatch(
      / 0% packet loss/,
    );

    // The rest of the /28 (16 addresses) in parallel, then one more on either host: the cluster-wide exhaustion.
    const more = await Promise.all(
      hosts.flatMap((host) => Array.from({ length: perHost }, (_, i) => start(host, `d${i}`))),
    );
    const all = [...started, ...more];
    expect(new Set(all.map((c) => c.address)).size).toBe(16);
    for (const host of hosts) {
      await expect(
        host.docker('run', '-d', '--name', 'extra', '--network', 'lan', IMAGE, 'sleep', '600'),
      ).rejects.toThrow(
        /no free address in subnet 10\.201\.0\.0\/24 \(addresses 10\.201\.0\.128 to 10\.201\.0\.143\) across the cluster: all 16 are held/,
      );
      await host.docker('rm', '-f', 'extra').catch(() => undefined); // a failed start may leave the created container
    }

    for (const c of all) await c.host.docker('rm', '-f', c.name);
    for (const host of hosts) await host.docker('network', 'rm', 'lan');
    // Everything removed: nothing of the subnet is left in etcd, the gateway's shared claims included.
    const kv = new EtcdKv({ endpoints: lab!.etcd.endpoints });
    try {
      const { entries } = await kv.range(`${kv.prefix}/v1/subnets/10.201.0.0_24/`);
      expect(entries.map((e) => e.key)).toEqual([]);
    } finally {
      await kv.close();
    }
  });

  it('squatters on the LAN: containers started at once on both hosts never get their addresses; --ip of one fails naming its MAC', async () => {
    const hosts = lab!.hosts;
    const inSwitch = (...args: string[]) => execFileSync('ip', ['netns', 'exec', lab!.switchNs, ...args]);
    // Devices the plugins do not know, each a veth with a MAC of its own on the LAN's bridge.
    inSwitch('sysctl', '-qw', 'net.ipv4.conf.all.arp_ignore=1');
    const squatters = { '10.201.0.162': '02:5d:00:00:00:0a', '10.201.0.165': '02:5d:00:00:00:0b' };
    for (const [i, [address, mac]] of Object.entries(squatters).entries()) {
      inSwitch('ip', 'link', 'add', `sq${i}`, 'address', mac, 'type', 'veth', 'peer', 'name', `sq${i}b`);
      inSwitch('ip', 'link', 'set', `sq${i}b`, 'master', 'br0', 'up');
      inSwitch('ip', 'addr', 'add', `${address}/24`, 'dev', `sq${i}`);
      inSwitch('ip', 'link', 'set', `sq${i}`, 'up');
    }
    for (const host of hosts) {
      const subnet = `--subnet ${LAN} --gateway 10.201.0.1 --ip-range 10.201.0.160/28`;
      await host.docker(
        ...`network create -d ${host.driver} --ipam-driver ${host.driver} -o parent=eth1 ${subnet} lan`.split(' '),
      );
    }
    const started = await Promise.all(
      hosts.flatMap((host) => Array.from({ length: 5 }, (_, i) => start(host, `p${i}`))),
    );
    const addresses = started.map((c) => c.address);
    expect(new Set(addresses).size).toBe(10);
    for (const address of Object.keys(squatters)) expect(addresses).not.toContain(address);
    const kv = new EtcdKv({ endpoints: lab!.etcd.endpoints });
    try {
      const held = async () => {
        const { entries } = await kv.range(`${kv.prefix}/v1/subnets/10.201.0.0_24/`);
        return new Map(entries.map((e) => [e.key.split('/').pop()!, decodeClaims(e.value)?.[0]]));
      };
      const claims = await held();
      for (const [address, mac] of Object.entries(squatters))
        expect(claims.get(address)).toMatchObject({ kind: 'device', mac });

      await expect(
        hosts[1]!.docker('run', '-d', '--name', 'squat', '--network', 'lan', '--ip', '10.201.0.165', IMAGE, 'true'),
      ).rejects.toThrow(`address 10.201.0.165 is in use on the LAN: the device with MAC ${squatters['10.201.0.165']}`);
      await hosts[1]!.docker('rm', '-f', 'squat').catch(() => undefined);

      for (const c of started) await c.host.docker('rm', '-f', c.name);
      for (const host of hosts) await host.docker('network', 'rm', 'lan');
      // The device claims went with each host's pool: nothing of the subnet is left in etcd.
      expect([...(await held()).keys()]).toEqual([]);
    } finally {
      await kv.close();
    }
  });
});
