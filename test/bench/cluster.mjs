// The cluster IPAM's figures, on a 3-member etcd on loopback (Debian's etcd-server, members started here):
//   latency  RequestAddress through the API, a local-journal pool (scope=host) vs a cluster pool, interleaved in one run
//   burst    BENCH_CLUSTER_HOSTS (20) plugin instances (`serve --etcd`, driven over their sockets, no dockerd), all
//            asking at once over one /22: duplicates, allocations/s, and etcd round trips per allocation (etcd's own
//            grpc_server_handled_total for Txn, summed over the members), in two runs on two subnets:
//              fit    50 each: 20 x 50 + 20 warm-up = 1,020 of the /22's 1,022, demand as large as the range
//              over   100 each, as issue 14 words it: 2,000 asked of 1,022, so about half are refused as full (their
//                     transactions, where a view still showed a hole, count against the allocations)
//   labHost  test/bench/cluster-docker.ts: on a multi-host lab host (etcd on the lab LAN), RequestAddress and
//            `docker run --rm`, local vs cluster IPAM (BENCH_CLUSTER_API_ROUNDS, BENCH_CLUSTER_DOCKER_ROUNDS)
// Figures only, no verdicts. Standalone: `npm run build && bash test/lab/in-lab.sh node test/bench/cluster.mjs`.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  PluginClient,
  ROOT,
  envInt,
  log,
  onCleanup,
  percentile,
  round,
  run,
  sleep,
  spawnTracked,
  startPlugin,
  tempDir,
} from './lib.mjs';

const MEMBERS = [0, 1, 2].map((i) => ({ name: `bench${i}`, client: 23950 + 2 * i, peer: 23951 + 2 * i }));
const ENDPOINTS = MEMBERS.map((m) => `http://127.0.0.1:${m.client}`);

async function startEtcd() {
  const dir = tempDir('tsmv-bench-etcd-');
  const cluster = MEMBERS.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
  for (const m of MEMBERS) {
    const child = spawnTracked(
      '/usr/bin/etcd',
      [
        `--name=${m.name}`,
        `--data-dir=${join(dir, m.name)}`,
        `--listen-client-urls=http://127.0.0.1:${m.client}`,
        `--advertise-client-urls=http://127.0.0.1:${m.client}`,
        `--listen-peer-urls=http://127.0.0.1:${m.peer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${m.peer}`,
        `--initial-cluster=${cluster}`,
        '--initial-cluster-state=new',
        '--log-level=warn',
      ],
      { stdio: 'ignore' },
    );
    onCleanup(async () => {
      child.kill('SIGTERM');
      await child.exited;
    });
  }
  for (let i = 0; i < 120; i++) {
    const r = spawnSync('/usr/bin/etcdctl', [`--endpoints=${ENDPOINTS.join(',')}`, 'endpoint', 'health'], {
      env: { ...process.env, ETCDCTL_API: '3' },
      timeout: 5_000,
    });
    if (r.status === 0) return;
    await sleep(500);
  }
  throw new Error(`etcd on ${ENDPOINTS.join(',')} did not become healthy within 60 s`);
}

/** etcd's count of transactions served, summed over its members. */
async function txnsServed() {
  let total = 0;
  for (const endpoint of ENDPOINTS) {
    const text = await (await fetch(`${endpoint}/metrics`)).text();
    const line = text
      .split('\n')
      .find((l) => l.startsWith('grpc_server_handled_total{') && l.includes('grpc_method="Txn"') && l.includes('"OK"'));
    total += line ? Number(line.split(' ').pop()) : 0;
  }
  return total;
}

async function startHost(name) {
  const dir = tempDir(`tsmv-bench-${name}-`);
  const plugin = await startPlugin({
    socket: join(dir, 'plugin.sock'),
    stateDir: dir,
    wrap: ['env', `TSMACVLAN_ETCD=${ENDPOINTS.join(',')}`],
    logLevel: 'warn',
  });
  onCleanup(() => plugin.stop());
  const client = new PluginClient(plugin.socket);
  onCleanup(() => client.close());
  return {
    pool: async (body) => (await client.ok('IpamDriver.RequestPool', { AddressSpace: 'local', ...body })).PoolID,
    address: async (poolId) => (await client.ok('IpamDriver.RequestAddress', { PoolID: poolId })).Address,
  };
}

const ms = (list, p) => round(percentile(list, p), 2);

async function latency(host, rounds) {
  const local = await host.pool({ Pool: '10.96.0.0/20', Options: { scope: 'host' } });
  const shared = await host.pool({ Pool: '10.97.0.0/20' });
  await host.address(shared); // the first loads the subnet's view (one read and a watch)
  const times = { local: [], etcd: [] };
  const before = await txnsServed();
  for (let i = 0; i < rounds; i++) {
    for (const [kind, poolId] of i % 2
      ? [
          ['local', local],
          ['etcd', shared],
        ]
      : [
          ['etcd', shared],
          ['local', local],
        ]) {
      const t0 = performance.now();
      await host.address(poolId);
      times[kind].push(performance.now() - t0);
    }
  }
  const txns = (await txnsServed()) - before;
  return {
    rounds,
    localP50Ms: ms(times.local, 50),
    localP99Ms: ms(times.local, 99),
    etcdP50Ms: ms(times.etcd, 50),
    etcdP99Ms: ms(times.etcd, 99),
    etcdTxnsPerAllocation: round(txns / rounds, 3),
  };
}

async function burst(hosts, each, subnet) {
  const hostCount = hosts.length;
  const pools = await Promise.all(hosts.map((h) => h.pool({ Pool: subnet })));
  // Each host loads the subnet's view before the clock starts, as a running plugin has.
  const warm = await Promise.all(hosts.map((h, i) => h.address(pools[i])));
  const before = await txnsServed();
  const t0 = performance.now();
  // A failed allocation is counted and its first message kept: the figures say how many, rather than the run
  // stopping.
  const failures = [];
  const got = await Promise.all(
    hosts.map((h, i) =>
      Promise.all(
        Array.from({ length: each }, () => h.address(pools[i]).catch((err) => (failures.push(err), undefined))),
      ),
    ),
  );
  const seconds = (performance.now() - t0) / 1000;
  const txns = (await txnsServed()) - before;
  const all = [...warm, ...got.flat().filter(Boolean)];
  const done = all.length - warm.length;
  return {
    hosts: hostCount,
    asked: hostCount * each,
    allocated: done,
    failed: failures.length,
    firstFailure: failures[0]?.message.slice(0, 300),
    duplicates: all.length - new Set(all).size,
    seconds: round(seconds, 2),
    allocationsPerSecond: Math.round(done / seconds),
    etcdTxnsPerAllocation: round(txns / Math.max(1, done), 3),
  };
}

export async function benchCluster() {
  await startEtcd();
  const lat = await latency(await startHost('lat'), envInt('BENCH_CLUSTER_ROUNDS', 300));
  log(`cluster latency: ${JSON.stringify(lat)}`);
  const hosts = [];
  for (let i = 0; i < envInt('BENCH_CLUSTER_HOSTS', 20); i++) hosts.push(await startHost(`b${i}`));
  const b = await burst(hosts, 50, '10.98.0.0/22');
  log(`cluster burst, demand as large as the range: ${JSON.stringify(b)}`);
  const over = await burst(hosts, 100, '10.99.0.0/22');
  log(`cluster burst, twice the range asked: ${JSON.stringify(over)}`);
  const labHost = await onLabHost();
  log(`cluster on a lab host: ${JSON.stringify(labHost)}`);
  return { latency: lat, burst: b, burstOver: over, labHost };
}

/** The lab-host figures: the lab is TypeScript, so its bench runs under vite-node (vitest's own runner). */
async function onLabHost() {
  const { stdout } = await run(
    join(ROOT, 'node_modules/.bin/vite-node'),
    [join(ROOT, 'test/bench/cluster-docker.ts')],
    {
      timeoutMs: 900_000,
    },
  );
  return JSON.parse(stdout.trim().split('\n').pop());
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { cleanupAll } = await import('./lib.mjs');
  try {
    console.log(JSON.stringify(await benchCluster(), null, 2));
  } finally {
    await cleanupAll();
  }
}
