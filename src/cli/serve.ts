// `tsmacvlan serve`: the plugin itself, Docker's network and IPAM driver on a unix socket, until SIGTERM or SIGINT.
import { join } from 'node:path';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { etcdSettings, location, parseCommandFlags } from './flags';
import type { EtcdKv, EtcdSettings } from '../cluster/etcd';
import type { ClusterTable } from '../cluster/table';
import { VERSION } from '../version';
import { EarlySocket } from './early-socket';
import { synopsis, UsageError } from './usage';
import type { ListenAddress } from '../metrics/exporter';
import { metricsAddress, metricsAt } from './serve-metrics';

/** The server's modules: loaded once the socket listens (early-socket.ts says why). */
type Parts = typeof import('./serve-parts');

interface ServeOptions {
  socket: string;
  stateDir: string;
  logLevel: string;
  etcd: EtcdSettings | undefined;
  metrics: ListenAddress | undefined;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function parseServeArgs(args: string[]): ServeOptions {
  const flags = parseCommandFlags('serve', args);
  const logLevel = flags.values.get('--log-level') ?? (process.env.LOG_LEVEL || 'info');
  if (!LOG_LEVELS.includes(logLevel))
    throw new UsageError(
      `log level '${logLevel}' is not one of fatal, error, warn, info, debug, trace`,
      synopsis('serve'),
    );
  return { ...location(flags), logLevel, etcd: etcdSettings(flags), metrics: metricsAddress(flags) };
}

/** How long a stop (SIGTERM, SIGINT) may take; Docker and systemd wait longer before they SIGKILL. */
const STOP_DEADLINE_MS = 10_000;

/** Parses the flags and starts the plugin; resolves once it listens and has reconciled the kernel with its state. */
export async function serveCommand(args: string[]): Promise<void> {
  const options = parseServeArgs(args);
  try {
    await serve(options);
  } catch (err) {
    if (process.pid === 1) await stayUntilStopped(err as Error);
    throw err;
  }
}

/** How long a failed start of the managed plugin waits for Docker to stop it: Docker gives up on the socket at ~12 s. */
const FAILED_START_STAY_MS = 30_000;

/**
 * A failed start as the managed plugin (PID 1 of its container) gives its socket up and says why at once, then
 * stays until Docker stops it.
 * Docker restarts a plugin that exits while `docker plugin enable` still waits for its socket, and those restarts
 * race the operator's next enable ("cannot start a container that has stopped"); one that stays, without a socket,
 * is stopped once Docker gives up waiting, and the enable fails once and cleanly. PID 1 ignores a signal it has no
 * handler for, so this one handles SIGTERM and SIGINT.
 */
async function stayUntilStopped(err: Error): Promise<never> {
  EarlySocket.abandonUnclaimed();
  console.error(`tsmacvlan: ${err.message}`);
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, FAILED_START_STAY_MS);
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => (clearTimeout(timer), resolve()));
  });
  process.exit(1);
}

async function serve(options: ServeOptions): Promise<void> {
  process.umask(0o077); // state readable by root only
  // A state a newer version wrote is refused before the socket exists. Docker counts a plugin whose socket answers
  // its dial as enabled and restarts it each time it exits; with no socket, `docker plugin enable` fails and stops.
  const { refuseNewerState } = await import('../state/migrate');
  refuseNewerState(options.stateDir, (await import('../inspect/state-formats')).STATE_FILES);
  const early = await EarlySocket.bind(options.socket);
  const { default: pino } = await import('pino');
  const log = pino({ level: options.logLevel, base: { pid: process.pid } });
  const parts: Parts = await import('./serve-parts');
  const { NetworkDriver, IpamService, Links, buildServer, requestsInFlight, PacketTap, Neighbourhood } = parts;
  const { stateGroup, migrateState, STATE_FILES, crashPoint, openDhcpClients, openDhcp6Clients } = parts;
  const netlinkBinding = parts.checkPatchedNetlink();

  // Before anything reads the state: a state of older formats is migrated, one of newer formats refused.
  migrateState(options.stateDir, STATE_FILES, log);
  const links = new Links(stateGroup(options.stateDir, true), () => crashPoint('link-created'));
  // One packet socket for DHCP and the address probes, opened at the first need of either.
  const tap = new PacketTap((error) => log.error({ error: error.message }, 'packet socket error'));
  const neighbourhood = new Neighbourhood({ tap, links, log });
  const routerAdverts = new parts.RouterAdverts(tap, log);
  // The driver tells the IPAM of each deleted endpoint's addresses, whose releases Docker owes (ipam/release-dues.ts).
  const driver = new NetworkDriver(links, options.stateDir, log, {
    openDhcp: (l) => openDhcpClients(l, tap),
    openDhcp6: (l) => openDhcp6Clients(l, tap),
    neighbourhood,
    routerAdverts,
    releaseDue: (subnet, address, addressSpace): Promise<void> => ipam.releaseDue(subnet, address, addressSpace),
  });
  const cluster = options.etcd ? await openCluster(parts, options.etcd, options.stateDir, log) : undefined;
  // The IPAM asks the driver's records before it frees an address Docker took and forgot (ipam/forgotten-takes.ts).
  const ipam = new IpamService(options.stateDir, log, cluster?.table, neighbourhood, driver.addresses);
  const metrics = options.metrics && metricsAt(options.metrics, { driver, ipam, cluster }, log);
  // Listen at once, answer once reconciled: requests wait for the kernel to agree with the state (and for the metrics
  // listener, when asked for: a plugin that cannot serve them does not start), and the log says so before any answer.
  const ready = Promise.all([driver.reconcile(), metrics?.started]).then(() =>
    log.info(
      {
        version: VERSION,
        socket: options.socket,
        stateDir: options.stateDir,
        networks: driver.listNetworks().length,
        netlinkBinding,
      },
      'tsmacvlan ready',
    ),
  );
  const app = buildServer({ driver, ipam }, log, ready, metrics?.observe);
  await app.ready(); // its plugins loaded before the socket changes hands: Docker then waits least
  const held = await early.handOver();
  // Only root may talk to the plugin: the socket is created 0600 (a umask, so it is never briefly open to others).
  process.umask(0o177);
  await app.listen({ path: options.socket });
  process.umask(0o077);
  held((socket: Socket) => (app.server.emit('connection', socket), socket.resume())); // those of Docker's waits
  metrics?.begin();
  // A start that fails gives its socket back: Docker then finds no plugin there rather than one that answers errors.
  await ready.catch(async (err: unknown) => {
    await app.close();
    throw err;
  });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: finishing requests in flight');
    // A stop must not hang (one was seen once in testing, not reproduced): the state is crash-safe, so after the
    // deadline the process exits as a crash would and the next start finishes or undoes what was under way.
    let phase = 'finishing requests';
    setTimeout(() => {
      log.error(
        { phase, seconds: STOP_DEADLINE_MS / 1000, requestsInFlight: requestsInFlight(app) },
        'stop did not finish in time; exiting anyway (the next start repairs)',
      );
      process.exit(1);
    }, STOP_DEADLINE_MS).unref();
    await metrics?.close();
    await app.close(); // waits for requests in flight, removes the socket
    phase = 'saving IPAM state';
    await ipam.close();
    phase = 'closing the etcd connection';
    await cluster?.table.close();
    await cluster?.kv.close();
    phase = 'deleting endpoint links';
    neighbourhood.close();
    routerAdverts.close();
    await driver.close();
    links.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/** The etcd allocation table of this instance; opening it needs no etcd (requests that do fail until it answers). */
async function openCluster(
  { instanceId }: Parts,
  settings: EtcdSettings,
  stateDir: string,
  log: Logger,
): Promise<{ kv: EtcdKv; table: ClusterTable }> {
  const [{ EtcdKv }, { ClusterTable }] = await Promise.all([import('../cluster/etcd'), import('../cluster/table')]);
  const kv = new EtcdKv(settings);
  const instance = instanceId(stateDir, true)!;
  const table = ClusterTable.open({ kv, instance, stateDir: join(stateDir, 'cluster'), log });
  log.info({ endpoints: kv.endpoints, prefix: kv.prefix, instance }, 'cluster IPAM: addresses of new pools in etcd');
  return { kv, table };
}
