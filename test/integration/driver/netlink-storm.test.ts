// The plugin under a kernel event storm and a request burst (issue 17): netlink@0.3.0's prebuilt binding aborted the
// process (SIGABRT) when a socket's receive buffer overflowed; the patched one reports ENOBUFS and goes on, and the
// driver re-checks what the lost events may have been about.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { shimName } from '../../../src/driver/host-access';
import { endpointLinkName } from '../../../src/driver/endpoint-naming';
import { assertPrivateNetns } from '../../helpers/net';
import { post, spawnDaemonInOwnNetns, waitForSocket, type Daemon } from '../../helpers/serve';
import { sample } from '../../helpers/prometheus';

const STORM_PAIRS = 1500;
const BURST = 300;
const id = () => randomBytes(32).toString('hex');
const METRICS_PORT = 9464;

/** An answer within `ms`, or a failure saying the daemon does not answer (never a hang). */
function postWithin(ms: number, socket: string, method: string, body?: unknown) {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${method}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([post(socket, method, body), timeout]).finally(() => clearTimeout(timer));
}

/** Waits for `check`, failing at once, with the daemon's last words, when it dies meanwhile. */
async function until(daemon: Daemon, what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    const { exitCode, signalCode } = daemon.child;
    if (exitCode !== null || signalCode !== null)
      throw new Error(`${what}: the daemon died (${signalCode ?? exitCode}): ${daemon.output().slice(-600)}`);
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('netlink under a storm of link events and a burst of requests', () => {
  let dir: string;
  let socket: string;
  let daemon: ReturnType<typeof spawnDaemonInOwnNetns>;
  const networkId = id();
  const parent = 'tmvNpar';

  beforeAll(() => assertPrivateNetns());
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tmvN-storm-'));
    socket = join(dir, 'tmvN.sock');
    // Metrics on every address of the daemon's namespace (its loopback is down until the test brings it up).
    daemon = spawnDaemonInOwnNetns([
      ...['serve', '--socket', socket, '--state-dir', join(dir, 'state')],
      ...['--metrics-address', `:${METRICS_PORT}`],
    ]);
    await waitForSocket(socket, daemon);
    daemon.inNetns('ip', 'link', 'add', parent, 'type', 'veth', 'peer', 'name', `${parent}p`);
    daemon.inNetns('ip', 'link', 'set', parent, 'up');
    // Nothing of this subnet leaves the daemon's namespace: it has no other link than the veth pair.
    const created = await post(socket, 'NetworkDriver.CreateNetwork', {
      NetworkID: networkId,
      Options: { 'com.docker.network.generic': { parent, host_access: '10.71.0.250' } },
      IPv4Data: [{ Pool: '10.71.0.0/16', Gateway: '10.71.0.1/16', AuxAddresses: { host: '10.71.0.250/16' } }],
    });
    expect(created.status).toBe(200);
  });
  afterEach(async () => {
    // The daemon's namespace, and every link in it, goes with the daemon.
    daemon.child.kill('SIGCONT');
    daemon.child.kill('SIGKILL');
    await daemon.exited;
    rmSync(dir, { recursive: true, force: true });
  });

  const shimPresent = () => daemon.inNetns('ip', '-br', '-4', 'addr', 'show').includes(shimName(networkId));

  it(`survives ${STORM_PAIRS} veth pairs made and deleted while it is frozen, and re-makes a shim deleted meanwhile`, async () => {
    expect(shimPresent()).toBe(true);
    const lines: string[] = [];
    for (let i = 0; i < STORM_PAIRS; i++) lines.push(`link add tmvNs${i} type veth peer name tmvNt${i}`);
    lines.push(`link del ${shimName(networkId)}`);
    for (let i = 0; i < STORM_PAIRS; i++) lines.push(`link del tmvNs${i}`);
    const batch = join(dir, 'storm.batch');
    writeFileSync(batch, lines.join('\n') + '\n');

    daemon.child.kill('SIGSTOP');
    try {
      daemon.inNetns('ip', '-batch', batch);
    } finally {
      daemon.child.kill('SIGCONT');
    }

    // The kernel dropped events (the shim's deletion may be among them): the daemon says so, and checks again.
    const lost = /"code":"ENOBUFS"[^\n]*link events were lost/;
    await until(daemon, 'the daemon reports lost link events', () => lost.test(daemon.output()), 60_000);
    expect((await postWithin(20_000, socket, 'Plugin.Activate')).status).toBe(200);
    await until(daemon, 'the shim is made again', shimPresent, 60_000);
    expect(daemon.inNetns('ip', '-4', 'addr', 'show', 'dev', shimName(networkId))).toContain('10.71.0.250/32');
    // And the request socket still works.
    const endpointId = id();
    const endpoint = { NetworkID: networkId, EndpointID: endpointId, Interface: { Address: '10.71.1.1/16' } };
    expect((await postWithin(20_000, socket, 'NetworkDriver.CreateEndpoint', endpoint)).status).toBe(200);
    const joined = await postWithin(20_000, socket, 'NetworkDriver.Join', {
      NetworkID: networkId,
      EndpointID: endpointId,
    });
    expect(joined.status).toBe(200);
    expect(daemon.inNetns('ip', '-br', 'link', 'show')).toContain(endpointLinkName(endpointId));
    expect(daemon.child.exitCode).toBeNull();

    // The metrics count the resync after the lost events and the shim made again (a shim deleted on purpose, with
    // its event lost, is found by that resync).
    daemon.inNetns('ip', 'link', 'set', 'lo', 'up');
    const metrics = daemon.inNetns(
      process.execPath,
      '-e',
      `fetch('http://127.0.0.1:${METRICS_PORT}/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))`,
    );
    expect(sample(metrics, 'tsmacvlan_kernel_resyncs_total')).toBeGreaterThanOrEqual(1);
    expect(sample(metrics, 'tsmacvlan_host_access_repairs_total')).toBe(1);
  });

  it(`answers a burst of ${BURST} Joins sent at once on one socket, then ${BURST} Leaves`, async () => {
    const endpointIds = Array.from({ length: BURST }, id);
    const address = (i: number) => `10.71.${2 + (i >> 8)}.${i & 0xff}/16`;
    for (const [i, endpointId] of endpointIds.entries()) {
      const body = { NetworkID: networkId, EndpointID: endpointId, Interface: { Address: address(i) } };
      expect((await post(socket, 'NetworkDriver.CreateEndpoint', body)).status).toBe(200);
    }
    const joins = await Promise.all(
      endpointIds.map((e) =>
        postWithin(120_000, socket, 'NetworkDriver.Join', { NetworkID: networkId, EndpointID: e }),
      ),
    );
    expect(joins.map((j) => j.status)).toEqual(endpointIds.map(() => 200));
    const present = daemon.inNetns('ip', '-br', 'link', 'show');
    expect(endpointIds.filter((e) => !present.includes(endpointLinkName(e)))).toEqual([]);
    const routes = daemon.inNetns('ip', '-4', 'route', 'show', 'dev', shimName(networkId));
    expect(routes.trim().split('\n')).toHaveLength(BURST);

    const leaves = await Promise.all(
      endpointIds.map((e) =>
        postWithin(120_000, socket, 'NetworkDriver.Leave', { NetworkID: networkId, EndpointID: e }),
      ),
    );
    expect(leaves.map((l) => l.status)).toEqual(endpointIds.map(() => 200));
    // No reply was dropped on the request socket (the watch socket may lose events meanwhile: that is recovered).
    expect(daemon.output()).not.toMatch(/ETIMEDOUT/);
    expect(daemon.child.exitCode).toBeNull();
  });
});
