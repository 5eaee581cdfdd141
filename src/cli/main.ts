#!/usr/bin/env node
// Command line: `tsmacvlan serve` runs the plugin; `doctor` checks the host, `status` shows records against the kernel.
import { connect } from 'node:net';
import { existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import pino, { type Logger } from 'pino';
import { ETCD_FLAGS, type Flags, etcdSettings, location, parseDoctorArgs, parseFlags, parseStatusArgs } from './flags';
import { type EtcdSettings, EtcdKv } from '../cluster/etcd';
import { ClusterTable } from '../cluster/table';
import { doctor } from '../inspect/doctor/doctor';
import { NetworkDriver } from '../driver/driver';
import { IpamService } from '../ipam/service';
import { Links } from '../kernel/links';
import { describeRepair } from '../driver/reconcile';
import { buildServer, requestsInFlight } from '../api/server';
import { status } from '../inspect/status';
import { forget } from '../inspect/cluster';
import { instanceId, stateGroup } from '../state/instance';
import { migrateState, refuseNewerState, stateFormatOf } from '../state/migrate';
import { STATE_FILES } from '../inspect/state-formats';
import { crashPoint } from '../state/crash';
import { checkPatchedNetlink } from '../kernel/netlink-binding';

const USAGE = `usage: tsmacvlan serve [--socket PATH] [--state-dir DIR] [--log-level LEVEL] [ETCD]
       tsmacvlan gc [--dry-run] [--socket PATH] [--state-dir DIR]
       tsmacvlan gc --cluster --forget-instance ID [--dry-run] [--state-dir DIR] ETCD
       tsmacvlan doctor [--parent IF]... [--socket PATH] [--state-dir DIR] [--json] [ETCD]
       tsmacvlan status [--socket PATH] [--state-dir DIR] [--json] [ETCD]

  --socket PATH     unix socket Docker finds the plugin by; its file name is the driver name
                    (default $TSMACVLAN_SOCKET or /run/docker/plugins/tsmacvlan.sock)
  --state-dir DIR   where networks, endpoints and addresses are kept
                    (default $TSMACVLAN_STATE_DIR or /var/lib/tsmacvlan)
  --log-level LEVEL fatal, error, warn, info, debug or trace (default $LOG_LEVEL or info)

  ETCD: the cluster IPAM, for several Docker hosts on one LAN (each flag also $TSMACVLAN_ETCD, _PREFIX, _CA, ...)
  --etcd URL[,URL]  etcd endpoints: every new pool is cluster-wide (one subnet, one allocation table for all
                    hosts) unless --ipam-opt scope=host; without it addresses stay on this host
  --etcd-prefix P   key prefix shared by the hosts of one cluster (default /tsmacvlan)
  --etcd-ca FILE    CA of the etcd members (https:// endpoints); --etcd-cert FILE --etcd-key FILE: this
                    host's client certificate and key

  gc                repairs the kernel from the state, as the plugin does at every start: re-creates
                    parents it made, deletes its links that nothing owns (run it while the plugin is stopped)
  --dry-run         only prints what gc would repair (or, with --cluster, free)
  gc --cluster --forget-instance ID
                    frees every address instance ID (another host, gone for good: its state dir's
                    'instance' file, or the owners 'status --etcd' lists) holds in the cluster table.
                    Never run it for a host that may come back: it would keep using them

  doctor            checks this host, one line per check, OK/WARN/FAIL and what to do: privileges, kernel
                    support (tried in a throwaway network namespace), parents, the plugin's socket, the
                    state; exits 1 when a check FAILs. Changes nothing
  --parent IF       also check IF as a parent (repeatable); the parents of recorded networks are always checked
  status            the recorded networks, endpoints and address pools next to the host's links, and where
                    they drift (--socket names the instance: its links carry its driver name's device group).
                    Changes nothing
  --json            (doctor, status) machine-readable output
  (doctor, status with ETCD: also etcd's reachability, quorum and round trip; the cluster's subnets and who
  holds how many of their addresses)`;

interface ServeOptions {
  socket: string;
  stateDir: string;
  logLevel: string;
  etcd: EtcdSettings | undefined;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function parseServeArgs(args: string[]): ServeOptions {
  const flags = parseFlags(args, { values: ['--socket', '--state-dir', '--log-level', ...ETCD_FLAGS] }, USAGE);
  const logLevel = flags.values.get('--log-level') ?? (process.env.LOG_LEVEL || 'info');
  if (!LOG_LEVELS.includes(logLevel))
    throw new Error(`log level '${logLevel}' is not one of fatal, error, warn, info, debug, trace`);
  return { ...location(flags), logLevel, etcd: etcdSettings(flags) };
}

/** True when a live server answers on the socket (a second instance must not steal it). */
function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => (probe.destroy(), resolve(true)));
    probe.once('error', () => resolve(false));
  });
}

/** How long a stop (SIGTERM, SIGINT) may take; Docker and systemd wait longer before they SIGKILL. */
const STOP_DEADLINE_MS = 10_000;

async function serve(options: ServeOptions): Promise<void> {
  const log = pino({ level: options.logLevel, base: { pid: process.pid } });
  const netlinkBinding = checkPatchedNetlink();
  process.umask(0o077); // state readable by root only
  if (existsSync(options.socket)) {
    if (await socketInUse(options.socket)) throw new Error(`another server is already listening on ${options.socket}`);
    unlinkSync(options.socket);
  }
  mkdirSync(dirname(options.socket), { recursive: true });

  // Before anything reads the state: a state of older formats is migrated, one of newer formats refused.
  migrateState(options.stateDir, STATE_FILES, log);
  const links = new Links(stateGroup(options.stateDir, true), () => crashPoint('link-created'));
  const driver = new NetworkDriver(links, options.stateDir, log);
  const cluster = options.etcd && openCluster(options.etcd, options.stateDir, log);
  const ipam = new IpamService(options.stateDir, log, cluster?.table);
  // Listen at once, answer once reconciled: requests wait for the kernel to agree with the state.
  const ready = driver.reconcile();
  const app = buildServer({ driver, ipam }, log, ready);
  // Only root may talk to the plugin: the socket is created 0600 (a umask, so it is never briefly open to others).
  process.umask(0o177);
  await app.listen({ path: options.socket });
  process.umask(0o077);
  await ready;
  log.info(
    { socket: options.socket, stateDir: options.stateDir, networks: driver.listNetworks().length, netlinkBinding },
    'tsmacvlan ready',
  );

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
    await app.close(); // waits for requests in flight, removes the socket
    phase = 'saving IPAM state';
    await ipam.close();
    phase = 'closing the etcd connection';
    await cluster?.table.close();
    await cluster?.kv.close();
    phase = 'deleting endpoint links';
    await driver.close();
    links.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/** The etcd allocation table of this instance; opening it needs no etcd (requests that do fail until it answers). */
function openCluster(settings: EtcdSettings, stateDir: string, log: Logger): { kv: EtcdKv; table: ClusterTable } {
  const kv = new EtcdKv(settings);
  const instance = instanceId(stateDir, true)!;
  const table = ClusterTable.open({ kv, instance, stateDir: join(stateDir, 'cluster'), log });
  log.info({ endpoints: kv.endpoints, prefix: kv.prefix, instance }, 'cluster IPAM: addresses of new pools in etcd');
  return { kv, table };
}

/** `tsmacvlan gc`: the start-up reconciliation on its own; with --dry-run it changes nothing. */
async function gc(options: { socket: string; stateDir: string }, dryRun: boolean): Promise<void> {
  if (!dryRun && existsSync(options.socket) && (await socketInUse(options.socket))) {
    throw new Error(
      `the plugin is running on ${options.socket} and repairs at its own start; stop it first, or use --dry-run`,
    );
  }
  // gc reads older formats as they are (its only writes are removals) and leaves their migration to the plugin.
  refuseNewerState(options.stateDir, STATE_FILES);
  const format = stateFormatOf(options.stateDir, STATE_FILES);
  if (format.state === 'older') console.log(`note: the state is ${format.message}`);
  const links = new Links(stateGroup(options.stateDir), () => crashPoint('link-created'));
  try {
    const driver = new NetworkDriver(links, options.stateDir, pino({ level: 'silent' }));
    const repairs = await driver.reconcile({ dryRun });
    for (const repair of repairs) console.log(`${dryRun ? 'would ' : ''}${describeRepair(repair)}`);
    if (repairs.length === 0) console.log('nothing to repair');
  } finally {
    links.close();
  }
}

/** `tsmacvlan gc --cluster --forget-instance ID`: frees (or lists) what a host gone for good held in etcd. */
async function gcCluster(flags: Flags): Promise<void> {
  const id = flags.values.get('--forget-instance');
  if (!id)
    throw new Error(`gc --cluster needs --forget-instance ID: the instance whose host is gone for good\n${USAGE}`);
  const settings = etcdSettings(flags);
  if (!settings) throw new Error('gc --cluster needs --etcd URL[,URL...] (or TSMACVLAN_ETCD)');
  const dryRun = flags.switches.has('--dry-run');
  const forgotten = await forget(settings, instanceId(location(flags).stateDir), id, dryRun);
  for (const f of forgotten) {
    console.log(`${dryRun ? 'would free' : 'freed'} ${f.address} of ${f.subnet} (${f.kind}, ${f.ref})`);
  }
  console.log(
    forgotten.length === 0
      ? `instance ${id} holds nothing in the cluster table`
      : `${forgotten.length} ${dryRun ? 'would be freed' : 'freed'}`,
  );
}

async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  switch (command) {
    case 'serve':
      return serve(parseServeArgs(args));
    case 'doctor':
      process.exitCode = await doctor(parseDoctorArgs(args, USAGE));
      return;
    case 'status':
      process.exitCode = await status(parseStatusArgs(args, USAGE));
      return;
    case 'gc': {
      const flags = parseFlags(
        args,
        {
          values: ['--socket', '--state-dir', '--forget-instance', ...ETCD_FLAGS],
          switches: ['--dry-run', '--cluster'],
        },
        USAGE,
      );
      if (flags.switches.has('--cluster')) return gcCluster(flags);
      return gc(location(flags), flags.switches.has('--dry-run'));
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return;
    default:
      throw new Error(`unknown command '${command}'\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((err: Error) => {
  console.error(`tsmacvlan: ${err.message}`);
  process.exit(1);
});
