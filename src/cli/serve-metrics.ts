// `serve --metrics-address HOST:PORT` (or TSMACVLAN_METRICS_ADDRESS): where the metrics are served, if anywhere. The
// exporter, and prom-client with it, is loaded only when they are asked for: a plugin without metrics never loads it.
import type { Logger } from 'pino';
import type { RequestObserver } from '../api/server';
import type { ListenAddress, MetricsExporter } from '../metrics/exporter';
import type { MetricSources } from '../metrics/plugin-metrics';
import type { Flags } from './flags';
import { UsageError } from './usage';

export const METRICS_FLAG = '--metrics-address';

/** The flag, else the environment; undefined (no metrics) when neither is set or the variable is empty. */
export function metricsAddress(flags: Flags): ListenAddress | undefined {
  const text = flags.values.get(METRICS_FLAG) ?? (process.env.TSMACVLAN_METRICS_ADDRESS || undefined);
  return text === undefined ? undefined : parseListenAddress(text);
}

/** `HOST:PORT`, `[IPv6]:PORT`, or `:PORT` for every address of the host. */
export function parseListenAddress(text: string): ListenAddress {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]/]*)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port < 1 || port > 65535) {
    throw new UsageError(
      `${METRICS_FLAG} '${text}' is not HOST:PORT: give e.g. 127.0.0.1:9464 (this host's loopback), [::1]:9464, or :9464 (every address of the host)`,
    );
  }
  return { host: match[1] ?? (match[2] || undefined), port };
}

export interface MetricsStart {
  /** Loads the exporter and starts it listening; call it once the plugin's socket listens. */
  begin(): void;
  /** Settles once the exporter listens (or could not): the plugin's requests wait for it, its socket does not. */
  started: Promise<void>;
  observe: RequestObserver;
  close(): Promise<void>;
}

/**
 * The exporter, started only once the plugin's socket listens (begin): loading it (prom-client) takes the event
 * loop for a moment, and Docker gives a managed plugin only so long to make its socket.
 */
export function metricsAt(at: ListenAddress, sources: Omit<MetricSources, 'version'>, log: Logger): MetricsStart {
  let exporter: MetricsExporter | undefined;
  let begun = false;
  let begin!: () => void;
  const started = new Promise<void>((resolve) => (begin = resolve))
    .then(() => import('../metrics/exporter'))
    .then(({ startMetrics }) => startMetrics(at, sources, log))
    .then((running) => void (exporter = running));
  return {
    begin: () => ((begun = true), begin()),
    started,
    observe: (method, ok, seconds) => exporter?.observe(method, ok, seconds),
    close: async () => {
      if (begun) await started.catch(() => undefined);
      await exporter?.close();
    },
  };
}
