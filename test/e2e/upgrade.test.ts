// Upgrading the managed plugin in place with containers running (docs/install.md, "Upgrading"): from 0.1.0 (the
// version before, built from its own commit by test/e2e/provision.sh into plugin/build-previous) to this one, pushed
// to a real registry, then from this one to the next release (the same build under a later tag: the three commands
// alone), then a downgrade attempt onto a state a newer version wrote. Containers run on a network of each kind (the
// plugin's local IPAM, its cluster IPAM on etcd, DHCP, host access) and are pinged every 50 ms from the LAN and the
// host throughout: not one ping may be lost. The new version must adopt every network, endpoint, address, lease and
// claim; the old containers go, new ones start, and nothing is left at the end. Prints the control plane's gap.
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKv } from '../../src/cluster/etcd';
import { decodeClaims } from '../../src/cluster/keys';
import { EtcdCluster } from '../lab/etcd';
import { runId } from '../lab/lab';
import { Registry } from '../lab/registry';
import { docker, dockerOk, eventually, ping, removeDockerObjects, run, runSleeper, waitFor } from './docker';
import { managedPluginStateDir, removeManagedPlugin } from './managed-plugin';
import { pluginLinksOnHost } from './plugin-daemon';
import { destroyAllSwitches } from './topology';
import { createSites, monitor, type PingMonitor, type Site } from './upgrade-lab';

const REPO = join(__dirname, '../..');
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const PLUGIN = 'tsmv-upg:latest'; // what a 0.1.0 user's `tsmacvlan:latest` is here
const PREFIX = 'tsmv-upg-';
const REPOSITORY = '127.0.0.1:5000/tsmacvlan';
const NEXT = `${VERSION}-next`; // the next release: this build under a later tag
const ETCD_PORT = 23_790;

describe('docker plugin upgrade with containers running', () => {
  let registry: Registry;
  let etcd: EtcdCluster;
  let oldState: string; // 0.1.0's state: the host directory of its bind mount `state`
  let sites: Site[] = [];
  let instance: string;
  const etcdPrefix = `/${runId()}-upgrade`;
  const created: string[] = []; // containers started after an upgrade

  beforeAll(async () => {
    await removeDockerObjects(PREFIX);
    registry = await Registry.start(5000);
    etcd = EtcdCluster.onHost(`${runId()}upg`, '127.0.0.1', ETCD_PORT, 1);
    await etcd.start();
    await run('npm', ['run', '--silent', 'plugin:push', '--', '--reuse', '--no-cli', REPOSITORY], {
      timeoutMs: 900_000,
      env: { ...process.env, DOCKER: process.env.TSMV_DOCKER, TSMACVLAN_BUILD_PREFIX: 'tsmv-pkg-' },
    });
    await registry.tag('tsmacvlan', VERSION, NEXT);

    // 0.1.0 as its plugin/create.sh made it: state and TLS in host directories of bind mounts (here, temporary ones).
    oldState = mkdtempSync(join(tmpdir(), 'tsmv-upg-state-'));
    mkdirSync(`${oldState}-tls`);
    await dockerOk(['plugin', 'create', PLUGIN, join(REPO, 'plugin/build-previous')], { timeoutMs: 300_000 });
    await dockerOk(['plugin', 'set', PLUGIN, `state.source=${oldState}`, `tls.source=${oldState}-tls`]);
    await dockerOk([
      'plugin',
      'set',
      PLUGIN,
      `TSMACVLAN_ETCD=${etcd.endpoint(0)}`,
      `TSMACVLAN_ETCD_PREFIX=${etcdPrefix}`,
    ]);
    await dockerOk(['plugin', 'enable', PLUGIN]);
    sites = await createSites(PLUGIN, PREFIX);
    instance = readFileSync(join(oldState, 'instance'), 'utf8').trim();
  }, 900_000);

  afterAll(async () => {
    await removeDockerObjects(PREFIX);
    await removeManagedPlugin(PLUGIN);
    for (const site of sites) await site.server?.stop();
    await destroyAllSwitches();
    await etcd?.stop();
    await registry?.stop();
    if (oldState) for (const dir of [oldState, `${oldState}-tls`]) rmSync(dir, { recursive: true, force: true });
  });

  /** Runs `steps` under the ping monitors; every ping between the first and the last reply must have its reply. */
  async function underPings(steps: () => Promise<void>): Promise<void> {
    const monitors: PingMonitor[] = await monitor(sites);
    let done = 0;
    try {
      await steps();
      done = Date.now();
      await new Promise((r) => setTimeout(r, 500)); // replies after the last step, so the window covers it
    } finally {
      for (const m of monitors) {
        const { sent, lost, lastReplyAt } = await m.stop();
        console.log(`[upgrade] ${m.name} (${m.target}): ${sent} pings, ${lost.length} lost`);
        expect(lost, `${m.name}: pings without a reply`).toEqual([]);
        if (done) expect(lastReplyAt, `${m.name}: replies until after the last step`).toBeGreaterThan(done);
      }
    }
  }

  /** The three commands of docs/install.md (`between`: 0.1.0's one more step), timed; the control plane's gap. */
  async function upgrade(reference: string, between = async () => {}): Promise<Record<string, number>> {
    const t0 = Date.now();
    await dockerOk(['plugin', 'disable', '-f', PLUGIN]);
    const disabled = Date.now();
    await dockerOk(['plugin', 'upgrade', '--grant-all-permissions', '--skip-remote-check', PLUGIN, reference], {
      timeoutMs: 300_000,
    });
    const upgraded = Date.now();
    await between();
    await dockerOk(['plugin', 'enable', PLUGIN]);
    const enabled = Date.now();
    // Back: Docker can reach it again for a container's start on one of its networks.
    await waitFor(
      async () =>
        (
          await docker(['run', '--rm', '--network', sites[0].network, 'tsmacvlan-test/busybox', 'true'], {
            allowFail: true,
          })
        ).code === 0,
      60_000,
      { intervalMs: 50, what: 'a container start on the upgraded plugin' },
    );
    const back = Date.now();
    return { disable: disabled - t0, upgrade: upgraded - disabled, enable: enabled - upgraded, gap: back - t0 };
  }

  it('0.1.0 to this version: disable -f, upgrade, its state copied over once, enable; no ping lost', async () => {
    let times: Record<string, number> = {};
    await underPings(async () => {
      times = await upgrade(`${REPOSITORY}:${VERSION}`, async () => {
        cpSync(oldState, await managedPluginStateDir(PLUGIN), { recursive: true }); // docs/install.md, "From 0.1.0"
      });
    });
    console.log(`[upgrade] 0.1.0 -> ${VERSION}: ${JSON.stringify(times)} (ms)`);
    const config = JSON.parse(await dockerOk(['plugin', 'inspect', '-f', '{{json .Config}}', PLUGIN]));
    expect(config.Description).toMatch(new RegExp(`^tsmacvlan ${VERSION.replace(/\./g, '\\.')}: `));
    const state = await managedPluginStateDir(PLUGIN);
    expect(JSON.parse(readFileSync(join(state, 'format.json'), 'utf8')).writtenBy).toBe(VERSION); // migrated
    expect(readFileSync(join(state, 'instance'), 'utf8').trim()).toBe(instance);
  });

  it('adopts every network, endpoint, address, lease and claim: new containers start beside the old ones', async () => {
    for (const site of sites) {
      const c2 = `${site.network}-c2`;
      created.push(c2);
      await runSleeper(c2, { network: site.network });
      const address = await dockerOk([
        'inspect',
        '-f',
        `{{(index .NetworkSettings.Networks "${site.network}").IPAddress}}`,
        c2,
      ]);
      expect(address, `${site.kind}: a new container must not get the old one's address`).not.toBe(site.address);
      expect(await ping(c2, site.address), `${site.kind}: the new container reaches the old one`).toBe(true);
    }
    const cluster = sites.find((s) => s.kind === 'cluster IPAM')!;
    const claims = await etcdClaims(cluster.sw.subnet);
    expect(claims.get(cluster.address)).toMatchObject([{ owner: instance, kind: 'container' }]);
    const dhcp = sites.find((s) => s.kind === 'DHCP')!;
    expect(dhcp.server!.leases().map((l) => l.address)).toContain(dhcp.address);
  });

  it(`this version to the next: the three commands alone, no ping lost; the control plane's gap`, async () => {
    let times: Record<string, number> = {};
    await underPings(async () => {
      times = await upgrade(`${REPOSITORY}:${NEXT}`);
    });
    console.log(`[upgrade] ${VERSION} -> ${NEXT}: ${JSON.stringify(times)} (ms)`);
    expect(
      (await dockerOk(['plugin', 'inspect', '-f', '{{.PluginReference}}', PLUGIN])).endsWith(`tsmacvlan:${NEXT}`),
    ).toBe(true);
  });

  it('a downgrade onto a state a newer version wrote is refused, naming both versions; the containers keep running', async () => {
    const state = await managedPluginStateDir(PLUGIN);
    const marker = join(state, 'format.json');
    const ours = readFileSync(marker, 'utf8');
    await underPings(async () => {
      await dockerOk(['plugin', 'disable', '-f', PLUGIN]);
      const formats = JSON.parse(ours).formats as Record<string, number>;
      const newer = { formats: { ...formats, 'network-record': formats['network-record'] + 1 }, writtenBy: '9.0.0' };
      writeFileSync(marker, JSON.stringify(newer)); // as tsmacvlan 9.0.0 would have left it
      await dockerOk(
        ['plugin', 'upgrade', '--grant-all-permissions', '--skip-remote-check', PLUGIN, `${REPOSITORY}:${VERSION}`],
        {
          timeoutMs: 300_000,
        },
      );
      const t0 = Date.now();
      const enable = await docker(['plugin', 'enable', '--timeout', '10', PLUGIN], { allowFail: true });
      console.log(`[upgrade] the refused enable: ${Date.now() - t0} ms, ${enable.stderr.trim()}`);
      expect(enable.code).not.toBe(0);
      const log = readFileSync(join(process.env.TSMV_ENGINE_ROOT!, 'dockerd.log'), 'utf8');
      expect(log).toContain(`was written by tsmacvlan 9.0.0, in formats newer than this tsmacvlan (${VERSION})`);
      // Put the state back as this version left it: it starts again and has lost nothing. Docker restarts a plugin
      // that exits while its enable still waits for the socket: no process of it may be left when the state is back.
      await docker(['plugin', 'disable', '-f', PLUGIN], { allowFail: true });
      await waitFor(() => pluginProcesses().length === 0, 60_000, { what: 'the refused plugin to stop for good' });
      writeFileSync(marker, ours);
      await dockerOk(['plugin', 'enable', PLUGIN]);
    });
    expect(await ping(created[0], sites[0].address)).toBe(true);
  });

  it('the old and the new containers are removed, the networks too: nothing is left', async () => {
    const state = await managedPluginStateDir(PLUGIN);
    expect(pluginProcesses(), 'one plugin process, of the last enable').toHaveLength(1);
    await dockerOk(['rm', '-f', ...sites.map((s) => s.container), ...created]);
    for (const site of sites) await dockerOk(['network', 'rm', site.network]);
    await eventually(async () => expect(await pluginLinksOnHost(state)).toEqual([]), 20_000);
    expect(readdirSync(join(state, 'networks'))).toEqual([]);
    expect(readdirSync(join(state, 'endpoints'))).toEqual([]);
    const dhcp = sites.find((s) => s.kind === 'DHCP')!;
    await eventually(() => expect(dhcp.server!.log()).toContain(`DHCPRELEASE(${dhcp.sw.bridge}) ${dhcp.address}`));
    const cluster = sites.find((s) => s.kind === 'cluster IPAM')!;
    await eventually(async () => expect([...(await etcdClaims(cluster.sw.subnet)).keys()]).toEqual([]), 20_000);
  });

  /** The cluster table's addresses of a subnet under this test's prefix, with their claims. */
  async function etcdClaims(subnet: string): Promise<Map<string, unknown[]>> {
    const kv = new EtcdKv({ endpoints: [etcd.endpoint(0)], prefix: etcdPrefix });
    try {
      const prefix = `${etcdPrefix}/v1/subnets/${subnet.replace('/', '_')}/addresses/`;
      const { entries } = await kv.range(prefix);
      return new Map(entries.map((e) => [e.key.slice(prefix.length), decodeClaims(e.value) ?? []]));
    } finally {
      await kv.close();
    }
  }
});

/** The pids of the managed plugin's processes: `serve` from its rootfs, in this (the lab's) network namespace. */
function pluginProcesses(): number[] {
  const netns = readlinkSync('/proc/self/ns/net');
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const cmdline = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
        return readlinkSync(`/proc/${p}/ns/net`) === netns && cmdline.includes('/opt/tsmacvlan/dist/cli/main.js');
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}
