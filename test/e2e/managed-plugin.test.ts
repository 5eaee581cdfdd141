// tsmacvlan as a managed Docker plugin, built from this working tree by plugin/create.sh (Dockerfile -> exported
// rootfs + config.json -> `docker plugin create`): installed, enabled, used by containers, disabled and enabled
// again under them, a DHCP lease lost under it (the container's interface goes), and removed. Prints the rootfs size,
// build time and start-to-ready time.
//
// The plugin is named with the e2e prefix (tsmv-pkg-tsmacvlan:latest, or $TSMV_PLUGIN_NAME) so that a real
// tsmacvlan:latest on the machine is never touched. swarm.test.ts installs the same plugin: `create.sh --reuse`
// builds once and only re-creates the plugin from plugin/build when the inputs have not changed (test/e2e/managed-plugin.ts).
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { post } from '../helpers/serve';
import { freePort, sample, scrape } from '../helpers/prometheus';
import { Engine } from '../lab/engine';
import { containerExec, dockerOk, docker, eventually, ping, removeDockerObjects, runSleeper, waitFor } from './docker';
import { DhcpServer } from './dnsmasq';
import { createSwitch, destroyAllSwitches, type Switch } from './topology';
import { pluginLinksOnHost } from './plugin-daemon';
import { createManagedPlugin, managedPluginStateDir, removeManagedPlugin, tsmacvlan } from './managed-plugin';

const PLUGIN = process.env.TSMV_PLUGIN_NAME ?? 'tsmv-pkg-tsmacvlan:latest';
const PREFIX = 'tsmv-pkg-mp-';
const REPO = join(__dirname, '../..');
const VERSION = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version as string;

describe(`the managed plugin ${PLUGIN}`, () => {
  let stateSource: string; // the plugin's propagated mount, under the lab engine's data root
  let sw: Switch;
  let net: string;
  /** Where the plugin serves its metrics: the host network's loopback, which is the lab's. */
  let metricsAt: string;
  const a = `${PREFIX}a`;
  const b = `${PREFIX}b`;
  const c = `${PREFIX}c`;

  beforeAll(async () => {
    await removeDockerObjects(PREFIX); // leftovers of a crashed run
    const built = await createManagedPlugin(PLUGIN);
    stateSource = await managedPluginStateDir(PLUGIN);
    console.log(`[managed-plugin] ${built.summary} (create.sh ${(built.ms / 1000).toFixed(1)} s)`);
    sw = await createSwitch({ subnetPrefix: '10.232.20' });
  }, 900_000);

  afterAll(async () => {
    await removeDockerObjects(PREFIX);
    await removeManagedPlugin(PLUGIN);
    await destroyAllSwitches();
  });

  it('is installed as built: both interfaces, host network, CAP_NET_ADMIN and CAP_NET_RAW only, no host path, the state in its propagated mount', async () => {
    const config = JSON.parse(await dockerOk(['plugin', 'inspect', '-f', '{{json .Config}}', PLUGIN]));
    expect(config.Interface.Types).toEqual(['docker.networkdriver/1.0', 'docker.ipamdriver/1.0']);
    expect(config.Interface.Socket).toBe('tsmacvlan.sock');
    expect(config.Network.Type).toBe('host');
    expect(config.Linux.Capabilities).toEqual(['CAP_NET_ADMIN', 'CAP_NET_RAW']); // NET_RAW: DHCP's packet socket
    // No host directory to prepare or grant: the state is the mount Docker itself makes for the plugin.
    expect(config.Mounts ?? []).toEqual([]);
    expect(config.PropagatedMount).toBe('/var/lib/tsmacvlan');
    expect(config.Description).toMatch(/^tsmacvlan \d+\.\d+\.\d+: /);
    const settings = JSON.parse(await dockerOk(['plugin', 'inspect', '-f', '{{json .Settings}}', PLUGIN]));
    expect(settings.Env).toContain('LOG_LEVEL=info');
    // The cluster IPAM's settings, empty (addresses stay on this host) until `docker plugin set`.
    // And the metrics' address, empty (no metrics).
    for (const name of [
      'TSMACVLAN_ETCD',
      'TSMACVLAN_ETCD_PREFIX',
      'TSMACVLAN_ETCD_CA',
      'TSMACVLAN_ETCD_CERT',
      'TSMACVLAN_METRICS_ADDRESS',
    ])
      expect(settings.Env).toContain(`${name}=`);
    expect(await dockerOk(['plugin', 'inspect', '-f', '{{.Enabled}}', PLUGIN])).toBe('false');
  });

  it('enables: its socket answers, Docker reports it enabled and a network can be created', async () => {
    const id = await dockerOk(['plugin', 'inspect', '-f', '{{.Id}}', PLUGIN]);
    const socketOf = () => Engine.ofLab().managedPluginSocket(id, 'tsmacvlan.sock'); // where is known once it runs
    // Metrics on, as docs/metrics.md says: `docker plugin set` while disabled.
    metricsAt = `127.0.0.1:${await freePort()}`;
    await dockerOk(['plugin', 'set', PLUGIN, `TSMACVLAN_METRICS_ADDRESS=${metricsAt}`]);
    const t0 = Date.now();
    let socketMs = -1;
    // Poll the plugin's own socket while `docker plugin enable` runs: when does the process answer?
    const answered = waitFor(
      async () => existsSync(socketOf()) && (await post(socketOf(), 'Plugin.Activate')).status === 200,
      30_000,
      { intervalMs: 10, what: 'the plugin socket' },
    ).then(() => (socketMs = Date.now() - t0));
    await dockerOk(['plugin', 'enable', PLUGIN]);
    const enableMs = Date.now() - t0;
    await answered;
    expect(await dockerOk(['plugin', 'inspect', '-f', '{{.Enabled}}', PLUGIN])).toBe('true');
    const activate = await post(socketOf(), 'Plugin.Activate');
    expect(activate.json.Implements).toEqual(expect.arrayContaining(['NetworkDriver', 'IpamDriver']));

    net = `${PREFIX}net`;
    await dockerOk([
      'network',
      'create',
      '-d',
      PLUGIN,
      '-o',
      `parent=${sw.parent}`,
      '--subnet',
      sw.subnet,
      '--gateway',
      sw.bridgeIp,
      '--ip-range',
      '10.232.20.128/25',
      net,
    ]);
    const readyMs = Date.now() - t0;
    console.log(
      `[managed-plugin] start-to-ready: socket answers after ${socketMs} ms, 'docker plugin enable' returns after ${enableMs} ms, first network created after ${readyMs} ms`,
    );
    expect(await dockerOk(['network', 'inspect', '-f', '{{.Driver}}', net])).toBe(PLUGIN);
  });

  it('doctor and status with no flags find it: its socket under /run/docker/plugins/<id>, its propagated mount as the state dir', async () => {
    const id = await dockerOk(['plugin', 'inspect', '-f', '{{.Id}}', PLUGIN]);
    const socket = join('/run/docker/plugins', id, 'tsmacvlan.sock');
    expect(Engine.ofLab().managedPluginSocket(id, 'tsmacvlan.sock')).toBe(socket); // where this engine put it
    const doctor = await tsmacvlan('doctor', '--json');
    const checks = JSON.parse(doctor.stdout).checks as { id: string; status: string; message: string }[];
    const check = (name: string) => checks.find((c) => c.id === name);
    expect(check('plugin')).toEqual({
      id: 'plugin',
      status: 'OK',
      message: `the only one in ${Engine.ofLab().dataRoot}/plugins: the managed plugin ${PLUGIN} (id ${id.slice(0, 12)}, enabled, state ${stateSource})`,
    });
    expect(check('socket')).toMatchObject({ status: 'OK', message: expect.stringContaining(socket) });
    expect(check('version')).toMatchObject({
      status: 'OK',
      message: `the plugin runs tsmacvlan ${VERSION}, as this CLI`,
    });
    expect(check('state')).toMatchObject({
      status: 'OK',
      message: expect.stringContaining(`${stateSource}: 1 network(s)`),
    });
    const status = JSON.parse((await tsmacvlan('status', '--json')).stdout);
    expect(status).toMatchObject({
      tsmacvlanVersion: VERSION,
      stateDir: stateSource,
      driver: PLUGIN,
      plugin: { name: PLUGIN, id, enabled: true },
      networks: [expect.objectContaining({ parent: sw.parent })],
    });
  });

  it("takes Docker's --opt com.docker.network.driver.mtu as the network's MTU, and refuses an unknown --ipam-opt by name", async () => {
    const mtuNet = `${PREFIX}mtu`;
    const m = `${PREFIX}m`;
    try {
      await dockerOk(
        ['network', 'create', '-d', PLUGIN, '-o', `parent=${sw.parent}`].concat([
          '--opt',
          'com.docker.network.driver.mtu=1400',
          '--subnet',
          '10.232.23.0/24',
          mtuNet,
        ]),
      );
      await runSleeper(m, { network: mtuNet });
      expect((await containerExec(m, ['cat', '/sys/class/net/eth0/mtu'])).stdout.trim()).toBe('1400');
    } finally {
      await docker(['rm', '-f', m], { allowFail: true });
      await docker(['network', 'rm', mtuNet], { allowFail: true });
    }
    const refused = await docker(
      ['network', 'create', '-d', PLUGIN, '--ipam-driver', PLUGIN, '--ipam-opt', 'sope=host'].concat([
        '-o',
        `parent=${sw.parent}`,
        '--subnet',
        '10.232.24.0/24',
        `${PREFIX}ipamopt`,
      ]),
      { allowFail: true },
    );
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("unknown --ipam-opt 'sope'; tsmacvlan's IPAM accepts: scope");
    expect(await docker(['network', 'inspect', `${PREFIX}ipamopt`], { allowFail: true })).toMatchObject({ code: 1 });
  });

  it('containers on a parent reach each other and the switch; the state is written to the propagated mount', async () => {
    const joins = (text: string) =>
      sample(text, 'tsmacvlan_request_duration_seconds_count{method="NetworkDriver.Join",outcome="ok"}') ?? 0;
    const joinsBefore = joins(await scrape(metricsAt)); // the MTU test's container joined too
    await runSleeper(a, { network: net });
    await runSleeper(b, { network: net, ip: '10.232.20.50' });
    const ipA = await dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, a]);
    expect(await ping(a, '10.232.20.50')).toBe(true);
    expect(await ping(b, ipA)).toBe(true);
    expect(await ping(a, sw.bridgeIp)).toBe(true);
    expect(readdirSync(join(stateSource, 'networks'))).toHaveLength(1);
    expect(readdirSync(join(stateSource, 'endpoints'))).toHaveLength(2);
    const metrics = await scrape(metricsAt);
    expect(sample(metrics, 'tsmacvlan_networks')).toBe(1);
    expect(joins(metrics) - joinsBefore).toBe(2);
  });

  it('an internal network (a parent of its own) works under CAP_NET_ADMIN alone', async () => {
    const internal = `${PREFIX}internal`;
    await dockerOk(['network', 'create', '-d', PLUGIN, '--subnet', '10.232.21.0/24', internal]);
    await dockerOk(['network', 'connect', '--ip', '10.232.21.10', internal, a]);
    await dockerOk(['network', 'connect', '--ip', '10.232.21.11', internal, b]);
    expect(await ping(a, '10.232.21.11')).toBe(true);
    await dockerOk(['network', 'disconnect', internal, a]);
    await dockerOk(['network', 'disconnect', internal, b]);
    await dockerOk(['network', 'rm', internal]);
  });

  it('disable -f and enable keep the network: old containers still ping, a new one joins', async () => {
    await dockerOk(['plugin', 'disable', '-f', PLUGIN]);
    expect(await dockerOk(['plugin', 'inspect', '-f', '{{.Enabled}}', PLUGIN])).toBe('false');
    expect(await ping(a, '10.232.20.50')).toBe(true); // the data path is the kernel's: it does not need the plugin
    const t0 = Date.now();
    await dockerOk(['plugin', 'enable', PLUGIN]);
    const enableMs = Date.now() - t0;
    await runSleeper(c, { network: net });
    console.log(
      `[managed-plugin] re-enable: ${enableMs} ms; a new container joined ${Date.now() - t0} ms after the enable began`,
    );
    const ipC = await dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, c]);
    expect(ipC).toMatch(/^10\.232\.20\.\d+$/);
    expect(await ping(c, '10.232.20.50')).toBe(true);
    expect(await ping(a, ipC)).toBe(true);
    expect(await ping(b, sw.bridgeIp)).toBe(true);
    expect(readdirSync(join(stateSource, 'endpoints'))).toHaveLength(3);
  });

  // A lease lost while the plugin runs managed: its mount namespace has none of Docker's netns files, so the interface
  // is found by the id the kernel gave the container's namespace when Docker moved the link there.
  it("DHCP: a lease the server takes back (NAK) removes the container's interface", async () => {
    const lan = await createSwitch({ subnetPrefix: '10.232.22' });
    const server = new DhcpServer();
    const dhcpNet = `${PREFIX}dhcp`;
    const d = `${PREFIX}d`;
    const mac = '02:42:0a:e8:16:2a';
    try {
      await server.start(lan, { range: { first: 100, last: 120 } });
      await dockerOk(
        ['network', 'create', '-d', PLUGIN, '--ipam-driver', 'null'].concat([
          '-o',
          `parent=${lan.parent}`,
          '-o',
          'dhcp=true',
          dhcpNet,
        ]),
      );
      await runSleeper(d, { network: dhcpNet, extraArgs: ['--mac-address', mac] });
      const inspect = `{{with index .NetworkSettings.Networks "${dhcpNet}"}}{{.IPAddress}} {{.EndpointID}}{{end}}`;
      const [address, endpointId] = (await dockerOk(['inspect', '-f', inspect, d])).split(' ') as [string, string];
      expect(server.leases()).toContainEqual({ mac, address });
      expect((await containerExec(d, ['ip', 'link'])).stdout).toContain('eth0');

      // As if T1 passed while the plugin was disabled, and the server meanwhile gave the MAC another address.
      await dockerOk(['plugin', 'disable', '-f', PLUGIN]);
      const recordFile = join(stateSource, 'endpoints', `${endpointId}.json`);
      const record = JSON.parse(readFileSync(recordFile, 'utf8'));
      writeFileSync(recordFile, JSON.stringify({ ...record, lease: { ...record.lease, renewAt: Date.now() - 1000 } }));
      await server.reserve({ mac, address: address === '10.232.22.42' ? '10.232.22.43' : '10.232.22.42' });
      await dockerOk(['plugin', 'enable', PLUGIN]);

      await eventually(() => expect(server.log()).toContain(`DHCPNAK(${lan.bridge}) ${address} ${mac}`), 20_000);
      await eventually(
        async () => expect((await containerExec(d, ['ip', 'link'])).stdout).not.toContain('eth0'),
        20_000,
      );
      expect(JSON.parse(readFileSync(recordFile, 'utf8')).leaseLost).toMatchObject({ address, reason: 'nak' });
      const metrics = await scrape(metricsAt);
      expect(sample(metrics, 'tsmacvlan_dhcp_failures_total{reason="nak"}')).toBe(1);
      expect(sample(metrics, 'tsmacvlan_dhcp_leases{state="lost"}')).toBe(1);
    } finally {
      await docker(['rm', '-f', d], { allowFail: true });
      await docker(['network', 'rm', dhcpNet], { allowFail: true });
      await server.stop();
      await lan.destroy();
    }
  });

  it('removing the containers and the network leaves no link and no state; the plugin then disables and removes', async () => {
    const endpoints = await Promise.all(
      [a, b, c].map((x) => dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").EndpointID}}`, x])),
    );
    await dockerOk(['rm', '-f', a, b, c]);
    await dockerOk(['network', 'rm', net]);
    await eventually(async () => {
      const left = await pluginLinksOnHost(stateSource);
      for (const ep of endpoints) expect(left).not.toContain(`tsmve${ep.slice(0, 10)}`);
    });
    expect(readdirSync(join(stateSource, 'networks'))).toEqual([]);
    expect(readdirSync(join(stateSource, 'endpoints'))).toEqual([]);
    await dockerOk(['plugin', 'disable', PLUGIN]); // no -f: nothing uses it any more
    await dockerOk(['plugin', 'rm', PLUGIN]);
    expect((await docker(['plugin', 'inspect', PLUGIN], { allowFail: true })).code).not.toBe(0);
  });
});
