// The cluster IPAM through the plugin's HTTP API: two `tsmacvlan serve --etcd` daemons (two state dirs and sockets:
// two hosts) on one real 3-member etcd. One subnet and one --ip-range on both: distinct addresses, the range fills to
// its exact size across both, the gateway is shared; scope=host stays local; quorum lost fails closed and a release
// made meanwhile reaches etcd once it is back; a kill between the etcd commit and the answer is rolled back at the
// next start; a cluster-wide pool stays so when its host restarts without --etcd, and one host never mixes local and
// cluster pools on a subnet; status, doctor --etcd (through the CLI, its round trip judged against a slowed member)
// and gc --cluster read and change the same table.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKv } from '../../../src/cluster/etcd';
import { EtcdCluster } from '../../lab/etcd';
import { CLI, type Daemon, post, spawnDaemon, waitForSocket } from '../../helpers/serve';
import type { DoctorReport } from '../../../src/inspect/doctor/check';
import { etcdChecks } from '../../../src/inspect/cluster';
import { cidr, heldIn, until } from '../cluster/setup';
import { freePort, sample, scrape } from '../../helpers/prometheus';

const PREFIX = 'tmvK';
const GW = { RequestAddressType: 'com.docker.network.gateway' };
const MAC = { 'com.docker.network.endpoint.macaddress': '02:42:0a:00:00:01' };

const cluster = EtcdCluster.onHost(`${PREFIX}a`, '127.0.0.1', 23830);
/** A request fails "within about 5 s" when quorum is lost (README): 3 times that, for a noisy 2-core machine. */
const QUORUM_LOST_BOUND_MS = 15_000;
let dir: string;
const daemons: Daemon[] = [];
let kv: EtcdKv;
/** Host A serves metrics there. */
let metricsA: string;

interface Host {
  name: string;
  socket: string;
}

function startHost(name: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Host {
  const socket = join(dir, `${name}.sock`);
  const args = ['serve', '--socket', socket, '--state-dir', join(dir, name), '--log-level', 'warn'];
  daemons.push(spawnDaemon([...args, ...extra], { TSMACVLAN_ETCD: cluster.endpoints.join(','), ...env }));
  return { name, socket };
}

/** Stops the daemon started last (SIGTERM, as systemd or Docker would) and waits for it to exit. */
async function stopLastHost(): Promise<void> {
  const daemon = daemons.at(-1)!;
  daemon.child.kill('SIGTERM');
  await daemon.exited;
}

async function call(host: Host, method: string, body: unknown): Promise<any> {
  const { status, json } = await post(host.socket, `IpamDriver.${method}`, body);
  if (status !== 200) throw new Error(`${host.name} ${method}: ${json?.Err}`);
  return json;
}

const pool = (host: Host, body: object): Promise<string> =>
  call(host, 'RequestPool', { AddressSpace: 'local', ...body }).then((j) => j.PoolID);
const address = (host: Host, poolId: string, ip = '', options: object | null = MAC): Promise<string> =>
  call(host, 'RequestAddress', { PoolID: poolId, Address: ip, Options: options }).then((j) => j.Address);

/** etcd's own count of transactions served, summed over its members: the round trips of takes and releases. */
async function txnsServed(): Promise<number> {
  let total = 0;
  for (let i = 0; i < 3; i++) {
    if (!cluster.running(i)) continue;
    const text = await (await fetch(`${cluster.endpoint(i)}/metrics`)).text();
    const line = text
      .split('\n')
      .find(
        (l) =>
          l.startsWith('grpc_server_handled_total{') && l.includes('grpc_method="Txn"') && l.includes('grpc_code="OK"'),
      );
    total += line ? Number(line.split(' ').pop()) : 0;
  }
  return total;
}

/** A CLI command with this cluster's etcd in its environment; throws with its output when it fails. */
function cli(args: string[]): string {
  try {
    return execFileSync(process.execPath, [CLI, ...args], {
      encoding: 'utf8',
      env: { ...process.env, TSMACVLAN_ETCD: cluster.endpoints.join(',') },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`tsmacvlan ${args.join(' ')} failed: ${e.stderr ?? ''}${e.stdout ?? ''}${e.message}`);
  }
}

/** doctor's threshold for the etcd round trip (README: "WARN above 20 ms"). */
const SLOW_RTT_MS = 20;

/**
 * `tsmacvlan doctor --json --etcd ENDPOINTS` on host A: its exit code and its two etcd checks. Asynchronous: the proxy
 * of a slowed member lives in this process.
 */
async function doctorEtcd(endpoints: string[]) {
  const args = ['doctor', '--json', '--state-dir', join(dir, 'hostA'), '--socket', a.socket];
  const run = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args, '--etcd', endpoints.join(',')], { timeout: 60_000 });
    let stdout = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.on('close', (code) => resolve({ code, stdout }));
  });
  const report = JSON.parse(run.stdout) as DoctorReport;
  const check = (id: string) => report.checks.find((c) => c.id === id);
  return { code: run.code, etcd: check('etcd')!, rtt: check('etcd.rtt')!, report };
}

/**
 * A TCP proxy on loopback in front of an etcd member that holds every chunk of its answers `delayMs` before passing
 * it on (in order): a member that is slow to answer, as one on a slow disk or far away on the LAN is.
 */
async function delayingProxy(
  target: string,
  delayMs: number,
): Promise<{ endpoint: string; close: () => Promise<void> }> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const member = connect(Number(port), hostname);
    for (const s of [client, member]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.on('data', (d) => member.write(d));
    member.on('data', (d) => setTimeout(() => client.writable && client.write(d), delayMs));
    client.on('close', () => member.destroy());
    member.on('close', () => setTimeout(() => client.destroy(), delayMs));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return { endpoint, close };
}

let a: Host;
let b: Host;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), `${PREFIX}-cluster-api-`));
  await cluster.start();
  kv = new EtcdKv({ endpoints: cluster.endpoints });
  metricsA = `127.0.0.1:${await freePort()}`;
  a = startHost('hostA', ['--metrics-address', metricsA]);
  b = startHost('hostB', ['--etcd-prefix', '/tsmacvlan']);
  await waitForSocket(a.socket, daemons[0]);
  await waitForSocket(b.socket, daemons[1]);
}, 60_000);

afterAll(async () => {
  for (const d of daemons) d.child.kill('SIGTERM');
  for (const d of daemons) await Promise.race([d.exited, new Promise((r) => setTimeout(r, 12_000))]);
  for (const d of daemons) if (d.child.exitCode === null) d.child.kill('SIGKILL');
  await kv?.close();
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('the cluster IPAM through the API, two hosts on one etcd', () => {
  it('one subnet and --ip-range on both: distinct addresses in parallel, exactly the range, then exhaustion on either', async () => {
    const net = { Pool: '10.73.0.0/24', SubPool: '10.73.0.0/27' };
    const pools = [await pool(a, net), await pool(b, net)];
    expect(pools[0]).toBe('tsmacvlan:10.73.0.0/24,range=10.73.0.0/27,cluster');
    // The gateway: a shared reservation both hosts get; never a container's.
    expect(await address(a, pools[0], '10.73.0.254', GW)).toBe('10.73.0.254/24');
    expect(await address(b, pools[1], '10.73.0.254', GW)).toBe('10.73.0.254/24');
    await expect(address(b, pools[1], '10.73.0.254')).rejects.toThrow(/is in use across the cluster/);
    // A given address without options (an --aux-address, or a 28.x engine's --ip: the same on the wire) is one
    // host's alone.
    expect(await address(a, pools[0], '10.73.0.200', null)).toBe('10.73.0.200/24');
    await expect(address(b, pools[1], '10.73.0.200', null)).rejects.toThrow(
      /address 10\.73\.0\.200 of subnet 10\.73\.0\.0\/24 is in use across the cluster/,
    );
    await call(a, 'ReleaseAddress', { PoolID: pools[0], Address: '10.73.0.200/24' });

    const before = await txnsServed();
    // The range holds 31 assignable addresses (10.73.0.1-31): 16 asked on one host, 15 on the other, all at once.
    const asks = Array.from({ length: 31 }, (_, i) => address(i % 2 ? b : a, pools[i % 2]));
    const got = await Promise.all(asks);
    const txns = (await txnsServed()) - before;
    console.log(
      `31 parallel allocations over two hosts: ${txns} etcd transactions (${(txns / 31).toFixed(2)} per allocation)`,
    );
    expect(new Set(got).size).toBe(31);
    for (const text of got) expect(text).toMatch(/^10\.73\.0\.([1-9]|[12][0-9]|3[01])\/24$/);
    for (const [host, poolId] of [
      [a, pools[0]],
      [b, pools[1]],
    ] as const) {
      await expect(address(host, poolId)).rejects.toThrow(
        `${host.name} RequestAddress: no free address in subnet 10.73.0.0/24 (addresses 10.73.0.1 to 10.73.0.31) across the cluster: all 31 are held`,
      );
    }
    const held = await heldIn(kv, cidr('10.73.0.0/24'));
    expect(held.size).toBe(32);
    expect(held.get('10.73.0.254')?.map((c) => c.kind)).toEqual(['gateway', 'gateway']);
    // Host A's metrics: the range full across the cluster, 16 of its addresses this host's.
    const metrics = await scrape(metricsA);
    const range = (scope: string) => `{subnet="10.73.0.0/24",range="10.73.0.0/27",scope="${scope}"}`;
    expect(sample(metrics, `tsmacvlan_ipam_addresses_allocated${range('cluster')}`)).toBe(31);
    expect(sample(metrics, `tsmacvlan_ipam_addresses_allocated${range('host')}`)).toBe(16);
    expect(sample(metrics, `tsmacvlan_ipam_addresses_capacity${range('cluster')}`)).toBe(31);
    expect(sample(metrics, 'tsmacvlan_etcd_up')).toBe(1);
    expect(sample(metrics, 'tsmacvlan_etcd_request_duration_seconds_count')).toBeGreaterThanOrEqual(16);
    expect(sample(metrics, 'tsmacvlan_cluster_releases_pending')).toBe(0);

    // Each host releases what it took, and the gateway's two claims: nothing is left in etcd.
    for (let i = 0; i < 31; i++) {
      await call(i % 2 ? b : a, 'ReleaseAddress', { PoolID: pools[i % 2], Address: got[i] });
    }
    await call(a, 'ReleaseAddress', { PoolID: pools[0], Address: '10.73.0.254/24' });
    await call(b, 'ReleaseAddress', { PoolID: pools[1], Address: '10.73.0.254/24' });
    expect((await heldIn(kv, cidr('10.73.0.0/24'))).size).toBe(0);
    await call(a, 'ReleasePool', { PoolID: pools[0] });
    await call(b, 'ReleasePool', { PoolID: pools[1] });
  });

  it('scope=host keeps a pool on its host: its addresses never reach etcd', async () => {
    const local = await pool(a, { Pool: '10.74.0.0/24', Options: { scope: 'host' } });
    const shared = await pool(b, { Pool: '10.74.0.0/24' });
    expect(local).not.toMatch(/,cluster$/);
    expect(await address(a, local)).toBe('10.74.0.1/24');
    expect(await address(b, shared)).toBe('10.74.0.1/24'); // the table knows nothing of host A's
    expect([...(await heldIn(kv, cidr('10.74.0.0/24'))).values()].flat().map((c) => c.ref)).toEqual([shared]);
    await call(a, 'ReleaseAddress', { PoolID: local, Address: '10.74.0.1/24' });
    await call(b, 'ReleaseAddress', { PoolID: shared, Address: '10.74.0.1/24' });
  });

  it('quorum lost: RequestAddress fails naming etcd, a ReleaseAddress is answered and reaches etcd once it is back', async () => {
    const poolId = await pool(a, { Pool: '10.75.0.0/24' });
    const kept = await address(a, poolId);
    const freed = await address(a, poolId);
    await cluster.killMember(1);
    await cluster.killMember(2);
    try {
      const t0 = Date.now();
      const failure = await address(a, poolId).then(
        () => undefined,
        (err: Error) => err.message,
      );
      const elapsed = Date.now() - t0;
      console.log(`RequestAddress with quorum lost failed after ${elapsed} ms: ${failure}`);
      expect(elapsed).toBeLessThan(QUORUM_LOST_BOUND_MS);
      expect(failure).toMatch(/^hostA RequestAddress: taking \/tsmacvlan\/v1\/subnets\/10\.75\.0\.0_24\/addresses\//);
      expect(failure).toMatch(/etcd at http:\/\/127\.0\.0\.1:23830.*No address is handed out without etcd$/);
      await call(a, 'ReleaseAddress', { PoolID: poolId, Address: freed });
      // The metrics say etcd is down, and that two releases wait for it: this one, and the rollback of the failed
      // take (whose outcome etcd never told).
      const down = await scrape(metricsA);
      expect(sample(down, 'tsmacvlan_etcd_up')).toBe(0);
      expect(sample(down, 'tsmacvlan_cluster_releases_pending')).toBe(2);
    } finally {
      cluster.startMember(1);
      cluster.startMember(2);
      await cluster.waitHealthy(cluster.endpoints, 30_000);
    }
    const subnet = cidr('10.75.0.0/24');
    await until(
      'the queued release reaches etcd',
      async () => !(await heldIn(kv, subnet)).has(freed.split('/')[0]),
      300,
      100,
    );
    expect([...(await heldIn(kv, subnet)).keys()]).toEqual([kept.split('/')[0]]);
    expect(await address(a, poolId)).toMatch(/^10\.75\.0\.\d+\/24$/);
    const back = await scrape(metricsA);
    expect(sample(back, 'tsmacvlan_etcd_up')).toBe(1);
    expect(sample(back, 'tsmacvlan_cluster_releases_pending')).toBe(0);
  });

  it('figures: allocation latency through the API, local journal vs etcd, in one run (logged, not asserted)', async () => {
    const local = await pool(a, { Pool: '10.76.0.0/22', Options: { scope: 'host' } });
    const shared = await pool(a, { Pool: '10.77.0.0/22' });
    const times: Record<'local' | 'etcd', number[]> = { local: [], etcd: [] };
    await address(a, shared); // the first loads the subnet's view (one read and a watch)
    const before = await txnsServed();
    for (let i = 0; i < 300; i++) {
      for (const [kind, poolId] of [
        ['local', local],
        ['etcd', shared],
      ] as const) {
        const t0 = process.hrtime.bigint();
        await address(a, poolId);
        times[kind].push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }
    const txns = (await txnsServed()) - before;
    const pct = (list: number[], p: number) => [...list].sort((x, y) => x - y)[Math.floor((list.length - 1) * p)];
    for (const kind of ['local', 'etcd'] as const) {
      console.log(`${kind}: p50 ${pct(times[kind], 0.5).toFixed(2)} ms, p99 ${pct(times[kind], 0.99).toFixed(2)} ms`);
    }
    console.log(`etcd transactions per allocation: ${(txns / 300).toFixed(2)}`);
    expect(txns).toBeGreaterThanOrEqual(300); // every cluster allocation is a transaction on etcd
  });

  it('a plugin killed between the etcd commit and its answer releases that address at its next start', async () => {
    const c = startHost('hostC', [], { TSMACVLAN_CRASH_AT: 'cluster-committed' });
    const crashing = daemons.at(-1)!;
    await waitForSocket(c.socket, crashing);
    const poolId = await pool(c, { Pool: '10.79.0.0/24' });
    await expect(address(c, poolId)).rejects.toThrow(/socket hang up|ECONNRESET/);
    await crashing.exited;
    const subnet = cidr('10.79.0.0/24');
    const left = [...(await heldIn(kv, subnet)).keys()];
    expect(left).toHaveLength(1); // committed in etcd, never answered to Docker

    const again = startHost('hostC');
    await waitForSocket(again.socket, daemons.at(-1)!);
    await until('the unanswered take is rolled back', async () => (await heldIn(kv, subnet)).size === 0, 300, 100);
    // Docker never got that address: the pool (journaled and answered) is there, and hands it out again.
    expect(await address(again, poolId)).toBe(`${left[0]}/24`);
  });

  it("the last ReleasePool releases what Docker never released, and only this host's claims", async () => {
    const net = { Pool: '10.80.0.0/24', SubPool: '10.80.0.0/25' };
    const subnet = cidr(net.Pool);
    const [poolA, poolB] = [await pool(a, net), await pool(b, net)];
    // Two networks on host A share the pool: only the last one's release frees anything.
    expect(await pool(a, net)).toBe(poolA);
    for (const [host, poolId] of [
      [a, poolA],
      [b, poolB],
    ] as const)
      await address(host, poolId, '', GW);
    // As after a kill that lost Docker's ReleaseAddress: addresses A still holds when its pool goes.
    const leftByA = [await address(a, poolA), await address(a, poolA, '10.80.0.100')].map((x) => x.split('/')[0]);
    const keptByB = (await address(b, poolB)).split('/')[0];
    const idA = readFileSync(join(dir, 'hostA', 'instance'), 'utf8').trim();
    const ownersOf = async () =>
      Object.fromEntries([...(await heldIn(kv, subnet))].map(([ip, claims]) => [ip, claims.map((c) => c.owner)]));
    expect(Object.keys(await ownersOf()).sort()).toEqual(['10.80.0.1', ...leftByA, keptByB].sort());

    await call(a, 'ReleasePool', { PoolID: poolA });
    expect(Object.keys(await ownersOf()).sort()).toEqual(['10.80.0.1', ...leftByA, keptByB].sort());
    await call(a, 'ReleasePool', { PoolID: poolA });
    // Applied before the answer (etcd is up); B's gateway claim and container stay.
    const left = await ownersOf();
    expect(Object.keys(left).sort()).toEqual(['10.80.0.1', keptByB].sort());
    expect(Object.values(left).flat()).not.toContain(idA);

    // The network created again on A gets the same pool id and a claim of its own, which nothing releases.
    const again = await pool(a, net);
    expect(again).toBe(poolA);
    expect(await address(a, again, '10.80.0.100')).toBe('10.80.0.100/24');
    expect(Object.keys(await ownersOf())).toContain('10.80.0.100');
    await call(a, 'ReleasePool', { PoolID: again });
    await call(b, 'ReleaseAddress', { PoolID: poolB, Address: `${keptByB}/24` });
    await call(b, 'ReleaseAddress', { PoolID: poolB, Address: '10.80.0.1/24' });
    await call(b, 'ReleasePool', { PoolID: poolB });
    expect(await ownersOf()).toEqual({});
  });

  it('one host never keeps a subnet both in a local and in a cluster-wide pool', async () => {
    const shared = await pool(a, { Pool: '10.81.0.0/24', SubPool: '10.81.0.0/25' });
    await expect(
      pool(a, { Pool: '10.81.0.0/24', SubPool: '10.81.0.128/25', Options: { scope: 'host' } }),
    ).rejects.toThrow(
      /subnet 10\.81\.0\.0\/24 is used on this host by pool tsmacvlan:10\.81\.0\.0\/24,range=10\.81\.0\.0\/25,cluster, which is cluster-wide/,
    );
    // The other host may: its local pool knows nothing of the cluster table (as scope=host says).
    const local = await pool(b, { Pool: '10.81.0.0/24', SubPool: '10.81.0.128/25', Options: { scope: 'host' } });
    await call(a, 'ReleasePool', { PoolID: shared });
    await call(b, 'ReleasePool', { PoolID: local });
  });

  it('a cluster-wide pool stays so when its host restarts without --etcd: its requests are refused, saying why', async () => {
    const d = startHost('hostD');
    await waitForSocket(d.socket, daemons.at(-1)!);
    const poolId = await pool(d, { Pool: '10.82.0.0/24' });
    const held = await address(d, poolId);
    await stopLastHost();

    const alone = startHost('hostD', [], { TSMACVLAN_ETCD: '' });
    await waitForSocket(alone.socket, daemons.at(-1)!);
    await expect(address(alone, poolId)).rejects.toThrow(
      `pool ${poolId} is cluster-wide (its addresses are kept in etcd), but tsmacvlan runs without --etcd`,
    );
    await expect(pool(alone, { Pool: '10.82.0.0/24' })).rejects.toThrow(/which is cluster-wide/);
    await expect(call(alone, 'ReleaseAddress', { PoolID: poolId, Address: held })).rejects.toThrow(/without --etcd/);
    expect([...(await heldIn(kv, cidr('10.82.0.0/24'))).keys()]).toEqual([held.split('/')[0]]); // untouched
    await stopLastHost();

    // With --etcd again, all is as it was.
    const again = startHost('hostD');
    await waitForSocket(again.socket, daemons.at(-1)!);
    await call(again, 'ReleaseAddress', { PoolID: poolId, Address: held });
    await call(again, 'ReleasePool', { PoolID: poolId });
    expect((await heldIn(kv, cidr('10.82.0.0/24'))).size).toBe(0);
  });

  it('status and doctor show the table; gc --cluster frees what a host gone for good held, and only that', async () => {
    const net = { Pool: '10.78.0.0/24' };
    const pools = [await pool(a, net), await pool(b, net)];
    for (const [host, poolId] of [
      [a, pools[0]],
      [b, pools[1]],
    ] as const)
      await address(host, poolId, '', GW);
    for (let i = 0; i < 3; i++) await address(a, pools[0]);
    for (let i = 0; i < 2; i++) await address(b, pools[1]);
    const [idA, idB] = ['hostA', 'hostB'].map((h) => readFileSync(join(dir, h, 'instance'), 'utf8').trim());

    const report = JSON.parse(cli(['status', '--state-dir', join(dir, 'hostA'), '--socket', a.socket, '--json']));
    expect(report.cluster).toMatchObject({ instance: idA, prefix: '/tsmacvlan', error: null });
    expect(report.cluster.subnets.find((s: { subnet: string }) => s.subnet === '10.78.0.0/24')).toEqual({
      subnet: '10.78.0.0/24',
      size: '254',
      used: 6,
      free: '248',
      owners: { [idA]: { container: 3, gateway: 1, aux: 0 }, [idB]: { container: 2, gateway: 1, aux: 0 } },
    });
    expect(cli(['status', '--state-dir', join(dir, 'hostA'), '--socket', a.socket])).toContain(
      `${idA} (this host): 3 containers, 1 gateway, 0 aux`,
    );
    // The range fill (the subnet, without --ip-range): this host's 3 containers and the gateway, the cluster's 6; the
    // same figures as host A's metrics.
    const fill = { subnet: '10.78.0.0/24', range: '10.78.0.0/24', capacity: '254' };
    expect(report.ranges.filter((r: { subnet: string }) => r.subnet === fill.subnet)).toEqual([
      { ...fill, scope: 'host', allocated: 4 },
      { ...fill, scope: 'cluster', allocated: 6 },
    ]);
    const metrics = await scrape(metricsA);
    for (const [scope, allocated] of [
      ['host', 4],
      ['cluster', 6],
    ] as const) {
      const labels = `{subnet="${fill.subnet}",range="${fill.range}",scope="${scope}"}`;
      expect(sample(metrics, `tsmacvlan_ipam_addresses_allocated${labels}`)).toBe(allocated);
      expect(sample(metrics, `tsmacvlan_ipam_addresses_capacity${labels}`)).toBe(254);
    }

    // doctor --etcd through the CLI: all members answer; the round trip's verdict is the one its median calls for.
    const healthy = await doctorEtcd(cluster.endpoints);
    expect(healthy.etcd).toMatchObject({ status: 'OK', message: '3 of 3 etcd members answer with quorum' });
    const median = Number(/median ([\d.]+) ms over 15$/.exec(healthy.rtt.message)?.[1]);
    expect(healthy.rtt.status).toBe(median <= SLOW_RTT_MS ? 'OK' : 'WARN');
    console.log(`doctor: ${healthy.rtt.message}`);
    // Every member behind a proxy that holds each answer 60 ms: the median is above 20 ms, which doctor warns of.
    const slow = await Promise.all(cluster.endpoints.map((endpoint) => delayingProxy(endpoint, 60)));
    try {
      const slowed = await doctorEtcd(slow.map((p) => p.endpoint));
      expect(slowed.etcd.status, slowed.etcd.message).toBe('OK');
      expect(slowed.rtt).toMatchObject({ status: 'WARN', fix: expect.stringMatching(/fast disks/) });
      expect(Number(/median ([\d.]+) ms/.exec(slowed.rtt.message)?.[1])).toBeGreaterThanOrEqual(60);
    } finally {
      for (const proxy of slow) await proxy.close();
    }
    await cluster.killMember(2);
    try {
      const [degraded] = await etcdChecks({ endpoints: cluster.endpoints });
      expect(degraded).toMatchObject({ status: 'WARN' });
      expect(degraded.message).toMatch(/^2 of 3 etcd members answer; http:\/\/127\.0\.0\.1:23832: /);
    } finally {
      cluster.startMember(2);
      await cluster.waitHealthy(cluster.endpoints, 30_000);
    }
    const none = await etcdChecks({ endpoints: ['http://127.0.0.1:1'] });
    expect(none).toEqual([
      expect.objectContaining({ id: 'etcd', status: 'FAIL', fix: expect.stringMatching(/a majority must run/) }),
    ]);

    // Host B goes away for good; host A's operator frees what it held.
    daemons[1].child.kill('SIGTERM');
    await daemons[1].exited;
    const gc = (...extra: string[]) =>
      cli(['gc', '--cluster', '--forget-instance', idB, '--state-dir', join(dir, 'hostA'), ...extra]);
    const listed = gc('--dry-run').trim().split('\n');
    expect(listed.slice(0, -1).sort()).toEqual(
      [
        `would free 10.78.0.1 of 10.78.0.0/24 (gateway, ${pools[1]})`,
        ...[...(await heldIn(kv, cidr('10.78.0.0/24')))]
          .filter(([, claims]) => claims.some((c) => c.owner === idB && c.kind === 'container'))
          .map(([ip]) => `would free ${ip} of 10.78.0.0/24 (container, ${pools[1]})`),
      ].sort(),
    );
    expect(listed.at(-1)).toBe('3 would be freed');
    expect((await heldIn(kv, cidr('10.78.0.0/24'))).size).toBe(6); // a dry run changes nothing
    expect(gc().trim().split('\n').at(-1)).toBe('3 freed');
    const left = await heldIn(kv, cidr('10.78.0.0/24'));
    expect([...left.values()].flat().every((c) => c.owner === idA)).toBe(true);
    expect(left.size).toBe(4); // A's gateway claim and its 3 containers
    expect(() => cli(['gc', '--cluster', '--forget-instance', idA, '--state-dir', join(dir, 'hostA')])).toThrow(
      /instance .* is this host: forget an instance only once its host is gone for good, from another host/,
    );

    // Host A is uninstalled too, its network left behind (--force): with etcd, uninstall frees its own claims.
    daemons[0].child.kill('SIGTERM');
    await daemons[0].exited;
    const uninstallA = ['uninstall', '--force', '--json', '--state-dir', join(dir, 'hostA'), '--socket', a.socket];
    const withoutEtcd = JSON.parse(
      execFileSync(process.execPath, [CLI, ...uninstallA, '--dry-run'], {
        encoding: 'utf8',
        env: { ...process.env, TSMACVLAN_ETCD: '' },
      }),
    );
    expect(withoutEtcd.kept).toContainEqual({
      target: 'the cluster table',
      why: expect.stringContaining(`tsmacvlan gc --cluster --forget-instance ${idA} --etcd URL`),
    });
    const claims = (report: { removed: { kind: string; target: string }[] }) =>
      report.removed.filter((s) => s.kind === 'claim');
    const planned = claims(JSON.parse(cli([...uninstallA, '--dry-run'])));
    // Its gateway and 3 containers on 10.78.0.0/24, and what the file's earlier cases left it holding elsewhere.
    expect(planned.filter((s) => s.target.endsWith(' of 10.78.0.0/24'))).toHaveLength(4);
    expect(planned).toContainEqual({
      kind: 'claim',
      target: '10.78.0.1 of 10.78.0.0/24',
      detail: `gateway, ${pools[0]}`,
    });
    expect((await heldIn(kv, cidr('10.78.0.0/24'))).size).toBe(4);
    expect(claims(JSON.parse(cli(uninstallA)))).toEqual(planned);
    expect((await heldIn(kv, cidr('10.78.0.0/24'))).size).toBe(0);
    expect(existsSync(join(dir, 'hostA'))).toBe(false);
  });
});
