// The operator's view of the cluster table: per subnet who holds how many addresses (status), whether etcd answers
// with quorum and how fast (doctor), and freeing what a host gone for good held (gc --cluster --forget-instance).
import { clusterSummary, forgetInstance, readViews, type Forgotten } from '../cluster/admin';
import { EtcdKv, type EtcdSettings } from '../cluster/etcd';
import type { OwnerCounts } from '../cluster/view';
import type { Check } from './doctor/check';
import { fillClusterRows, type RangeRow } from './range-rows';
import { MAC_FIELD } from './schema-fields';

export interface ClusterSubnetRow {
  subnet: string;
  /** Assignable addresses of the subnet, and how many are free across the cluster (strings: IPv6 sizes are huge). */
  size: string;
  used: number;
  free: string;
  /** Per instance id: its claims by kind. */
  owners: Record<string, OwnerCounts>;
  /** Addresses devices on the LAN answered for (absent when none). */
  devices?: { address: string; mac: string; owner: string }[];
}

export interface ClusterReport {
  endpoints: string[];
  prefix: string;
  /** This host's instance id (null before the plugin's first start). */
  instance: string | null;
  subnets: ClusterSubnetRow[];
  /** Why etcd could not be read; subnets is empty then. */
  error: string | null;
}

const counts = { type: 'integer', minimum: 0 } as const;
const decimal = { type: 'string', pattern: '^[0-9]+$' } as const;

/** The `cluster` member of `tsmacvlan status --json`. */
export const CLUSTER_JSON_SCHEMA = {
  oneOf: [
    { type: 'null' },
    {
      type: 'object',
      required: ['endpoints', 'prefix', 'instance', 'subnets', 'error'],
      additionalProperties: false,
      properties: {
        endpoints: { type: 'array', items: { type: 'string', minLength: 1 } },
        prefix: { type: 'string', minLength: 1 },
        instance: { type: ['string', 'null'] },
        error: { type: ['string', 'null'] },
        subnets: {
          type: 'array',
          items: {
            type: 'object',
            required: ['subnet', 'size', 'used', 'free', 'owners'],
            additionalProperties: false,
            properties: {
              subnet: { type: 'string', minLength: 1 },
              size: decimal,
              used: counts,
              free: decimal,
              owners: {
                type: 'object',
                additionalProperties: {
                  type: 'object',
                  required: ['container', 'gateway', 'aux'],
                  additionalProperties: false,
                  properties: { container: counts, gateway: counts, aux: counts, device: counts },
                },
              },
              devices: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['address', 'mac', 'owner'],
                  additionalProperties: false,
                  properties: {
                    address: { type: 'string', minLength: 1 },
                    mac: MAC_FIELD,
                    owner: { type: 'string', minLength: 1 },
                  },
                },
              },
            },
          },
        },
      },
    },
  ],
} as const;

/** Connects, runs `use`, always closes. */
async function withEtcd<T>(settings: EtcdSettings, use: (kv: EtcdKv) => Promise<T>): Promise<T> {
  const kv = new EtcdKv(settings);
  try {
    return await use(kv);
  } finally {
    await kv.close();
  }
}

/** The cluster table's subnets, and `ranges` (status's rows) with their cluster-wide pools' figures filled in. */
export async function collectCluster(
  settings: EtcdSettings,
  instance: string | undefined,
  ranges: RangeRow[] = [],
): Promise<{ cluster: ClusterReport; ranges: RangeRow[] }> {
  return withEtcd(settings, async (kv) => {
    const report = { endpoints: kv.endpoints, prefix: kv.prefix, instance: instance ?? null };
    try {
      const views = await readViews(kv);
      const subnets = clusterSummary(views).map((s) => ({ ...s, size: String(s.size), free: String(s.free) }));
      return { cluster: { ...report, subnets, error: null }, ranges: fillClusterRows(ranges, views, instance) };
    } catch (err) {
      return { cluster: { ...report, subnets: [], error: (err as Error).message }, ranges };
    }
  });
}

export function formatCluster(report: ClusterReport): string[] {
  const out = [`cluster: etcd ${report.endpoints.join(',')} prefix ${report.prefix}, this host ${report.instance}`];
  if (report.error) return [...out, `  UNREADABLE  ${report.error}`];
  if (report.subnets.length === 0) return [...out, '  no addresses held'];
  for (const s of report.subnets) {
    out.push(`  ${s.subnet}: ${s.used} of ${s.size} held, ${s.free} free`);
    for (const [owner, c] of Object.entries(s.owners).sort()) {
      const self = owner === report.instance ? ' (this host)' : '';
      const devices = c.device ? `, ${c.device} held by LAN devices (probed)` : '';
      out.push(`    ${owner}${self}: ${c.container} containers, ${c.gateway} gateway, ${c.aux} aux${devices}`);
    }
    for (const d of s.devices ?? [])
      out.push(`    ${d.address} held by a LAN device, MAC ${d.mac} (probed by ${d.owner})`);
  }
  return out;
}

/** Above this a cluster allocation is slow enough that `docker run` feels it. */
const SLOW_RTT_MS = 20;
const PROBES = 5;

/**
 * Doctor's etcd checks. Each member is asked alone for a linearizable read, which only a member in touch with a
 * quorum can answer: all answering is OK, some is a WARN (quorum holds while a majority does), none a FAIL.
 */
export async function etcdChecks(settings: EtcdSettings): Promise<Check[]> {
  const health = `etcdctl --endpoints=${settings.endpoints.join(',')} endpoint health`;
  const results = await Promise.all(
    settings.endpoints.map((endpoint) =>
      withEtcd({ ...settings, endpoints: [endpoint], timeoutMs: 3000 }, async (kv) => {
        const times: number[] = [];
        try {
          await kv.range(`${kv.prefix}/v1/doctor-probe`); // the connection is made here: not a round trip's cost
          for (let i = 0; i < PROBES; i++) {
            const t0 = process.hrtime.bigint();
            await kv.range(`${kv.prefix}/v1/doctor-probe`);
            times.push(Number(process.hrtime.bigint() - t0) / 1e6);
          }
          return { endpoint, times };
        } catch (err) {
          return { endpoint, error: (err as Error).message };
        }
      }),
    ),
  );
  const failed = results.filter((r) => r.error !== undefined);
  const answered = results.length - failed.length;
  const checks: Check[] = [];
  if (answered === 0) {
    checks.push({
      id: 'etcd',
      status: 'FAIL',
      message: `no etcd member answers with quorum: ${failed[0].error}`,
      fix: `start the members (a majority must run), check the endpoints and TLS files (--etcd-ca/--etcd-cert/--etcd-key): '${health}'`,
    });
    return checks;
  }
  checks.push(
    failed.length === 0
      ? { id: 'etcd', status: 'OK', message: `${answered} of ${results.length} etcd members answer with quorum` }
      : {
          id: 'etcd',
          status: 'WARN',
          message: `${answered} of ${results.length} etcd members answer; ${failed.map((f) => `${f.endpoint}: ${f.error}`).join('; ')}`,
          fix: `bring the others back before more fail (quorum needs a majority): '${health}'`,
        },
  );
  const times = results.flatMap((r) => r.times ?? []).sort((x, y) => x - y);
  const median = times[Math.floor((times.length - 1) / 2)];
  const rtt = `etcd round trip (linearizable read) median ${median.toFixed(1)} ms over ${times.length}`;
  checks.push(
    median <= SLOW_RTT_MS
      ? { id: 'etcd.rtt', status: 'OK', message: rtt }
      : {
          id: 'etcd.rtt',
          status: 'WARN',
          message: `${rtt}: each new container's address waits about that long`,
          fix: 'put the etcd members on fast disks (they fsync every write) and close to the hosts on the LAN',
        },
  );
  return checks;
}

/** gc --cluster --forget-instance: what instance `id` held, freed unless dryRun. */
export function forget(
  settings: EtcdSettings,
  self: string | undefined,
  id: string,
  dryRun: boolean,
): Promise<Forgotten[]> {
  return withEtcd(settings, (kv) => forgetInstance(kv, self ?? '', id, dryRun));
}
