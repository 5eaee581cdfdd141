// Crash recovery with the real Docker Engine: the plugin is killed (SIGKILL, by TSMACVLAN_CRASH_AT) in the middle of
// a `docker run --ip X`, after a change is saved on disk but before Docker is answered, and started again at once.
// Docker 20.10 retries the cut request with an empty body, which fails, so that `docker run` fails; what the plugin
// saved but never answered must be rolled back at its restart, so the user's own re-run of the same command (same
// static address) succeeds, the container reaches another one, and once everything is removed nothing is left: no
// link on the host, no IPAM journal for the subnet, no network or endpoint record.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawnDaemon, waitForSocket, type Daemon } from '../helpers/serve';
import {
  docker,
  dockerOk,
  eventually,
  ping,
  removeDockerObjects,
  TEST_IMAGE,
  uniqueName,
  type RunResult,
} from './docker';
import { DRIVER, pluginLinksOnHost, SOCKET } from './plugin-daemon';
import { createSwitch, destroyAllSwitches } from './topology';

const PREFIX = 'tsmv-crash-';

/** The e2e plugin daemon (same driver name and socket as plugin-daemon.ts), restartable with a crash point. */
class CrashableDaemon {
  readonly stateDir = mkdtempSync(join(tmpdir(), 'tsmv-e2e-crash-state-'));
  daemon: Daemon | undefined;
  /** The crash point the running daemon was started with. */
  crashAt: string | undefined;

  async start(crashAt?: string): Promise<void> {
    this.crashAt = crashAt;
    const daemon = spawnDaemon(
      ['serve', '--socket', SOCKET, '--state-dir', this.stateDir],
      crashAt ? { TSMACVLAN_CRASH_AT: crashAt } : {},
    );
    this.daemon = daemon;
    await waitForSocket(SOCKET, daemon);
  }

  /**
   * SIGTERM and wait. The plugin gives itself 10 s to stop and then exits 1 naming the phase that hung: a stop that
   * needed that deadline fails here with its log line; a daemon still up 20 s later is SIGKILLed and the stop fails
   * (it must not hang the suite).
   */
  async stop(): Promise<void> {
    const d = this.daemon;
    if (!d || d.child.exitCode !== null || d.child.signalCode !== null) return;
    d.child.kill('SIGTERM');
    const code = await Promise.race([d.exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 20_000))]);
    const lastOutput = () => d.output().split('\n').slice(-5).join(' | ');
    if (code === 'running') {
      d.child.kill('SIGKILL');
      await d.exited;
      throw new Error(
        `the plugin daemon did not exit within 20 s of SIGTERM (SIGKILLed); its last output: ${lastOutput()}`,
      );
    }
    if (code !== 0) throw new Error(`the plugin daemon exited ${code} on SIGTERM; its last output: ${lastOutput()}`);
  }

  async restart(crashAt?: string): Promise<void> {
    await this.stop();
    await this.start(crashAt);
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}

/** stderr without the client's warnings (dockerd here runs without IPv4 forwarding, and `docker run` says so). */
function errors(stderr: string): string {
  return stderr
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('WARNING:'))
    .join('\n');
}

function firstLine(stderr: string): string {
  return errors(stderr).split('\n')[0] ?? '';
}

async function addressOf(container: string, network: string): Promise<string> {
  return dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, container]);
}

/** What a daemon's log says: its requests (`Method status`) and any other message (its start-up repairs), in order. */
function logSummary(output: string): string {
  const items: string[] = [];
  for (const line of output.split('\n')) {
    let rec: { msg?: string; method?: string; status?: number };
    try {
      rec = JSON.parse(line);
    } catch {
      continue;
    }
    if (rec.msg === 'request') {
      if (rec.method !== '/Plugin.Activate') items.push(`${rec.method?.replace(/^\/\w+\./, '')} ${rec.status}`);
    } else if (rec.msg && rec.msg !== 'tsmacvlan ready') items.push(`"${rec.msg}"`);
  }
  return items.join(', ') || 'nothing';
}

/** The ids of the records a RecordStore directory of the state holds (`<id>.json`), of one network when given. */
function records(dir: string, networkId?: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .filter(
      (f) =>
        networkId === undefined ||
        (JSON.parse(readFileSync(join(dir, f), 'utf8')) as { networkId?: string }).networkId === networkId,
    )
    .map((f) => f.slice(0, -'.json'.length))
    .sort();
}

/** The endpoint ids Docker holds on a network. */
async function dockerEndpoints(network: string): Promise<string[]> {
  return (await dockerOk(['network', 'inspect', '-f', '{{range .Containers}}{{.EndpointID}} {{end}}', network]))
    .split(/\s+/)
    .filter(Boolean)
    .sort();
}

describe('crash recovery with Docker: the plugin SIGKILLed mid-request during `docker run --ip`', () => {
  const plugin = new CrashableDaemon();
  const figures: string[] = [];

  beforeAll(async () => {
    await removeDockerObjects(PREFIX);
    await plugin.start();
  });

  /** Back to a running plugin without a crash point (a failed case may have left it dead or armed), then clean up. */
  const cleanUp = async () => {
    const d = plugin.daemon;
    const dead = !d || d.child.exitCode !== null || d.child.signalCode !== null;
    const armed = plugin.crashAt !== undefined;
    let stopFailure: unknown;
    try {
      if (dead || armed) {
        await plugin.stop().catch((err) => (stopFailure = err));
        await plugin.start();
      }
    } finally {
      await removeDockerObjects(PREFIX);
      await destroyAllSwitches();
    }
    if (stopFailure) throw stopFailure;
  };
  afterEach(cleanUp);

  afterAll(async () => {
    await cleanUp();
    await plugin.destroy();
    for (const f of figures) console.log(f);
  });

  it.each([
    { point: 'ipam-saved', octet: 70, during: "the container's static RequestAddress" },
    { point: 'endpoint-recorded', octet: 71, during: 'CreateEndpoint' },
    { point: 'endpoint-link-ready', octet: 72, during: 'Join' },
  ])(
    '$point ($during): the interrupted run ends, the same `docker run --ip` then succeeds, nothing leaks',
    async ({ point, octet }) => {
      const subnet = `10.231.${octet}.0/24`;
      const staticIp = `10.231.${octet}.50`;
      const sw = await createSwitch({ subnetPrefix: `10.231.${octet}` });
      const net = uniqueName(PREFIX);
      await dockerOk([
        'network',
        'create',
        '-d',
        DRIVER,
        '--ipam-driver',
        DRIVER,
        '-o',
        `parent=${sw.parent}`,
        '--subnet',
        subnet,
        net,
      ]);

      // Only now, with the network's pool and gateway saved, the crash point: the first save is the container's.
      await plugin.restart(point);
      const crashing = plugin.daemon!;
      const first = uniqueName(PREFIX);
      const started = Date.now();
      const interrupted: Promise<RunResult> = docker(
        ['run', '-d', '--name', first, '--network', net, '--ip', staticIp, TEST_IMAGE, 'sleep', '300'],
        { allowFail: true, timeoutMs: 45_000 },
      );

      // The plugin kills itself at the point; it must get there (a run that never reaches it fails here).
      const killed = await Promise.race([crashing.exited.then(() => true), interrupted.then(() => false)]);
      if (!killed) {
        const r = await interrupted;
        throw new Error(
          `docker run ended (${r.code}: ${firstLine(r.stderr)}) but the plugin did not crash at ${point}: ${crashing.output()}`,
        );
      }
      const killedAt = Date.now();
      expect(crashing.child.signalCode).toBe('SIGKILL');
      await plugin.start(); // within Docker's retries
      const backAt = Date.now();

      const r = await interrupted;
      const endedAt = Date.now();
      expect(r.stderr, 'the interrupted docker run must end by itself, not by the timeout').not.toContain(
        '[killed after',
      );
      const outcome =
        r.code === 0 ? `succeeded (${r.stdout.trim().slice(0, 12)})` : `failed, exit ${r.code}: ${firstLine(r.stderr)}`;

      // The user's own retry: remove what the failed run left, run the same command again.
      await docker(['rm', '-f', first], { allowFail: true });
      const second = uniqueName(PREFIX);
      const rerun = await docker(
        ['run', '-d', '--name', second, '--network', net, '--ip', staticIp, TEST_IMAGE, 'sleep', '300'],
        { allowFail: true, timeoutMs: 45_000 },
      );
      const rerunAt = Date.now();
      const between = logSummary(plugin.daemon!.output());
      figures.push(
        `[crash e2e] ${point}: interrupted docker run ${outcome} after ${endedAt - started} ms ` +
          `(plugin killed ${killedAt - started} ms in, back up ${backAt - killedAt} ms later); ` +
          `re-run ${rerun.code === 0 ? 'succeeded' : `FAILED (exit ${rerun.code}: ${firstLine(rerun.stderr)})`} ${rerunAt - killedAt} ms after the kill ` +
          `(the re-run itself took ${rerunAt - endedAt} ms incl. the rm); restarted plugin's log up to then: ${between}`,
      );
      console.log(figures.at(-1));
      expect(errors(rerun.stderr), `re-run of docker run --ip ${staticIp} after a crash at ${point}`).toBe('');
      expect(rerun.code).toBe(0);
      expect(await addressOf(second, net)).toBe(staticIp);

      // It reaches a second container (dynamic address) on the same network, and back.
      const peer = uniqueName(PREFIX);
      await dockerOk(['run', '-d', '--name', peer, '--network', net, TEST_IMAGE, 'sleep', '300']);
      const peerIp = await addressOf(peer, net);
      expect(peerIp).toMatch(new RegExp(`^10\\.231\\.${octet}\\.\\d+$`));
      expect(peerIp).not.toBe(staticIp);
      expect(await ping(second, peerIp)).toBe(true);
      expect(await ping(peer, staticIp)).toBe(true);

      // The plugin holds exactly the endpoints Docker knows on the network (none left from the interrupted run), and no
      // endpoint link is left in the host namespace (the two are inside the containers).
      const netId = await dockerOk(['network', 'inspect', '-f', '{{.Id}}', net]);
      expect(
        records(join(plugin.stateDir, 'endpoints'), netId),
        `endpoint records of ${net} vs Docker's endpoints`,
      ).toEqual(await dockerEndpoints(net));
      expect(await dockerEndpoints(net)).toHaveLength(2);
      expect(await pluginLinksOnHost(plugin.stateDir, 'e')).toEqual([]);

      // Everything goes, and nothing of it stays with the plugin or on the host.
      await dockerOk(['rm', '-f', second, peer]);
      await eventually(() => dockerOk(['network', 'rm', net]), 15_000);
      await eventually(async () => expect(await pluginLinksOnHost(plugin.stateDir)).toEqual([]), 10_000);
      expect(
        existsSync(join(plugin.stateDir, 'ipam', `${subnet.replace('/', '_')}.jnl`)),
        `IPAM journal of ${subnet}`,
      ).toBe(false);
      expect(records(join(plugin.stateDir, 'endpoints')), 'endpoint records').toEqual([]);
      expect(
        records(join(plugin.stateDir, 'networks')).filter((id) => id === netId),
        'network record',
      ).toEqual([]);
      // The plugin stayed up through all of it.
      expect(plugin.daemon!.child.exitCode).toBeNull();
      await sw.destroy();
    },
  );
});
