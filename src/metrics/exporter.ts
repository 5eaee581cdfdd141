// `serve --metrics-address`: GET /metrics in Prometheus's text format on a TCP address of its own, apart from Docker's
// unix socket. Loaded only when metrics are asked for (the cli imports this module lazily), so a plugin without them
// never loads prom-client.
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { Logger } from 'pino';
import type { RequestObserver } from '../api/server';
import { softwareVersion } from '../state/software-version';
import { type MetricSources, PluginMetrics } from './plugin-metrics';

export interface ListenAddress {
  /** Undefined: every address of the host. */
  host: string | undefined;
  port: number;
}

export interface MetricsExporter {
  /** Where it listens, as `host:port` (the port the kernel gave when 0 was asked). */
  address: string;
  observe: RequestObserver;
  close(): Promise<void>;
}

/** Listens on `at` and serves the metrics of `sources`; rejects, saying what to do, when it cannot listen there. */
export async function startMetrics(
  at: ListenAddress,
  sources: Omit<MetricSources, 'version'>,
  log: Logger,
): Promise<MetricsExporter> {
  const metrics = new PluginMetrics({ ...sources, version: softwareVersion() });
  const server = createServer((request, response) => answer(request, response, metrics, log));
  const asked = `${at.host === undefined ? '' : at.host.includes(':') ? `[${at.host}]` : at.host}:${at.port}`;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `cannot serve metrics on ${asked} (${err.code ?? err.message}): ${
            err.code === 'EADDRINUSE'
              ? 'something else listens there; give another --metrics-address'
              : 'give an address of this host, e.g. --metrics-address 127.0.0.1:9464'
          }`,
        ),
      ),
    );
    server.listen({ host: at.host, port: at.port }, resolve);
  });
  server.on('error', (err) => log.error({ err }, 'metrics listener error'));
  const bound = server.address();
  const address =
    bound && typeof bound === 'object'
      ? `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`
      : asked;
  log.info({ address }, 'serving metrics at /metrics');
  return {
    address,
    observe: metrics.observe,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function answer(request: IncomingMessage, response: ServerResponse, metrics: PluginMetrics, log: Logger): void {
  const path = (request.url ?? '/').split('?')[0];
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('only GET /metrics\n');
  } else if (path === '/metrics') {
    metrics.scrape().then(
      (text) => response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (err: Error) => {
        log.error({ err }, 'metrics scrape failed');
        response.writeHead(500, { 'content-type': 'text/plain' }).end(`scrape failed: ${err.message}\n`);
      },
    );
  } else if (path === '/') {
    response.writeHead(200, { 'content-type': 'text/plain' }).end('tsmacvlan: metrics at /metrics\n');
  } else {
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
  }
}
