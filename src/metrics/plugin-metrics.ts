// The plugin's metrics, in prom-client's registry. Everything but the request histogram is read at scrape time from
// what the layers already keep (counts, maps, their own duration histograms): the request path pays one observe.
// Label values are bounded: Docker's calls, network ids (short), subnets and ranges, fixed sets of states and reasons;
// never an endpoint or an address.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RequestObserver } from '../api/server';
import type { EtcdKv } from '../cluster/etcd';
import type { ClusterTable } from '../cluster/table';
import { FAILURE_REASONS } from '../dhcp/clients';
import type { DriverFigures } from '../driver/driver';
import type { RangeFill } from '../ipam/range-fill';
import { syncDurations } from '../state/sync-durations';
import { durationMetric } from './duration-metric';

export interface MetricSources {
  driver: { figures(): DriverFigures };
  ipam: { rangeFills(): RangeFill[] };
  /** The cluster IPAM (serve --etcd); without it the etcd metrics are not exported at all. */
  cluster?: { kv: Pick<EtcdKv, 'answers' | 'durations'>; table: Pick<ClusterTable, 'pendingReleases'> };
  version: string;
}

/** A plugin request: from the unix socket's Activate (a fraction of a millisecond) to a DHCP lease's many seconds. */
const REQUEST_BOUNDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** How long a scrape waits for etcd to answer its probe (etcd_up). */
const ETCD_PROBE_MS = 1000;
/**
 * prom-client's default gauges that Prometheus's conventions refuse (a gauge named `_total`; promtool check metrics
 * fails on them). Nothing is lost: their per-type gauges without the suffix stay.
 */
const MISNAMED_DEFAULTS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];
/** The length of network ids in labels: `docker network ls` shows the same 12 characters. */
const SHORT_ID = 12;

/** What one scrape read from the layers: each metric's collect takes its part. */
interface Reading {
  driver: DriverFigures;
  fills: RangeFill[];
  etcdUp: boolean;
}

export class PluginMetrics {
  readonly registry = new Registry();
  private reading: Reading | undefined;
  private readonly requests: Histogram<'method' | 'outcome'>;

  constructor(private readonly sources: MetricSources) {
    const registers = [this.registry];
    const read = () => this.reading;
    collectDefaultMetrics({ register: this.registry });
    for (const name of MISNAMED_DEFAULTS) this.registry.removeSingleMetric(name);
    new Gauge({
      name: 'tsmacvlan_build_info',
      help: 'The running tsmacvlan version (always 1)',
      labelNames: ['version'],
      registers,
    }).set({ version: sources.version }, 1);
    this.requests = new Histogram({
      name: 'tsmacvlan_request_duration_seconds',
      help: "Docker's requests to the plugin by call (method) and outcome (ok, error), from arrival to answer",
      labelNames: ['method', 'outcome'],
      buckets: REQUEST_BOUNDS,
      registers,
    });
    this.ipamMetrics(read);
    this.driverMetrics(read);
    this.dhcpMetrics(read);
    if (sources.cluster) this.clusterMetrics(sources.cluster, read);
    this.registry.registerMetric(
      durationMetric(
        'tsmacvlan_state_fsync_duration_seconds',
        'Syncs (fsync, fdatasync) of the state: records, IPAM journals, the cluster intent log and their directories',
        syncDurations,
      ),
    );
  }

  /** Counts one answered request: the one thing the request path pays for metrics. */
  readonly observe: RequestObserver = (method, ok, seconds) =>
    this.requests.observe({ method, outcome: ok ? 'ok' : 'error' }, seconds);

  /** The exposition text: the layers are read once, then every metric takes its part. */
  async scrape(): Promise<string> {
    const etcdUp = this.sources.cluster ? await this.sources.cluster.kv.answers(ETCD_PROBE_MS) : false;
    this.reading = { driver: this.sources.driver.figures(), fills: this.sources.ipam.rangeFills(), etcdUp };
    return this.registry.metrics();
  }

  private ipamMetrics(read: () => Reading | undefined): void {
    const labelNames = ['subnet', 'range', 'scope'] as const;
    const registers = [this.registry];
    new Gauge({
      name: 'tsmacvlan_ipam_addresses_allocated',
      help: 'Addresses of a dynamic range in use (scope host: on this host; cluster: on every host, from etcd)',
      labelNames,
      registers,
      collect() {
        this.reset();
        for (const f of read()?.fills ?? [])
          this.set({ subnet: f.subnet, range: f.range, scope: f.scope }, f.allocated);
      },
    });
    new Gauge({
      name: 'tsmacvlan_ipam_addresses_capacity',
      help: 'Assignable addresses of a dynamic range (the --ip-range, or the whole subnet without one)',
      labelNames,
      registers,
      collect() {
        this.reset();
        for (const f of read()?.fills ?? [])
          this.set({ subnet: f.subnet, range: f.range, scope: f.scope }, Number(f.capacity));
      },
    });
  }

  private driverMetrics(read: () => Reading | undefined): void {
    const registers = [this.registry];
    new Gauge({
      name: 'tsmacvlan_networks',
      help: 'Networks of this driver on this host',
      registers,
      collect() {
        this.set(read()?.driver.endpoints.size ?? 0);
      },
    });
    new Gauge({
      name: 'tsmacvlan_endpoints',
      help: 'Endpoints (containers attached) per network; network is the id as docker network ls shows it',
      labelNames: ['network'],
      registers,
      collect() {
        this.reset();
        for (const [id, count] of read()?.driver.endpoints ?? []) this.set({ network: id.slice(0, SHORT_ID) }, count);
      },
    });
    counterOf(
      this.registry,
      'tsmacvlan_kernel_resyncs_total',
      'Times link events were lost and every shim and parent was checked again',
      () => read()?.driver.resyncs,
    );
    counterOf(
      this.registry,
      'tsmacvlan_host_access_repairs_total',
      'Host-access shims found missing and made again',
      () => read()?.driver.shimsRemade,
    );
  }

  private dhcpMetrics(read: () => Reading | undefined): void {
    const registers = [this.registry];
    new Gauge({
      name: 'tsmacvlan_dhcp_leases',
      help: 'DHCP leases of endpoints by state: acquiring, bound, renewing, rebinding, lost (the container was cut off)',
      labelNames: ['state'],
      registers,
      collect() {
        const leases = read()?.driver.dhcp.leases;
        if (leases) for (const [state, count] of Object.entries(leases)) this.set({ state }, count);
      },
    });
    counterOf(
      this.registry,
      'tsmacvlan_dhcp_renewals_total',
      'DHCP renewals and rebinds the server granted for the same address',
      () => read()?.driver.dhcp.counts.renewals,
    );
    new Counter({
      name: 'tsmacvlan_dhcp_failures_total',
      help: 'DHCP leases not had or not kept, by reason: nak, timeout (no answer in time, or expired), declined (address in use), changed',
      labelNames: ['reason'],
      registers,
      collect() {
        const failures = read()?.driver.dhcp.counts.failures;
        this.reset();
        for (const reason of FAILURE_REASONS) this.inc({ reason }, failures?.[reason] ?? 0);
      },
    });
  }

  private clusterMetrics(cluster: NonNullable<MetricSources['cluster']>, read: () => Reading | undefined): void {
    const registers = [this.registry];
    new Gauge({
      name: 'tsmacvlan_etcd_up',
      help: `Whether etcd answered a linearizable read (quorum) within ${ETCD_PROBE_MS} ms at this scrape`,
      registers,
      collect() {
        this.set(read()?.etcdUp ? 1 : 0);
      },
    });
    this.registry.registerMetric(
      durationMetric(
        'tsmacvlan_etcd_request_duration_seconds',
        "The cluster table's etcd calls, retries within the deadline included, failures too",
        cluster.kv.durations,
      ),
    );
    new Gauge({
      name: 'tsmacvlan_cluster_releases_pending',
      help: 'Address releases saved here and not yet applied to etcd (it did not answer yet)',
      registers,
      collect() {
        this.set(cluster.table.pendingReleases);
      },
    });
  }
}

/** A counter whose count a layer keeps: set to it at each scrape. */
function counterOf(registry: Registry, name: string, help: string, count: () => number | undefined): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(count() ?? 0);
    },
  });
}
