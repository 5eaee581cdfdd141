// The exposition the metrics build from what the layers keep: names, labels, values, and histograms kept as plain
// numbers below (DurationHistogram) exposed as Prometheus histograms.
import { describe, expect, it } from 'vitest';
import type { DriverFigures } from '../../../src/driver/driver';
import { PluginMetrics, type MetricSources } from '../../../src/metrics/plugin-metrics';
import { DurationHistogram } from '../../../src/stats/duration-histogram';

const figures = (): DriverFigures => ({
  endpoints: new Map([
    ['a'.repeat(64), 3],
    ['b'.repeat(64), 0],
  ]),
  resyncs: 2,
  shimsRemade: 5,
  dhcp: {
    leases: { acquiring: 1, bound: 4, renewing: 0, rebinding: 0, lost: 1 },
    counts: { renewals: 7, failures: { nak: 1, timeout: 2, declined: 0, changed: 0 } },
  },
});

const sources = (extra: Partial<MetricSources> = {}): MetricSources => ({
  driver: { figures },
  ipam: {
    rangeFills: () => [
      { subnet: '10.0.0.0/24', range: '10.0.0.128/25', scope: 'host', allocated: 9, capacity: 127n },
      { subnet: 'fd00::/64', range: 'fd00::/64', scope: 'host', allocated: 1, capacity: 2n ** 64n - 1n },
    ],
  },
  version: '9.9.9',
  ...extra,
});

/** The value of one sample line, `name{labels}` exactly as exposed. */
const value = (text: string, series: string) =>
  Number(
    text
      .split('\n')
      .find((line) => line.startsWith(`${series} `))
      ?.slice(series.length + 1),
  );

describe('the plugin metrics', () => {
  it('expose what the layers keep, with bounded labels', async () => {
    const metrics = new PluginMetrics(sources());
    metrics.observe('NetworkDriver.Join', true, 0.003);
    metrics.observe('NetworkDriver.Join', false, 0.2);
    const text = await metrics.scrape();
    expect(value(text, 'tsmacvlan_build_info{version="9.9.9"}')).toBe(1);
    const range = 'subnet="10.0.0.0/24",range="10.0.0.128/25",scope="host"';
    expect(value(text, `tsmacvlan_ipam_addresses_allocated{${range}}`)).toBe(9);
    expect(value(text, `tsmacvlan_ipam_addresses_capacity{${range}}`)).toBe(127);
    expect(value(text, 'tsmacvlan_ipam_addresses_capacity{subnet="fd00::/64",range="fd00::/64",scope="host"}')).toBe(
      2 ** 64,
    );
    expect(value(text, 'tsmacvlan_networks')).toBe(2);
    expect(value(text, `tsmacvlan_endpoints{network="${'a'.repeat(12)}"}`)).toBe(3);
    expect(value(text, `tsmacvlan_endpoints{network="${'b'.repeat(12)}"}`)).toBe(0);
    expect(value(text, 'tsmacvlan_dhcp_leases{state="bound"}')).toBe(4);
    expect(value(text, 'tsmacvlan_dhcp_leases{state="lost"}')).toBe(1);
    expect(value(text, 'tsmacvlan_dhcp_renewals_total')).toBe(7);
    expect(value(text, 'tsmacvlan_dhcp_failures_total{reason="timeout"}')).toBe(2);
    expect(value(text, 'tsmacvlan_dhcp_failures_total{reason="declined"}')).toBe(0);
    expect(value(text, 'tsmacvlan_kernel_resyncs_total')).toBe(2);
    expect(value(text, 'tsmacvlan_host_access_repairs_total')).toBe(5);
    expect(value(text, 'tsmacvlan_request_duration_seconds_count{method="NetworkDriver.Join",outcome="ok"}')).toBe(1);
    expect(
      value(text, 'tsmacvlan_request_duration_seconds_bucket{le="0.005",method="NetworkDriver.Join",outcome="ok"}'),
    ).toBe(1);
    expect(value(text, 'tsmacvlan_request_duration_seconds_count{method="NetworkDriver.Join",outcome="error"}')).toBe(
      1,
    );
    expect(text).toMatch(/^# TYPE tsmacvlan_state_fsync_duration_seconds histogram$/m);
    expect(text).toMatch(/^process_resident_memory_bytes \d+$/m);
    // Without etcd there is nothing to say about it.
    expect(text).not.toMatch(/tsmacvlan_etcd|tsmacvlan_cluster/);
  });

  it('count again from the layers at each scrape: a range gone is gone', async () => {
    let fills = sources().ipam.rangeFills();
    const metrics = new PluginMetrics(sources({ ipam: { rangeFills: () => fills } }));
    expect(await metrics.scrape()).toMatch(/tsmacvlan_ipam_addresses_allocated\{subnet="fd00::\/64"/);
    fills = fills.slice(0, 1);
    expect(await metrics.scrape()).not.toMatch(/subnet="fd00::\/64"/);
  });

  it("expose etcd's probe, its call durations as a histogram, and the pending releases, with --etcd", async () => {
    const durations = new DurationHistogram([0.001, 0.01]);
    for (const seconds of [0.0005, 0.004, 0.006, 2]) durations.observe(seconds);
    let up = true;
    const cluster = { kv: { answers: async () => up, durations }, table: { pendingReleases: 3 } };
    const metrics = new PluginMetrics(sources({ cluster }));
    let text = await metrics.scrape();
    expect(value(text, 'tsmacvlan_etcd_up')).toBe(1);
    expect(value(text, 'tsmacvlan_cluster_releases_pending')).toBe(3);
    expect(text).toContain(
      [
        '# TYPE tsmacvlan_etcd_request_duration_seconds histogram',
        'tsmacvlan_etcd_request_duration_seconds_bucket{le="0.001"} 1',
        'tsmacvlan_etcd_request_duration_seconds_bucket{le="0.01"} 3',
        'tsmacvlan_etcd_request_duration_seconds_bucket{le="+Inf"} 4',
        `tsmacvlan_etcd_request_duration_seconds_sum ${durations.sum}`,
        'tsmacvlan_etcd_request_duration_seconds_count 4',
      ].join('\n'),
    );
    up = false;
    text = await metrics.scrape();
    expect(value(text, 'tsmacvlan_etcd_up')).toBe(0);
  });
});
