// Failures in the multi-host lab (test/lab/multi-host.ts), two hosts on one cluster-wide range: one etcd member down
// changes nothing; quorum lost refuses a new container with the etcd message while running ones keep talking, and
// recovery needs nothing but the members' return; a plugin killed (SIGKILL) during a `docker run` leaves nothing
// doubled once it restarts and the user retries (at most the killed run's address held, by the killed host, until its
// network goes); and after everything is removed etcd holds no key of the subnet and the whole range starts again.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKv } from '../../src/cluster/etcd';
import { decodeClaims } from '../../src/cluster/keys';
import { LAN, type LabHost, MultiHostLab } from '../lab/multi-host';

const IMAGE = process.env.TSMV_TEST_IMAGE ?? 'tsmacvlan-test/busybox:latest';
const RANGE = /^10\.201\.0\.(12[89]|13\d|14[0-3])$/;
const ADDRESS_FORMAT = '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}';
let lab: MultiHostLab | undefined;

interface Running {
  host: LabHost;
  name: string;
  address: string;
}

async function start(host: LabHost, name: string): Promise<Running> {
  await host.docker('run', '-d', '--name', name, '--network', 'lan', IMAGE, 'sleep', '600');
  return { host, name, address: (await host.docker('inspect', '-f', ADDRESS_FORMAT, name)).trim() };
}

/** Retries a start (removing what a failed one left) until it succeeds or `tries` run out; the last error otherwise. */
async function startEventually(host: LabHost, name: string, tries: number): Promise<Running> {
  for (let i = 1; ; i++) {
    try {
      return await start(host, name);
    } catch (err) {
      await host.docker('rm', '-f', name).catch(() => undefined);
      if (i >= tries) throw err;
      await new Promise((resolve) => setTimeout(resolve, 2_000));
    }
  }
}

/** What etcd holds of the lab's subnet: address → the instances claiming it. */
async function claims(): Promise<Map<string, string[]>> {
  const kv = new EtcdKv({ endpoints: lab!.etcd.endpoints });
  try {
    const { entries } = await kv.range(`${kv.prefix}/v1/subnets/10.201.0.0_24/`);
    return new Map(
      entries.map((e) => [e.key.slice(e.key.lastIndexOf('/') + 1), (decodeClaims(e.value) ?? []).map((c) => c.owner)]),
    );
  } finally {
    await kv.close();
  }
}

/** The addresses etcd holds in the lab's range (the gateway, shared by the hosts, is outside it). */
async function claimedInRange(): Promise<string[]> {
  return [...(await claims()).keys()].filter((a) => RANGE.test(a)).sort();
}

const instanceOf = (host: LabHost): string => readFileSync(join(host.stateDir, 'instance'), 'utf8').trim();

/** Addresses of every container on both hosts' lab network, sorted. */
async function containerAddresses(): Promise<string[]> {
  const all: string[] = [];
  for (const host of lab!.hosts) {
    const names = (await host.docker('ps', '-aq', '--filter', 'network=lan')).split('\n').filter(Boolean);
    for (const id of names) {
      const address = (await host.docker('inspect', '-f', ADDRESS_FORMAT, id)).trim();
      if (address) all.push(address);
    }
  }
  return all.sort();
}

async function createNetworks(): Promise<void> {
  for (const host of lab!.hosts) {
    const subnet = `--subnet ${LAN} --gateway 10.201.0.1 --ip-range 10.201.0.128/28`;
    await host.docker(
      ...`network create -d ${host.driver} --ipam-driver ${host.driver} -o parent=eth1 ${subnet} lan`.split(' '),
    );
  }
}

beforeAll(async () => {
  lab = await MultiHostLab.create(2, process.env.TSMV_ENGINE_BIN);
  await createNetworks();
}, 600_000);

afterAll(async () => {
  await lab?.destroy();
}, 600_000);

describe('the cluster IPAM when etcd members or a plugin fail', () => {
  const running: Running[] = [];

  it('one etcd member down: containers still start on both hosts, with distinct addresses', async () => {
    const [h1, h2] = lab!.hosts;
    await lab!.etcd.killMember(0);
    try {
      running.push(...(await Promise.all([start(h1, 'a1'), start(h2, 'a2'), start(h1, 'b1'), start(h2, 'b2')])));
    } finally {
      lab!.etcd.startMember(0);
      await lab!.etcd.waitHealthy(lab!.etcd.endpoints, 60_000);
    }
    const addresses = running.map((c) => c.address);
    for (const a of addresses) expect(a).toMatch(RANGE);
    expect(new Set(addresses).size).toBe(4);
  }, 300_000);

  it('quorum lost: a new container is refused with the etcd message, running ones still talk, recovery is automatic', async () => {
    const [h1, h2] = lab!.hosts;
    // What a `docker run` costs on this host now, besides the plugin's answer: measured with etcd whole.
    const t0 = Date.now();
    running.push(await start(h1, 'p1'));
    const normalRun = Date.now() - t0;
    await lab!.etcd.killMember(1);
    await lab!.etcd.killMember(2);
    try {
      const asked = Date.now();
      await expect(h1.docker('run', '-d', '--name', 'q1', '--network', 'lan', IMAGE, 'sleep', '600')).rejects.toThrow(
        /quorum lost.*No address is handed out without etcd/s,
      );
      const refusedAfter = Date.now() - asked;
      console.log(`quorum lost: refused after ${refusedAfter} ms (a run with etcd whole took ${normalRun} ms)`);
      // The README's promise, "fails within about 5 s", bounded at 3 times that, plus what a run costs anyway.
      expect(refusedAfter).toBeLessThan(15_000 + normalRun);
      await h1.docker('rm', '-f', 'q1').catch(() => undefined);
      const from = running.find((c) => c.host === h1)!;
      const to = running.find((c) => c.host === h2)!;
      expect(await from.host.docker('exec', from.name, 'ping', '-c', '2', '-W', '2', to.address)).toMatch(
        / 0% packet loss/,
      );
    } finally {
      lab!.etcd.startMember(1);
      lab!.etcd.startMember(2);
    }
    await lab!.etcd.waitHealthy(lab!.etcd.endpoints, 60_000);
    // Nothing restarted on the hosts: the plugins reconnect by themselves (bounded retries, one start each at most).
    running.push(await startEventually(h1, 'q1', 15), await startEventually(h2, 'q2', 15));
    expect(new Set(running.map((c) => c.address)).size).toBe(running.length);
  }, 300_000);

  it('a plugin SIGKILLed during a docker run: after its restart and a retry, nothing doubled, every container claimed, at most the killed run address besides', async () => {
    const [h1, h2] = lab!.hosts;
    // Killed the moment etcd holds the run's address: the allocation's crash path, every time.
    const killed = await lab!.killPluginOnClaim(h1, () =>
      h1.docker('run', '-d', '--name', 'k1', '--network', 'lan', IMAGE, 'sleep', '600'),
    );
    const outcome =
      killed.outcome instanceof Error
        ? (killed.outcome.message.match(/^(?!WARNING).*$/m) ?? [killed.outcome.message])[0]
        : 'started';
    console.log(`docker run while its plugin was killed as it took ${killed.address}: ${outcome}`);
    expect(killed.address).toMatch(RANGE);
    await lab!.restartPlugin(h1);
    await h1.docker('rm', '-f', 'k1').catch(() => undefined);
    running.push(await startEventually(h1, 'k1', 5), await start(h2, 'k2'));

    const addresses = running.map((c) => c.address).sort();
    expect(new Set(addresses).size).toBe(addresses.length);
    expect(await containerAddresses()).toEqual(addresses);
    // Every container's address is claimed in etcd. Besides them, only the killed run's address may be: a kill after
    // the plugin answered RequestAddress loses the ReleaseAddress Docker sends while rolling back (README, "What the
    // plugin cannot undo"), so it is held by the killed host's instance alone, and only until that host's network is
    // removed (its last ReleasePool releases it: the next case checks that etcd is then empty).
    const held = await claims();
    const claimed = await claimedInRange();
    const extra = claimed.filter((a) => !addresses.includes(a));
    console.log(`after the kill and retry: ${addresses.length} containers, extra claims: [${extra.join(' ')}]`);
    expect(claimed.filter((a) => addresses.includes(a))).toEqual(addresses);
    expect(extra).toEqual(extra.length ? [killed.address] : []);
    for (const address of extra) expect(held.get(address)).toEqual([instanceOf(h1)]);
  }, 300_000);

  it('everything removed: etcd holds no key of the subnet, and the whole range is free again', async () => {
    for (const c of running.splice(0)) await c.host.docker('rm', '-f', c.name);
    for (const host of lab!.hosts) await host.docker('network', 'rm', 'lan');
    expect([...(await claims()).keys()]).toEqual([]);
    await createNetworks();
    const [h1, h2] = lab!.hosts;
    const all = await Promise.all(Array.from({ length: 16 }, (_, i) => start(i % 2 ? h2 : h1, `f${i}`)));
    expect(new Set(all.map((c) => c.address)).size).toBe(16);
    for (const c of all) await c.host.docker('rm', '-f', c.name);
    expect(await claimedInRange()).toEqual([]);
  }, 300_000);
});
