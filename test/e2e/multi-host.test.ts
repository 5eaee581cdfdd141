// Two Docker hosts on one LAN (test/lab/multi-host.ts), one subnet and one --ip-range on both through the cluster
// IPAM: containers started in parallel on both get distinct addresses, and one reaches another across hosts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAN, MultiHostLab } from '../lab/multi-host';

const IMAGE = process.env.TSMV_TEST_IMAGE ?? 'tsmacvlan-test/busybox:latest';
let lab: MultiHostLab | undefined;

beforeAll(async () => {
  lab = await MultiHostLab.create(2, process.env.TSMV_ENGINE_BIN);
}, 600_000);

afterAll(async () => {
  await lab?.destroy();
}, 600_000);

describe('two hosts, one subnet, one --ip-range, one etcd', () => {
  it('containers started in parallel on both get distinct addresses and reach each other across hosts', async () => {
    const hosts = lab!.hosts;
    for (const host of hosts) {
      const subnet = `--subnet ${LAN} --gateway 10.201.0.1 --ip-range 10.201.0.128/28`;
      await host.docker(
        ...`network create -d ${host.driver} --ipam-driver ${host.driver} -o parent=eth1 ${subnet} lan`.split(' '),
      );
    }
    const perHost = 4;
    const started = await Promise.all(
      hosts.flatMap((host) =>
        Array.from({ length: perHost }, (_, i) =>
          (async () => {
            await host.docker('run', '-d', '--name', `c${i}`, '--network', 'lan', IMAGE, 'sleep', '600');
            const address = (
              await host.docker('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', `c${i}`)
            ).trim();
            return { host, name: `c${i}`, address };
          })(),
        ),
      ),
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

    for (const c of started) await c.host.docker('rm', '-f', c.name);
    for (const host of hosts) await host.docker('network', 'rm', 'lan');
  });
});
