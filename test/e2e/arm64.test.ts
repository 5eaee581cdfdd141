// The arm64 managed plugin (Debian's arm64 Node, the native parts cross-compiled), pushed to a registry on the lab's
// loopback with `npm run plugin:push -- --arch arm64` (tag VERSION-arm64) and installed from it, run by the lab's
// amd64 engine under emulation: qemu's user-mode emulator registered with binfmt_misc under this run's
// own name, with the F flag, so the kernel runs the plugin's aarch64 node in the plugin's own rootfs
// (test/lab/qemu-binfmt.sh; removed again in afterAll). Containers are the lab's amd64 busybox: only the plugin is
// arm64. A network on a veth parent with the plugin's IPAM, a DHCP network against dnsmasq (the packet-socket addon),
// a restart of the plugin with containers running, and everything removed. Prints the start-to-socket time and one
// endpoint's life (bench.md compares them with amd64's).
//
// Emulation makes the plugin several times slower, not different: the timeouts below are generous, never asserted.
// One engine is enough (vitest.config.ts runs this file in the 28.5 run only): the engines are amd64 either way.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { post } from '../helpers/serve';
import { Engine } from '../lab/engine';
import { Registry } from '../lab/registry';
import { runId } from '../lab/lab';
import {
  containerExec,
  DOCKER_BIN,
  docker,
  dockerOk,
  eventually,
  ping,
  removeDockerObjects,
  run,
  runSleeper,
} from './docker';
import { DhcpServer } from './dnsmasq';
import { pluginLinksOnHost } from './plugin-daemon';
import { managedPluginStateDir, removeManagedPlugin } from './managed-plugin';
import { createSwitch, destroyAllSwitches, type Switch } from './topology';

const PLUGIN = 'tsmv-arm64-tsmacvlan:latest';
const PREFIX = 'tsmv-a64-';
const REPO = join(__dirname, '../..');
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const PORT = 5002; // the lab's own loopback (registry.test.ts takes 5000)
const REF = `127.0.0.1:${PORT}/tsmacvlan`;
const QEMU = join(REPO, '.cache/qemu/qemu-aarch64');
const BINFMT = join(REPO, 'test/lab/qemu-binfmt.sh');
const ENABLE_TIMEOUT_S = 600; // docker plugin enable waits this long for the emulated plugin's socket (default 30)

/**
 * docker plugin enable: Docker waits for a managed plugin's socket about 12 s whatever --timeout says (then it stops
 * the plugin), and the emulated node alone can take most of that on a busy machine before the plugin binds its socket
 * (src/cli/early-socket.ts): up to 3 tries, each a new start. --timeout bounds Docker's requests, which wait for the
 * emulated server. Returns the milliseconds of the try that worked and how many it took.
 */
async function enable(): Promise<{ ms: number; tries: number }> {
  for (let tries = 1; ; tries++) {
    const t0 = Date.now();
    const res = await docker(['plugin', 'enable', '--timeout', String(ENABLE_TIMEOUT_S), PLUGIN], {
      timeoutMs: (ENABLE_TIMEOUT_S + 60) * 1000,
      allowFail: true,
    });
    if (res.code === 0) return { ms: Date.now() - t0, tries };
    if (tries === 3 || !/connect: no such file or directory/.test(res.stderr))
      throw new Error(`docker plugin enable ${PLUGIN} failed (try ${tries}): ${res.stderr.trim()}`);
  }
}

describe(`the arm64 plugin ${PLUGIN} under emulation`, () => {
  const binfmtName = `${runId()}-aarch64`;
  let registered = false;
  let registry: Registry | undefined;
  let stateSource: string; // the plugin's propagated mount, under the lab engine's data root
  let sw: Switch;
  let lan: Switch;
  const server = new DhcpServer();
  const net = `${PREFIX}net`;
  const dhcpNet = `${PREFIX}dhcp`;
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((x) => `${PREFIX}${x}`) as [string, string, string, string];

  const ipOf = (container: string, network: string) =>
    dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, container]);

  beforeAll(async () => {
    await removeDockerObjects(PREFIX); // leftovers of a crashed run
    if (!existsSync(QEMU))
      throw new Error(`${QEMU} is missing: bash test/e2e/provision.sh fetches it (plugin/arch/fetch.sh qemu arm64)`);
    await run('bash', [BINFMT, 'register', binfmtName, QEMU]);
    registered = true;
    registry = await Registry.start(PORT);
    const t0 = Date.now();
    const pushed = await run(
      'npm',
      ['run', '--silent', 'plugin:push', '--', '--reuse', '--no-cli', '--arch', 'arm64', REF],
      {
        timeoutMs: 900_000,
        env: { ...process.env, DOCKER: DOCKER_BIN, TSMACVLAN_BUILD_PREFIX: 'tsmv-pkg-' }, // provision.sh's build
      },
    );
    console.log(`[arm64] plugin:push in ${Date.now() - t0} ms: ${pushed.stdout.trim().split('\n').pop()}`);
    expect(await registry.tags('tsmacvlan')).toEqual([`${VERSION}-arm64`]);
    // Installed disabled: the test enables it, with the retries an emulated start may need.
    await dockerOk([
      'plugin',
      'install',
      '--grant-all-permissions',
      '--disable',
      '--alias',
      PLUGIN,
      `${REF}:${VERSION}-arm64`,
    ]);
    stateSource = await managedPluginStateDir(PLUGIN);
    sw = await createSwitch({ subnetPrefix: '10.232.40' });
    lan = await createSwitch({ subnetPrefix: '10.232.41' });
    await server.start(lan, { range: { first: 100, last: 120 } });
  }, 900_000);

  afterAll(async () => {
    await removeDockerObjects(PREFIX);
    await removeManagedPlugin(PLUGIN);
    await server.stop();
    await destroyAllSwitches();
    if (registered) await run('bash', [BINFMT, 'unregister', binfmtName], { allowFail: true });
    await registry?.stop();
  }, 300_000);

  it("is arm64's: file says aarch64 for its node and both native parts", async () => {
    const id = await dockerOk(['plugin', 'inspect', '-f', '{{.Id}}', PLUGIN]);
    const rootfs = join(Engine.ofLab().root, 'data/plugins', id, 'rootfs');
    for (const binary of [
      'usr/local/bin/node',
      'opt/tsmacvlan/node_modules/netlink/build/Release/netlink_binding.node',
      'opt/tsmacvlan/build/packet_socket.node',
    ]) {
      const described = (await run('file', ['-b', join(rootfs, binary)])).stdout;
      expect(described, binary).toContain('ARM aarch64');
    }
  });

  it('enables under qemu: its socket answers and Docker reports it enabled', async () => {
    const id = await dockerOk(['plugin', 'inspect', '-f', '{{.Id}}', PLUGIN]);
    const socket = () => Engine.ofLab().managedPluginSocket(id, 'tsmacvlan.sock');
    const enabled = await enable();
    const activate = await post(socket(), 'Plugin.Activate');
    expect(activate.json.Implements).toEqual(expect.arrayContaining(['NetworkDriver', 'IpamDriver']));
    expect(await dockerOk(['plugin', 'inspect', '-f', '{{.Enabled}}', PLUGIN])).toBe('true');
    console.log(`[arm64] emulated start: 'docker plugin enable' took ${enabled.ms} ms (try ${enabled.tries})`);
  });

  it("a network on a veth parent with the plugin's IPAM: two containers reach each other and the switch", async () => {
    await dockerOk(
      ['network', 'create', '-d', PLUGIN, '--ipam-driver', PLUGIN, '-o', `parent=${sw.parent}`].concat([
        '--subnet',
        sw.subnet,
        '--gateway',
        sw.bridgeIp,
        '--ip-range',
        '10.232.40.128/25',
        net,
      ]),
    );
    const t0 = Date.now();
    await runSleeper(a, { network: net });
    const firstMs = Date.now() - t0;
    await runSleeper(b, { network: net, ip: '10.232.40.50' });
    const ipA = await ipOf(a, net);
    expect(Number(ipA.split('.')[3])).toBeGreaterThanOrEqual(128); // the plugin's IPAM: in --ip-range
    expect(await ping(a, '10.232.40.50')).toBe(true);
    expect(await ping(b, ipA)).toBe(true);
    expect(await ping(a, sw.bridgeIp)).toBe(true);
    expect(readdirSync(join(stateSource, 'endpoints'))).toHaveLength(2);
    console.log(`[arm64] emulated: the first container on the network ran after ${firstMs} ms`);
  });

  it('a DHCP network: the container gets its lease from dnsmasq through the packet-socket addon', async () => {
    const mac = '02:42:0a:e8:29:2a';
    await dockerOk(
      ['network', 'create', '-d', PLUGIN, '--ipam-driver', 'null', '-o', `parent=${lan.parent}`].concat([
        '-o',
        'dhcp=true',
        dhcpNet,
      ]),
    );
    await runSleeper(d, { network: dhcpNet, extraArgs: ['--mac-address', mac] });
    const address = await ipOf(d, dhcpNet);
    expect(address).toMatch(/^10\.232\.41\.1([01]\d|20)$/);
    expect(server.leases()).toContainEqual({ mac, address });
    expect(await ping(d, lan.bridgeIp)).toBe(true);
  });

  it('restarts with containers running: they keep their traffic, and a new container joins', async () => {
    await dockerOk(['plugin', 'disable', '-f', PLUGIN]);
    expect(await ping(a, '10.232.40.50')).toBe(true); // the kernel's data path: no plugin needed
    const t0 = Date.now();
    const enabled = await enable();
    await runSleeper(c, { network: net });
    console.log(
      `[arm64] emulated re-enable (try ${enabled.tries}): a new container joined ${Date.now() - t0} ms after`,
    );
    const ipC = await ipOf(c, net);
    expect(ipC).not.toBe(await ipOf(a, net)); // the restarted IPAM knows a's address
    expect(await ping(c, '10.232.40.50')).toBe(true);
    expect(await ping(a, ipC)).toBe(true);
    expect(await ping(d, lan.bridgeIp)).toBe(true);
    expect((await containerExec(d, ['ip', 'link'])).stdout).toContain('eth0');
  });

  it('removing the containers and networks leaves no link and no state; the plugin then disables and is removed', async () => {
    await dockerOk(['rm', '-f', a, b, c, d]);
    await dockerOk(['network', 'rm', net, dhcpNet]);
    await eventually(async () => expect(await pluginLinksOnHost(stateSource)).toEqual([]), 30_000);
    expect(readdirSync(join(stateSource, 'networks'))).toEqual([]);
    expect(readdirSync(join(stateSource, 'endpoints'))).toEqual([]);
    await dockerOk(['plugin', 'disable', PLUGIN]); // no -f: nothing uses it any more
    await dockerOk(['plugin', 'rm', PLUGIN]);
    expect((await docker(['plugin', 'inspect', PLUGIN], { allowFail: true })).code).not.toBe(0);
  });
});
