// The cluster IPAM on a lab host (test/lab/multi-host.ts: a host namespace with its own dockerd and plugin, the
// 3 etcd members on the lab LAN), each variant measured in the same run, interleaved in a fresh random order:
//   api     RequestAddress over the plugin's socket: a scope=host pool (local journal) vs a cluster pool (etcd)
//   docker  `docker run --rm` of a trivial container on a network with each of the two pools
// Figures only, no verdicts; JSON on the last line of stdout. Run by test/bench/cluster.mjs (vite-node, since the lab
// is TypeScript), or alone inside a lab: `bash test/lab/in-lab.sh node_modules/.bin/vite-node test/bench/cluster-docker.ts`.
// With TSMV_ETCD_METRICS=extensive (test/lab/etcd.ts) it adds each member's own view after the runs: its Txn time as
// its gRPC server measured it, its WAL fsync and backend commit times (means, ms), and whether it leads. Where the
// disks are: TSMV_ETCD_DATA_ROOT (etcd.ts) and TSMV_LAB_STATE_ROOT (multi-host.ts), e.g. /dev/shm for tmpfs.
import { performance } from 'node:perf_hooks';
import { post } from '../helpers/serve';
import { MultiHostLab } from '../lab/multi-host';

const IMAGE = process.env.TSMV_TEST_IMAGE ?? 'tsmacvlan-test/busybox:latest';
const VARIANTS = ['local', 'cluster'] as const;
type Variant = (typeof VARIANTS)[number];

function envInt(name: string, fallback: number): number {
  const value = Number(process.env[name]);
  return Number.isInteger(value) && value > 0 ? value : fallback;
}

function shuffled<T>(items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * (p / 100)))];
}

const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

/** RequestAddress over the socket, one at a time, the two pools interleaved. */
async function apiLatency(socket: string, rounds: number): Promise<Record<string, number>> {
  const ask = async (method: string, body: unknown) => {
    const { status, json } = await post(socket, `IpamDriver.${method}`, body);
    if (status !== 200) throw new Error(`${method}: ${json?.Err}`);
    return json;
  };
  const pools: Record<Variant, string> = {
    local: (await ask('RequestPool', { AddressSpace: 'local', Pool: '10.204.0.0/20', Options: { scope: 'host' } }))
      .PoolID,
    cluster: (await ask('RequestPool', { AddressSpace: 'local', Pool: '10.205.0.0/20' })).PoolID,
  };
  await ask('RequestAddress', { PoolID: pools.cluster }); // loads the subnet's view (one read and a watch)
  const times: Record<Variant, number[]> = { local: [], cluster: [] };
  for (let i = 0; i < rounds; i++) {
    for (const variant of shuffled(VARIANTS)) {
      const t0 = performance.now();
      await ask('RequestAddress', { PoolID: pools[variant] });
      times[variant].push(performance.now() - t0);
    }
  }
  return {
    rounds,
    localP50Ms: round(percentile(times.local, 50)),
    localP99Ms: round(percentile(times.local, 99)),
    clusterP50Ms: round(percentile(times.cluster, 50)),
    clusterP99Ms: round(percentile(times.cluster, 99)),
  };
}

/** Mean of a Prometheus summary or histogram `name` (with `labels` in its label set), in ms; undefined if absent. */
function meanMs(metrics: string, name: string, labels = ''): number | undefined {
  const value = (suffix: string) =>
    metrics
      .split('\n')
      .filter((line) => line.startsWith(`${name}_${suffix}`) && line.includes(labels))
      .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
  const count = value('count');
  return count > 0 ? round((value('sum') / count) * 1000, 3) : undefined;
}

/** Each etcd member's own figures over the whole run (TSMV_ETCD_METRICS=extensive gives the Txn times). */
async function etcdMembers(endpoints: string[]): Promise<Record<string, unknown>[]> {
  return Promise.all(
    endpoints.map(async (endpoint) => {
      const metrics = await (await fetch(`${endpoint}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
      return {
        endpoint,
        leader: /^etcd_server_is_leader 1$/m.test(metrics),
        txnMeanMs: meanMs(metrics, 'grpc_server_handling_seconds', 'grpc_method="Txn"'),
        txns: Number(/^grpc_server_handled_total\{grpc_code="OK",grpc_method="Txn".* (\d+)$/m.exec(metrics)?.[1] ?? 0),
        walFsyncMeanMs: meanMs(metrics, 'etcd_disk_wal_fsync_duration_seconds'),
        backendCommitMeanMs: meanMs(metrics, 'etcd_disk_backend_commit_duration_seconds'),
      };
    }),
  );
}

/** `docker run --rm` on each network, the two interleaved; medians and their ratio. */
async function dockerRuns(docker: (...args: string[]) => Promise<string>, rounds: number) {
  const times: Record<Variant, number[]> = { local: [], cluster: [] };
  for (const variant of VARIANTS) await docker('run', '--rm', '--network', `bench-${variant}`, IMAGE, 'true'); // warm
  for (let i = 0; i < rounds; i++) {
    for (const variant of shuffled(VARIANTS)) {
      const t0 = performance.now();
      await docker('run', '--rm', '--network', `bench-${variant}`, IMAGE, 'true');
      times[variant].push(performance.now() - t0);
    }
  }
  const local = percentile(times.local, 50);
  const cluster = percentile(times.cluster, 50);
  return {
    rounds,
    localMedianMs: round(local, 1),
    clusterMedianMs: round(cluster, 1),
    ratio: round(cluster / local, 3),
  };
}

async function main(): Promise<void> {
  const lab = await MultiHostLab.create(1, process.env.TSMV_ENGINE_BIN);
  try {
    const [host] = lab.hosts;
    const driver = host.driver;
    const network = (variant: Variant, subnet: string, extra: string[]) =>
      host.docker(
        ...['network', 'create', '-d', driver, '--ipam-driver', driver, '-o', 'parent=eth1'],
        ...['--subnet', subnet, ...extra, `bench-${variant}`],
      );
    await network('local', '10.202.0.0/24', ['--ipam-opt', 'scope=host']);
    await network('cluster', '10.203.0.0/24', []);
    const api = await apiLatency(`/run/docker/plugins/${driver}.sock`, envInt('BENCH_CLUSTER_API_ROUNDS', 300));
    const docker = await dockerRuns(host.docker, envInt('BENCH_CLUSTER_DOCKER_ROUNDS', 20));
    for (const variant of VARIANTS) await host.docker('network', 'rm', `bench-${variant}`);
    const etcd = process.env.TSMV_ETCD_METRICS ? { etcd: await etcdMembers(lab.etcd.endpoints) } : {};
    process.stdout.write(`\n${JSON.stringify({ api, docker, ...etcd })}\n`);
  } finally {
    await lab.destroy();
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
