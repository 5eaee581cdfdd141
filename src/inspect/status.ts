// `tsmacvlan status`: what the state dir records and what the host's kernel has, side by side, and where they drift.
// Read-only: the state files are read directly, never through NetworkDriver or IpamService (their start-up repairs
// and compacts the state), and nothing is written.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { endpointLinkName, type EndpointRecord } from '../driver/endpoint-naming';
import { shimName } from '../driver/host-access';
import { readSubnet } from '../ipam/service';
import { Links } from '../kernel/links';
import { MODES, type NetworkRecord } from '../driver/network-options';
import { MARK_ENDPOINT, MARK_PREFIX, MARK_VLAN } from '../kernel/marks';
import { internalParentName } from '../driver/parents';
import { planRepairs } from '../driver/reconcile';
import { stateGroup } from '../state/instance';
import { driverName } from './driver-name';
import { type LinkInfo } from '../kernel/link-info';

export interface StateSnapshot {
  stateDir: string;
  /** False when the state dir does not exist (no network was ever created with it). */
  exists: boolean;
  networks: NetworkRecord[];
  endpoints: EndpointRecord[];
  pools: PoolRow[];
  /** Files (or directories) that could not be read or are not records: the plugin refuses to start with them. */
  unreadable: { file: string; error: string }[];
}

/**
 * What counts as drift between the records and the host's network namespace (the only one visible from here).
 * A link is this instance's when it carries its device group (mark.ts: derived from the driver name, i.e. the socket's
 * file name); its alias (`tsmacvlan:endpoint`...) only says to a person what it is. The part the plugin repairs itself
 * is exactly what its start-up reconciliation (and `tsmacvlan gc`) would do, `planRepairs` in reconcile.ts, so status
 * and gc never disagree:
 * - `parent-missing`: a network's parent link is gone. A parent the plugin made (VLAN, internal) is re-created at its
 *   next start; any other must come back by hand. Until then containers cannot join.
 * - `leaked-link`: a link of this instance that no record owns; the next start of the plugin deletes it. Also a link
 *   with a `tsmacvlan:*` alias in no instance's group (group 0: made by hand, or by a version before groups) that no
 *   record owns: nobody will delete it.
 * - `orphan-vlan`: the same for a VLAN sub-interface the plugin created: no network uses it any more.
 * Beyond what gc repairs:
 * - `shim-missing`: a host_access network's shim is gone while its parent is there (the running plugin re-makes it
 *   within moments; if it stays missing the plugin is not running or failed).
 * - `orphan-endpoint`: an endpoint record whose network record is missing.
 * NOT drift: a recorded endpoint whose link is absent from the host. That is the normal state of a running
 * container's endpoint (Docker moved the link into the container's namespace, which we cannot see), and also of an
 * endpoint created but not joined yet. A recorded endpoint whose link is on the host is normal between Join and the
 * container's start, and between the container's stop and DeleteEndpoint. Links in another instance's group are that
 * instance's business (another driver name, another state dir). Links named like the plugin's without its group or
 * alias are not its own.
 * A snapshot races the plugin: during a `docker network create/rm` a link can briefly exist without its record; rerun.
 */
export const DRIFT_KINDS = ['parent-missing', 'leaked-link', 'orphan-vlan', 'shim-missing', 'orphan-endpoint'] as const;
export type DriftKind = (typeof DRIFT_KINDS)[number];

export interface Drift {
  kind: DriftKind;
  /** The link name or the record id it is about. */
  subject: string;
  message: string;
  fix: string;
}

export interface NetworkRow {
  id: string;
  parent: string;
  parentPresent: boolean;
  mode: string;
  internal: boolean;
  /** The VLAN id when the parent is a VLAN sub-interface, and whether the plugin created it (and removes it). */
  vlan: { id: number; owned: boolean } | null;
  subnets: string[];
  hostAccess: string | null;
  endpoints: number;
}

export interface EndpointRow {
  id: string;
  networkId: string;
  /** The host-side link when it is in the host namespace; null when it is not (in a container, or not joined yet). */
  hostLink: string | null;
  /** `host`, `container` (not in the host namespace: normal for a running container), or `gone` (its parent is missing, so it cannot exist anywhere). */
  location: 'host' | 'container' | 'gone';
  mac: string;
  addresses: string[];
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
}

export interface StatusReport {
  version: 1;
  stateDir: string;
  /** The driver name (the socket's file name) Docker knows the plugin by. */
  driver: string;
  /** The device group marking this instance's links (from the state dir's instance id); null before its first start. */
  group: number | null;
  networks: NetworkRow[];
  endpoints: EndpointRow[];
  pools: PoolRow[];
  drift: Drift[];
  unreadable: { file: string; error: string }[];
}

const nonEmpty = { type: 'string', minLength: 1 } as const;

/** The schema of `tsmacvlan status --json` (JSON Schema draft-07). */
export const STATUS_JSON_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'tsmacvlan status',
  type: 'object',
  required: ['version', 'stateDir', 'driver', 'group', 'networks', 'endpoints', 'pools', 'drift', 'unreadable'],
  additionalProperties: false,
  properties: {
    version: { const: 1 },
    stateDir: nonEmpty,
    driver: nonEmpty,
    group: { type: ['integer', 'null'], minimum: 1, maximum: 2147483647 },
    networks: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'parent', 'parentPresent', 'mode', 'internal', 'vlan', 'subnets', 'hostAccess', 'endpoints'],
        additionalProperties: false,
        properties: {
          id: nonEmpty,
          parent: nonEmpty,
          parentPresent: { type: 'boolean' },
          mode: { enum: [...MODES] },
          internal: { type: 'boolean' },
          vlan: {
            oneOf: [
              { type: 'null' },
              {
                type: 'object',
                required: ['id', 'owned'],
                additionalProperties: false,
                properties: { id: { type: 'integer', minimum: 1, maximum: 4094 }, owned: { type: 'boolean' } },
              },
            ],
          },
          subnets: { type: 'array', items: nonEmpty },
          hostAccess: { type: ['string', 'null'] },
          endpoints: { type: 'integer', minimum: 0 },
        },
      },
    },
    endpoints: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'networkId', 'hostLink', 'location', 'mac', 'addresses'],
        additionalProperties: false,
        properties: {
          id: nonEmpty,
          networkId: nonEmpty,
          hostLink: { type: ['string', 'null'] },
          location: { enum: ['host', 'container', 'gone'] },
          mac: { type: 'string', pattern: '^[0-9a-f]{2}(:[0-9a-f]{2}){5}$' },
          addresses: { type: 'array', items: nonEmpty },
        },
      },
    },
    pools: {
      type: 'array',
      items: {
        type: 'object',
        required: ['poolId', 'pool', 'subPool', 'v6', 'allocated', 'refs'],
        additionalProperties: false,
        properties: {
          poolId: nonEmpty,
          pool: nonEmpty,
          subPool: { type: ['string', 'null'] },
          v6: { type: 'boolean' },
          allocated: { type: 'integer', minimum: 0 },
          refs: { type: 'integer', minimum: 1 },
        },
      },
    },
    drift: {
      type: 'array',
      items: {
        type: 'object',
        required: ['kind', 'subject', 'message', 'fix'],
        additionalProperties: false,
        properties: { kind: { enum: [...DRIFT_KINDS] }, subject: nonEmpty, message: nonEmpty, fix: nonEmpty },
      },
    },
    unreadable: {
      type: 'array',
      items: {
        type: 'object',
        required: ['file', 'error'],
        additionalProperties: false,
        properties: { file: nonEmpty, error: nonEmpty },
      },
    },
  },
} as const;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function networkProblem(value: unknown): string | undefined {
  if (!isObject(value)) return 'not a JSON object';
  for (const key of ['id', 'parent', 'mode'])
    if (typeof value[key] !== 'string' || value[key] === '') return `no '${key}'`;
  if (typeof value.ownsParent !== 'boolean') return `no 'ownsParent'`;
  if (!(MODES as readonly unknown[]).includes(value.mode)) return `mode '${String(value.mode)}' is not a macvlan mode`;
  return undefined;
}

function endpointProblem(value: unknown): string | undefined {
  if (!isObject(value)) return 'not a JSON object';
  for (const key of ['id', 'networkId', 'mac'])
    if (typeof value[key] !== 'string' || value[key] === '') return `no '${key}'`;
  return undefined;
}

/** The names in `dir` ending in `suffix`, sorted; none when it does not exist, and an entry in `unreadable` when it cannot be read. */
function filesEndingIn(dir: string, suffix: string, unreadable: StateSnapshot['unreadable']): string[] {
  try {
    return readdirSync(dir)
      .filter((file) => file.endsWith(suffix))
      .sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') unreadable.push({ file: dir, error: (err as Error).message });
    return [];
  }
}

/** Reads `<dir>/*.json` as RecordStore writes them (a leftover `.json.tmp` is a write that never happened: ignored). */
function readRecords<T>(
  dir: string,
  problemOf: (value: unknown) => string | undefined,
  unreadable: StateSnapshot['unreadable'],
): T[] {
  const records: T[] = [];
  for (const file of filesEndingIn(dir, '.json', unreadable)) {
    const path = join(dir, file);
    let value: unknown;
    try {
      value = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      unreadable.push({
        file: path,
        error: err instanceof SyntaxError ? `not valid JSON (${err.message})` : (err as Error).message,
      });
      continue;
    }
    const problem = problemOf(value);
    if (problem) unreadable.push({ file: path, error: `not a record: ${problem}` });
    else records.push(value as T);
  }
  return records;
}

const SILENT = pino({ level: 'silent' });

/**
 * The IPAM pools as saved in `<stateDir>/ipam/<subnet>.jnl`, read with the plugin's own reader but without its
 * start-up writes (compaction, removing empty or temp files). A torn last line is ignored, as the plugin does.
 */
function readPools(stateDir: string, unreadable: StateSnapshot['unreadable']): PoolRow[] {
  const dir = join(stateDir, 'ipam');
  const rows: PoolRow[] = [];
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
        });
      }
    } catch (err) {
      unreadable.push({ file: path, error: (err as Error).message });
    }
  }
  return rows;
}

/** The records of a state dir, read without writing anything. */
export function readState(stateDir: string): StateSnapshot {
  const unreadable: StateSnapshot['unreadable'] = [];
  let exists = true;
  try {
    readdirSync(stateDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') exists = false;
    else unreadable.push({ file: stateDir, error: (err as Error).message });
  }
  const networks = exists ? readRecords<NetworkRecord>(join(stateDir, 'networks'), networkProblem, unreadable) : [];
  const endpoints = exists ? readRecords<EndpointRecord>(join(stateDir, 'endpoints'), endpointProblem, unreadable) : [];
  const pools = exists ? readPools(stateDir, unreadable) : [];
  return { stateDir, exists, networks, endpoints, pools, unreadable };
}

/** The VLAN id of a parent: from the kernel when the link is there, else from its `<interface>.<id>` name. */
function vlanOf(network: NetworkRecord, link: LinkInfo | undefined): { id: number; owned: boolean } | null {
  if (network.parent === internalParentName(network.id)) return null;
  let id = link?.kind === 'vlan' ? link.vlanId : undefined;
  if (id === undefined && !link) {
    const match = /^.+\.(\d{1,4})$/.exec(network.parent);
    if (match && Number(match[1]) >= 1 && Number(match[1]) <= 4094) id = Number(match[1]);
  }
  return id === undefined ? null : { id, owned: network.ownsParent };
}

export const GC_ADVICE =
  "restart the plugin, or run 'tsmacvlan gc' while it is stopped ('tsmacvlan gc --dry-run' shows what it would do)";

/**
 * Drift between the records and the host's links (see DRIFT_KINDS). Pure: `hostLinks` is a dump of the host namespace,
 * `group` the device group of the instance the state belongs to.
 */
export function findDrift(
  state: Pick<StateSnapshot, 'networks' | 'endpoints'>,
  hostLinks: LinkInfo[],
  group: number | undefined,
): Drift[] {
  const drift: Drift[] = [];
  const byName = new Map(hostLinks.map((link) => [link.name, link]));
  const networkIds = new Set(state.networks.map((n) => n.id));
  const short = (id: string) => id.slice(0, 12);

  // One entry per missing parent, naming every network on it.
  const missing = new Map<string, NetworkRecord[]>();
  for (const network of state.networks) {
    if (byName.has(network.parent)) continue;
    missing.set(network.parent, [...(missing.get(network.parent) ?? []), network]);
  }
  for (const [parent, networks] of missing) {
    const owned = networks.some((n) => n.ownsParent);
    const internal = networks.every((n) => n.parent === internalParentName(n.id));
    const ids = networks.map((n) => short(n.id)).join(', ');
    const lost = state.endpoints.filter((e) => networks.some((n) => n.id === e.networkId)).length;
    drift.push({
      kind: 'parent-missing',
      subject: parent,
      message:
        `the ${internal ? 'internal parent' : owned ? 'VLAN parent' : 'parent'} '${parent}' of network(s) ${ids} does not exist: containers cannot join` +
        (lost ? `; the links of its ${lost} endpoint(s) went with it` : ''),
      fix: owned
        ? `${GC_ADVICE}: it re-creates '${parent}'` + (internal ? '' : ` (its base interface must exist)`)
        : `bring '${parent}' back under the same name, or remove the network(s) ('docker network rm') and create them again with an existing parent`,
    });
  }

  const orphan = (link: LinkInfo, fix: string, whose: string): Drift =>
    link.alias === MARK_VLAN || link.kind === 'vlan'
      ? {
          kind: 'orphan-vlan',
          subject: link.name,
          message: `VLAN '${link.name}'${link.vlanId ? ` (id ${link.vlanId})` : ''} is ${whose}, but no network uses it`,
          fix,
        }
      : {
          kind: 'leaked-link',
          subject: link.name,
          message: `link '${link.name}'${link.alias ? ` (${link.alias})` : ''} is ${whose}, but no record owns it`,
          fix,
        };

  for (const repair of planRepairs(hostLinks, group, state.networks, state.endpoints)) {
    const link = repair.action === 'delete' ? byName.get(repair.link) : undefined;
    // 'create' is a missing parent the plugin made: reported above; 'forget' is a record the next start rolls back.
    if (link)
      drift.push(orphan(link, `${GC_ADVICE}: it deletes it; or by hand: ip link del ${link.name}`, "the plugin's"));
  }
  // Marked by alias but in no instance's group: no start-up of any instance removes it.
  const owned = new Set([
    ...state.endpoints.map((e) => endpointLinkName(e.id)),
    ...state.networks.map((n) => n.parent),
    ...state.networks.filter((n) => n.hostAccess).map((n) => shimName(n.id)),
  ]);
  for (const link of hostLinks) {
    if (!link.alias?.startsWith(MARK_PREFIX) || link.group || owned.has(link.name)) continue;
    drift.push(
      orphan(
        link,
        `no tsmacvlan start removes it (it carries no instance's device group): ip link del ${link.name}`,
        "marked as tsmacvlan's by its alias, in no instance's device group",
      ),
    );
  }

  for (const network of state.networks) {
    if (!network.hostAccess || !byName.has(network.parent) || byName.has(shimName(network.id))) continue;
    drift.push({
      kind: 'shim-missing',
      subject: shimName(network.id),
      message: `network ${short(network.id)} has host_access=${network.hostAccess} but its shim '${shimName(network.id)}' does not exist: the host cannot reach its containers`,
      fix: 'start (or restart) the plugin: it re-makes the shim at start and whenever it disappears',
    });
  }

  for (const endpoint of state.endpoints) {
    if (networkIds.has(endpoint.networkId)) continue;
    drift.push({
      kind: 'orphan-endpoint',
      subject: endpoint.id,
      message: `endpoint ${short(endpoint.id)} belongs to network ${short(endpoint.networkId)}, which has no record`,
      fix: `with the plugin stopped, remove endpoints/${endpoint.id}.json from the state dir`,
    });
  }
  return drift;
}

/** The report: records, the host's links, and the drift between them, for the instance whose state is `stateDir`. */
export async function collectStatus(stateDir: string, driver: string, links: Links): Promise<StatusReport> {
  const group = stateGroup(stateDir);
  // Two reads, not one atomic snapshot: an operation in flight between them can show as drift for a moment.
  const hostLinks = await links.list();
  const state = readState(stateDir);
  const byName = new Map(hostLinks.map((link) => [link.name, link]));
  const networksById = new Map(state.networks.map((n) => [n.id, n]));
  const count = new Map<string, number>();
  for (const endpoint of state.endpoints) count.set(endpoint.networkId, (count.get(endpoint.networkId) ?? 0) + 1);

  const networks: NetworkRow[] = state.networks.map((network) => {
    const parent = byName.get(network.parent);
    return {
      id: network.id,
      parent: network.parent,
      parentPresent: parent !== undefined,
      mode: network.mode,
      internal: Boolean(network.internal),
      vlan: vlanOf(network, parent),
      subnets: [network.ipv4?.pool, network.ipv6?.pool].filter((pool): pool is string => Boolean(pool)),
      hostAccess: network.hostAccess ?? null,
      endpoints: count.get(network.id) ?? 0,
    };
  });

  const endpoints: EndpointRow[] = state.endpoints.map((endpoint) => {
    const name = endpointLinkName(endpoint.id);
    const link = byName.get(name);
    const onHost = link !== undefined && (link.group === group || link.alias === MARK_ENDPOINT);
    const network = networksById.get(endpoint.networkId);
    const parentGone = network !== undefined && !byName.has(network.parent);
    return {
      id: endpoint.id,
      networkId: endpoint.networkId,
      hostLink: onHost ? name : null,
      location: onHost ? 'host' : parentGone ? 'gone' : 'container',
      mac: endpoint.mac,
      addresses: [endpoint.ipv4, endpoint.ipv6].filter((a): a is string => Boolean(a)),
    };
  });

  return {
    version: 1,
    stateDir,
    driver,
    group: group ?? null,
    networks,
    endpoints,
    pools: state.pools,
    drift: findDrift(state, hostLinks, group),
    unreadable: state.unreadable,
  };
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [header, ...rows]
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The human-readable report: a table of networks, one of endpoints, one of address pools, then drift. */
export function formatStatus(report: StatusReport): string {
  const out: string[] = [];
  out.push(`state: ${report.stateDir}  driver: ${report.driver} (device group ${report.group})`, '');
  if (report.networks.length === 0) out.push('networks: none');
  else {
    out.push(
      table(
        ['NETWORK', 'PARENT', 'MODE', 'VLAN', 'SUBNETS', 'ENDPOINTS'],
        report.networks.map((n) => [
          n.id.slice(0, 12),
          n.parent +
            (n.parentPresent ? '' : ' (missing)') +
            (n.parent === internalParentName(n.id) ? ' (internal)' : ''),
          n.mode,
          n.vlan ? `${n.vlan.id} ${n.vlan.owned ? 'owned' : 'not owned'}` : '-',
          n.subnets.join(',') || '-',
          String(n.endpoints),
        ]),
      ),
    );
  }
  out.push('');
  if (report.endpoints.length === 0) out.push('endpoints: none');
  else {
    out.push(
      table(
        ['ENDPOINT', 'NETWORK', 'LINK', 'MAC', 'ADDRESSES'],
        report.endpoints.map((e) => [
          e.id.slice(0, 12),
          e.networkId.slice(0, 12),
          e.location === 'host'
            ? (e.hostLink as string)
            : e.location === 'gone'
              ? 'gone (parent missing)'
              : 'in container',
          e.mac,
          e.addresses.join(',') || '-',
        ]),
      ),
    );
  }
  out.push('');
  if (report.pools.length === 0) out.push('address pools: none');
  else {
    out.push(
      table(
        ['POOL', 'SUBNET', 'RANGE', 'ALLOCATED', 'NETWORKS'],
        report.pools.map((p) => [p.poolId, p.pool, p.subPool ?? '-', String(p.allocated), String(p.refs)]),
      ),
    );
  }
  out.push('');
  for (const entry of report.unreadable) out.push(`UNREADABLE  ${entry.file}: ${entry.error}`);
  if (report.drift.length === 0) out.push('drift: none');
  else {
    out.push(`drift: ${report.drift.length}`);
    for (const d of report.drift) out.push(`  ${d.kind}  ${d.message}`, `      fix: ${d.fix}`);
  }
  return out.join('\n');
}

export interface StatusOptions {
  /** Only its file name matters: the driver name, whose device group marks this instance's links. */
  socket: string;
  stateDir: string;
  json: boolean;
}

/** Prints the report; the exit code is 1 only when some state could not be read (drift is reported, not failed on: see doctor). */
export async function status(options: StatusOptions): Promise<number> {
  const links = new Links();
  try {
    const report = await collectStatus(options.stateDir, driverName(options.socket), links);
    console.log(options.json ? JSON.stringify(report, null, 2) : formatStatus(report));
    return report.unreadable.length ? 1 : 0;
  } finally {
    links.close();
  }
}
