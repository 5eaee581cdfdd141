// A release as users get it: `npm run plugin:push` pushes the plugin and its CLI image to a real registry (Debian's
// docker-registry on the lab's loopback), and `docker plugin install` on an engine that has never seen the plugin
// (started here, nothing prepared) enables it at once; the install prints what README.md's first screen shows, the
// README's one-minute walkthrough then runs as written (its parent `eth1` is a switch of this test), and the CLI
// image runs doctor and status against the installed plugin with `docker run`, as docs/install.md says.
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blocksUnder, logicalLines } from '../helpers/doc-commands';
import { Engine } from '../lab/engine';
import { Registry } from '../lab/registry';
import { DOCKER_BIN, run, type RunResult } from './docker';
import { createSwitch, destroyAllSwitches } from './topology';

const REPO = join(__dirname, '../..');
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const README = readFileSync(join(REPO, 'README.md'), 'utf8');
const PORT = 5000; // the lab's own loopback: nothing else listens there
const REF = `127.0.0.1:${PORT}/tsmacvlan:${VERSION}`;
const CLI_REF = `127.0.0.1:${PORT}/tsmacvlan-cli:${VERSION}`;

describe('a release pushed to a registry and installed on a clean engine', () => {
  let registry: Registry;
  let fresh: Engine; // an engine of the lab that has never seen the plugin
  let bin: string; // `docker` for the docs' commands: the lab's client, talking to `fresh`
  const onFresh = (args: string[], opts: { input?: string; allowFail?: boolean } = {}): Promise<RunResult> =>
    run(DOCKER_BIN, ['-H', fresh.host, ...args], { timeoutMs: 300_000, ...opts });
  /** A command of the docs, as written, through bash, with `docker` the lab's client of `fresh`. */
  const asWritten = (command: string) =>
    run('bash', ['-c', command], {
      allowFail: true,
      timeoutMs: 120_000,
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, DOCKER_HOST: fresh.host },
    });

  beforeAll(async () => {
    registry = await Registry.start(PORT);
    fresh = await Engine.start(join(process.env.TSMV_LAB_DIR!, 'fresh'), process.env.TSMV_LAB_NETNS!, labBinDir());
    bin = mkdtempSync(join(tmpdir(), 'tsmv-bin-'));
    writeFileSync(join(bin, 'docker'), `#!/bin/sh\nexec ${DOCKER_BIN} "$@"\n`);
    chmodSync(join(bin, 'docker'), 0o755);
    // The docs' `busybox`: the lab's test image (busybox-static), imported without a registry.
    await run('bash', [join(REPO, 'test/lab/test-image.sh')], {
      env: { ...process.env, DOCKER: DOCKER_BIN, DOCKER_HOST: fresh.host, TSMV_TEST_IMAGE: 'busybox:latest' },
    });
  }, 300_000);

  afterAll(async () => {
    await destroyAllSwitches();
    await fresh?.remove();
    await registry?.stop();
    if (bin) rmSync(bin, { recursive: true, force: true });
  });

  it('npm run plugin:push pushes the plugin and its CLI image, tagged with the version of package.json', async () => {
    const wrongTag = await run('npm', ['run', '--silent', 'plugin:push', '--', `127.0.0.1:${PORT}/tsmacvlan:9.9.9`], {
      allowFail: true,
      env: { ...process.env, DOCKER: DOCKER_BIN },
    });
    expect(wrongTag.code).toBe(2);
    expect(wrongTag.stderr).toContain(`is not the version in package.json (${VERSION})`);

    const t0 = Date.now();
    const pushed = await run('npm', ['run', '--silent', 'plugin:push', '--', '--reuse', REF.replace(/:[^:]+$/, '')], {
      timeoutMs: 900_000,
      env: { ...process.env, DOCKER: DOCKER_BIN, TSMACVLAN_BUILD_PREFIX: 'tsmv-pkg-' }, // provision.sh's build
    });
    console.log(`[registry] plugin:push in ${Date.now() - t0} ms: ${pushed.stdout.trim().split('\n').pop()}`);
    expect(await registry.tags('tsmacvlan')).toEqual([VERSION]);
    expect(await registry.tags('tsmacvlan-cli')).toEqual([VERSION]);
    // The lab engine keeps no plugin of the push (plugin/build keeps the build).
    expect((await run(DOCKER_BIN, ['plugin', 'ls', '-q', '--filter', 'enabled=false'])).stdout).not.toContain(REF);
  });

  it("installs on an engine that has never seen it, enabled at once, printing what README.md's first screen shows", async () => {
    expect(existsSync(join(fresh.root, 'data', 'plugins')) ? pluginDirs(fresh) : []).toEqual([]);
    const [block] = blocksUnder('README.md', README, 'Install').filter((b) => b.lang === 'console');
    const [command] = logicalLines(block);
    const t0 = Date.now();
    const installed = await asWrittenWithInput(command.text.replace(/^docker /, ''), 'y\n');
    console.log(`[registry] docker plugin install: ${Date.now() - t0} ms`);
    expect(installed.code).toBe(0);
    // Without a terminal the answer is not echoed: the next output follows the question on its line.
    const printed = installed.stdout.replace('[y/N] ', '[y/N]\n').split('\n');
    const shown = block.text
      .split('\n')
      .filter((l) => !/^[#$] /.test(l))
      .map((l) => l.replace(/\[y\/N\] y$/, '[y/N]'));
    for (const line of shown) {
      const pattern = new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/…/g, '.*')}$`);
      expect(printed, `the README's line '${line}'`).toContainEqual(expect.stringMatching(pattern));
    }
    expect(
      (await onFresh(['plugin', 'inspect', '-f', '{{.Enabled}} {{.Name}}', 'tsmacvlan:latest'])).stdout.trim(),
    ).toBe('true tsmacvlan:latest');
    expect(pluginDirs(fresh)).toHaveLength(1);
  });

  it("runs README.md's one-minute walkthrough as written: a network on eth1, a container's own MAC and address", async () => {
    await createSwitch({ subnetPrefix: '192.168.1', parentName: 'eth1' }); // destroyed by afterAll
    const commands = blocksUnder('README.md', README, 'One minute')
      .filter((b) => b.lang === 'sh')
      .flatMap((b) => logicalLines(b).map((l) => l.text));
    expect(commands.length).toBeGreaterThanOrEqual(5);
    const outputs: string[] = [];
    for (const command of commands) {
      const res = await asWritten(command);
      expect(res.code, `${command}\n${res.stderr}`).toBe(0);
      outputs.push(res.stdout);
    }
    // `ip a` in the container: what the README shows, up to the interface index and the MAC.
    const ipA = outputs[commands.findIndex((c) => c.endsWith('busybox ip a'))];
    const [shown] = blocksUnder('README.md', README, 'One minute').filter((b) => b.lang === 'text');
    // lo's IPv6 address depends on the engine's defaults; trailing blanks on busybox's whim.
    const generalize = (text: string) =>
      text
        .trim()
        .replace(/[ \t]+$/gm, '')
        .replace(/^ +inet6 ::1\/128 .*\n.*\n/m, '')
        .replace(/^\d+: /gm, 'N: ')
        .replace(/@if\d+/g, '@ifN')
        .replace(/link\/ether \S+/g, 'link/ether MAC');
    expect(generalize(ipA)).toBe(generalize(shown.text));
    expect(ipA).toMatch(/link\/ether 02:42:c0:a8:01:c0 /); // the MAC the plugin gives 192.168.1.192
  });

  it('the CLI image runs doctor and status against the installed plugin (docs/install.md, no Node on the host)', async () => {
    const net = 'tsmv-reg-cli';
    await onFresh(['network', 'create', '-d', 'tsmacvlan:latest', '--subnet', '10.232.61.0/24', net]);
    try {
      const id = (await onFresh(['plugin', 'inspect', '-f', '{{.Id}}', 'tsmacvlan:latest'])).stdout.trim();
      const socketDir = dirname(dirname(fresh.managedPluginSocket(id, 'tsmacvlan.sock')));
      // docs/install.md's command, with the directories of this engine where a default engine has them.
      const cli = (args: string[]) =>
        onFresh(
          ['run', '--rm', '--network', 'host', '--cap-add', 'NET_ADMIN']
            .concat(['-v', `${socketDir}:/run/docker/plugins`])
            .concat(['-v', `${join(fresh.root, 'data', 'plugins')}:/var/lib/docker/plugins`, CLI_REF, ...args])
            .concat(['--socket', `/run/docker/plugins/${id}/tsmacvlan.sock`])
            .concat(['--state-dir', `/var/lib/docker/plugins/${id}/propagated-mount`]),
          { allowFail: true },
        );
      const doctor = await cli(['doctor']);
      expect(doctor.code, doctor.stdout + doctor.stderr).toBe(0);
      // No CAP_SYS_ADMIN (least privilege): no throwaway namespace for the kernel test, which WARNs saying why.
      expect(doctor.stdout).toMatch(/WARN +kernel\.macvlan +could not test macvlan support: this process may not make/);
      expect(doctor.stdout).toMatch(/WARN +privileges +running as uid 0 with CAP_NET_ADMIN but without CAP_SYS_ADMIN/);
      expect(doctor.stdout).toMatch(/OK +socket/);
      const status = await cli(['status', '--json']);
      expect(status.code, status.stderr).toBe(0);
      const networkId = (await onFresh(['network', 'inspect', '-f', '{{.Id}}', net])).stdout.trim();
      expect(JSON.stringify(JSON.parse(status.stdout))).toContain(networkId);
    } finally {
      await onFresh(['network', 'rm', net], { allowFail: true });
    }
  });

  async function asWrittenWithInput(args: string, input: string): Promise<RunResult> {
    return run('bash', ['-c', `docker ${args}`], {
      input,
      allowFail: true,
      timeoutMs: 300_000,
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, DOCKER_HOST: fresh.host },
    });
  }
});

/** The plugin directories of an engine (one per installed plugin). */
function pluginDirs(engine: Engine): string[] {
  return readdirSync(join(engine.root, 'data', 'plugins')).filter((d) => /^[0-9a-f]{64}$/.test(d));
}

/** The binaries the lab's engine was started from (test/lab/engine.sh keeps them in its engine.env). */
function labBinDir(): string {
  const env = readFileSync(join(process.env.TSMV_ENGINE_ROOT!, 'engine.env'), 'utf8');
  const bin = /^BINDIR=(.*)$/m.exec(env)?.[1];
  if (!bin) throw new Error(`no BINDIR in ${process.env.TSMV_ENGINE_ROOT}/engine.env`);
  return bin;
}
