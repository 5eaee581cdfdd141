// The state dir as the operator commands see it: its records and IPAM pools, read with the plugin's own readers but
// without its start-up writes (compaction, removing empty or temp files).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import type { EndpointRecord } from '../driver/endpoint-naming';
import type { NetworkRecord } from '../driver/network-options';
import { ENDPOINT_RECORDS, NETWORK_RECORDS } from '../driver/record-formats';
import { readSubnet } from '../ipam/journal';
import { watchedParentOf } from '../ipam/slaac-pool';
import { type FormatReport, stateFormatOf } from '../state/migrate';
import { filesEndingIn, readRecords, type Unreadable } from '../state/record-store';
import { rangeRows, type RangeRow } from './range-rows';
import { STATE_FILES } from './state-formats';

export interface StateSnapshot {
  stateDir: string;
  /** False when the state dir does not exist (no network was ever created with it). */
  exists: boolean;
  networks: NetworkRecord[];
  endpoints: EndpointRecord[];
  pools: PoolRow[];
  /** How full each dynamic range of the pools is (cluster-wide pools' figures need etcd: see range-rows.ts). */
  ranges: RangeRow[];
  /** Addresses of local pools that devices on the LAN answered for (probe before use); none when absent. */
  devices?: DeviceRow[];
  /** Files (or directories) that could not be read or are not records: the plugin refuses to start with them. */
  unreadable: Unreadable[];
  /** The state's formats (format.json): current, older (the plugin migrates it at start) or newer (refused). */
  format: FormatReport;
}

/** An IPAM pool, as the plugin would load it from its journal (see IpamService.listPools). */
export interface PoolRow {
  poolId: string;
  /** The subnet. */
  pool: string;
  /** The --ip-range, when there is one. */
  subPool: string | null;
  v6: boolean;
  /** Addresses the pool holds: gateway, aux addresses, containers. */
  allocated: number;
  /** Networks using the pool (identical RequestPool calls share it). */
  refs: number;
  /**
   * A pool of --ipam-opt ipv6=slaac: the parent whose router advertises its prefix, and what the router last said of
   * it (`valid`, or lost since `since`, ISO 8601); null for any other pool.
   */
  routerPrefix: {
    parent: string;
    state: 'valid' | 'deprecated' | 'withdrawn' | 'expired';
    since: string | null;
  } | null;
}

/** An address kept from containers because a device on the LAN answered for it when the IPAM probed it. */
export interface DeviceRow {
  subnet: string;
  address: string;
  /** The device that answered. */
  mac: string;
  /** When a probe first found it held (ISO 8601). */
  since: string;
  /** The pool whose probe found it; it is released with that pool. */
  poolId: string;
}

const SILENT = pino({ level: 'silent' });

/**
 * The IPAM pools as saved in `<stateDir>/ipam/<subnet>.jnl`, read with the plugin's own reader but without its
 * start-up writes (compaction, removing empty or temp files). A torn last line is ignored, as the plugin does.
 */
function readPools(
  stateDir: string,
  unreadable: Unreadable[],
): { pools: PoolRow[]; ranges: RangeRow[]; devices: DeviceRow[] } {
  const dir = join(stateDir, 'ipam');
  const rows: PoolRow[] = [];
  const ranges: RangeRow[] = [];
  const devices: DeviceRow[] = [];
  for (const file of filesEndingIn(dir, '.jnl', unreadable)) {
    const path = join(dir, file);
    try {
      const subnet = readSubnet(path, SILENT);
      if (!subnet) continue; // holds nothing (the plugin removes it at start)
      for (const pool of subnet.pools.values()) {
        rows.push({
          poolId: pool.id,
          pool: subnet.cidr.text,
          subPool: pool.range?.text ?? null,
          v6: subnet.v6,
          allocated: pool.allocated,
          refs: pool.refs,
          routerPrefix: routerPrefixOf(pool.options, subnet.v6, pool.prefixLost),
        });
      }
      ranges.push(...rangeRows(subnet));
      for (const value of [...subnet.devices].sort((x, y) => (x < y ? -1 : 1))) {
        const holder = subnet.taken.get(value);
        if (holder?.kind !== 'device') continue;
        const since = new Date(holder.since).toISOString();
        devices.push({
          subnet: subnet.cidr.text,
          address: subnet.text(value),
          mac: holder.mac,
          since,
          poolId: holder.pool.id,
        });
      }
    } catch (err) {
      unreadable.push({ file: path, error: (err as Error).message });
    }
  }
  return { pools: rows, ranges, devices };
}

function routerPrefixOf(
  options: Record<string, string>,
  v6: boolean,
  lost: { condition: 'deprecated' | 'withdrawn' | 'expired'; at: number } | undefined,
): PoolRow['routerPrefix'] {
  const parent = watchedParentOf(options, v6);
  if (parent === undefined) return null;
  return { parent, state: lost?.condition ?? 'valid', since: lost ? new Date(lost.at).toISOString() : null };
}

/**
 * The records of a state dir, read without writing anything: records and journals of older formats are brought up
 * to date in memory only (the plugin migrates the files at its start); those of newer formats are unreadable.
 */
export function readState(stateDir: string): StateSnapshot {
  const unreadable: Unreadable[] = [];
  let exists = true;
  try {
    readdirSync(stateDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') exists = false;
    else unreadable.push({ file: stateDir, error: (err as Error).message });
  }
  let format: FormatReport;
  try {
    format = stateFormatOf(stateDir, STATE_FILES);
  } catch (err) {
    unreadable.push({ file: join(stateDir, 'format.json'), error: (err as Error).message });
    format = { state: 'none', formats: null, writtenBy: null, message: (err as Error).message };
  }
  const networks = exists
    ? [...readRecords<NetworkRecord>(join(stateDir, 'networks'), NETWORK_RECORDS, unreadable).values()]
    : [];
  const endpoints = exists
    ? [...readRecords<EndpointRecord>(join(stateDir, 'endpoints'), ENDPOINT_RECORDS, unreadable).values()]
    : [];
  const { pools, ranges, devices } = exists ? readPools(stateDir, unreadable) : { pools: [], ranges: [], devices: [] };
  return {
    stateDir,
    exists,
    networks,
    endpoints,
    pools,
    ranges,
    ...(devices.length > 0 && { devices }),
    unreadable,
    format,
  };
}
