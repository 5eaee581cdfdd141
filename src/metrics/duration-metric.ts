// A histogram whose counts a lower layer keeps itself (a DurationHistogram: an fsync's, an etcd call's), exposed to
// Prometheus as one when it scrapes. prom-client's own Histogram counts only what is observed through it, so this
// answers the registry's question (get) from the layer's numbers instead.
import type { Metric } from 'prom-client';
import type { DurationHistogram } from '../stats/duration-histogram';

interface Sample {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

export function durationMetric(name: string, help: string, source: DurationHistogram): Metric {
  const read = () => {
    const values: Sample[] = [];
    let cumulative = 0;
    source.bounds.forEach((le, i) => {
      cumulative += source.counts[i];
      values.push({ metricName: `${name}_bucket`, labels: { le }, value: cumulative });
    });
    values.push({ metricName: `${name}_bucket`, labels: { le: '+Inf' }, value: source.count });
    values.push({ metricName: `${name}_sum`, labels: {}, value: source.sum });
    values.push({ metricName: `${name}_count`, labels: {}, value: source.count });
    return { name, help, type: 'histogram', aggregator: 'sum', values };
  };
  // What the registry uses of a metric: its name, and get() (every value, named, with its labels); reset() is a no-op,
  // since the counts belong to the layer that keeps them.
  const metric = { name, help, type: 'histogram', aggregator: 'sum', get: async () => read(), reset: () => undefined };
  return metric as unknown as Metric;
}
