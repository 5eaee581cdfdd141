// `tsmacvlan status`: what the state dir records and what the host's kernel has, side by side, and where they drift.
// Read-only: the state files are read directly, never through NetworkDriver or IpamService (their start-up repairs
// and compacts the state), and nothing is written.
import { endpointLinkName } from '../driver/endpoint-naming';
import { childMode } from '../driver/link-kind';
import type { NetworkRecord } from '../driver/network-options';
import { internalParentName } from '../driver/parents';
import type { LinkInfo } from '../kernel/link-info';
import { Links } from '../kernel/links';
import { MARK_ENDPOINT } from '../kernel/marks';
import { instanceId, stateGroup } from '../state/instance';
import type { EtcdSettings } from '../cluster/etcd';
import { type ClusterReport, collectCluster, formatCluster } from './cluster';
import { findDrift, type Drift } from './drift';
import { driverName } from './driver-name';
import { LEASE_HEADER, leaseCells, leaseRows, type LeaseRow } from './lease-rows';
import {
  SLAAC_HEADER,
  endpointPrefixLoss,
  lossNote,
  lostPoolPrefixes,
  networkPrefixLoss,
  slaacCells,
  slaacRows,
  type PrefixLossRow,
  type SlaacRow,
} from './slaac-rows';
import { RANGE_HEADER, rangeCells, type RangeRow } from './range-rows';
import { readState, type DeviceRow, type PoolRow } from './state-snapshot';
import type { ManagedPlugin } from './managed-plugins';
import { VERSION } from '../version';
import type { FormatReport } from '../state/migrate';

export interface NetworkRow {
  id: string;
  parent: string;
  parentPresent: boolean;
  /** The containers' links: macvlan or ipvlan, in `mode` (macvlan_mode or ipvlan_mode), with an ipvlan's `flag`. */
  kind: 'macvlan' | 'ipvlan';
  mode: string;
  flag: string | null;
  internal: boolean;
  /** The VLAN id when the parent is a VLAN sub-interface, and whether the plugin created it (and removes it). */
  vlan: { id: number; owned: boolean } | null;
  subnets: string[];
  hostAccess: string | null;
  endpoints: number;
  /** Its IPv6 pool's prefix (--ipam-opt ipv6=slaac), when the router no longer offers it. */
  prefixLost: PrefixLossRow | null;
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
  /** The prefix of its IPv6 address (SLAAC, or a pool of ipv6=slaac), when the router no longer offers it. */
  prefixLost: PrefixLossRow | null;
}

export interface StatusReport {
  version: 1;
  /** The version of the tsmacvlan that made the report (package.json's). */
  tsmacvlanVersion: string;
  stateDir: string;
  /** The driver name Docker knows the plugin by: a managed plugin's name, else the socket's file name. */
  driver: string;
  /** The managed plugin whose state this is, as Docker's plugin store has it; null for a service or given dirs. */
  plugin: { name: string; id: string; enabled: boolean } | null;
  /** The device group marking this instance's links (from the state dir's instance id); null before its first start. */
  group: number | null;
  networks: NetworkRow[];
  endpoints: EndpointRow[];
  pools: PoolRow[];
  /** How full each dynamic range is: the metrics' allocated and capacity figures. */
  ranges: RangeRow[];
  /** Addresses devices on the LAN answered for when the IPAM probed them: kept from containers (local pools). */
  devices: DeviceRow[];
  /** DHCP leases of endpoints on DHCP networks. */
  leases: LeaseRow[];
  /** SLAAC addresses of endpoints on DHCP networks with IPv6, and their prefixes' state. */
  slaac: SlaacRow[];
  drift: Drift[];
  unreadable: { file: string; error: string }[];
  /** The state's formats (format.json): `older` means the plugin migrates it at its next start, `newer` that it refuses it. */
  stateFormat: FormatReport;
  /** The cluster table (status --etcd), null without it. */
  cluster: ClusterReport | null;
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
  const lost = lostPoolPrefixes(state.pools);

  const networks: NetworkRow[] = state.networks.map((network) => {
    const parent = byName.get(network.parent);
    const link = childMode(network);
    return {
      id: network.id,
      parent: network.parent,
      parentPresent: parent !== undefined,
      kind: link.kind,
      mode: link.mode,
      flag: link.kind === 'ipvlan' ? link.flag : null,
      internal: Boolean(network.internal),
      vlan: vlanOf(network, parent),
      subnets: [network.ipv4?.pool, network.ipv6?.pool].filter((pool): pool is string => Boolean(pool)),
      hostAccess: network.hostAccess ?? null,
      endpoints: count.get(network.id) ?? 0,
      prefixLost: networkPrefixLoss(network, lost),
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
      prefixLost: endpointPrefixLoss(endpoint, network, lost),
    };
  });

  return {
    version: 1,
    tsmacvlanVersion: VERSION,
    stateDir,
    driver,
    plugin: null,
    group: group ?? null,
    networks,
    endpoints,
    pools: state.pools,
    ranges: state.ranges,
    devices: state.devices ?? [],
    leases: leaseRows(state.endpoints),
    slaac: slaacRows(state.endpoints),
    drift: findDrift(state, hostLinks, group),
    unreadable: state.unreadable,
    stateFormat: state.format,
    cluster: null,
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

/** A pool of ipv6=slaac: " (router on eth1)", or with its loss: " (router on eth1: withdrawn since …)". */
function routerNote({ routerPrefix: r }: PoolRow): string {
  if (!r) return '';
  return r.state === 'valid' ? ` (router on ${r.parent})` : ` (router on ${r.parent}: ${r.state} since ${r.since})`;
}

/** The human-readable report: a table of networks, one of endpoints, one of address pools, DHCP leases, then drift. */
export function formatStatus(report: StatusReport): string {
  const out: string[] = [];
  const plugin = report.plugin ? ` (managed plugin, ${report.plugin.enabled ? 'enabled' : 'disabled'})` : '';
  out.push(
    `tsmacvlan ${report.tsmacvlanVersion}  state: ${report.stateDir}  driver: ${report.driver}${plugin} (device group ${report.group})`,
  );
  out.push(`state format: ${report.stateFormat.message}`, '');
  if (report.networks.length === 0) out.push('networks: none');
  else {
    out.push(
      table(
        ['NETWORK', 'PARENT', 'KIND', 'MODE', 'VLAN', 'SUBNETS', 'ENDPOINTS'],
        report.networks.map((n) => [
          n.id.slice(0, 12),
          n.parent +
            (n.parentPresent ? '' : ' (missing)') +
            (n.parent === internalParentName(n.id) ? ' (internal)' : ''),
          n.kind,
          n.flag ? `${n.mode} ${n.flag}` : n.mode,
          n.vlan ? `${n.vlan.id} ${n.vlan.owned ? 'owned' : 'not owned'}` : '-',
          (n.subnets.join(',') || '-') + lossNote(n.prefixLost),
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
          (e.addresses.join(',') || '-') + lossNote(e.prefixLost),
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
        report.pools.map((p) => [
          p.poolId,
          p.pool + routerNote(p),
          p.subPool ?? '-',
          String(p.allocated),
          String(p.refs),
        ]),
      ),
    );
  }
  out.push('');
  if (report.ranges.length) out.push(table(RANGE_HEADER, rangeCells(report.ranges)), '');
  if (report.devices.length) {
    const rows = report.devices.map((d) => [d.address, d.subnet, d.mac, d.since, d.poolId]);
    out.push(table(['HELD BY A LAN DEVICE', 'SUBNET', 'MAC', 'SINCE', 'POOL'], rows), '');
  }
  if (report.leases.length) out.push(table(LEASE_HEADER, leaseCells(report.leases)), '');
  if (report.slaac.length) out.push(table(SLAAC_HEADER, slaacCells(report.slaac)), '');
  if (report.cluster) out.push(...formatCluster(report.cluster), '');
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
  /** The managed plugin whose state this is (found in Docker's plugin store). */
  plugin?: ManagedPlugin;
  /** How the CLI chose the socket and state dir, in a sentence. */
  found?: string;
  /** The cluster table's etcd (--etcd): its subnets are shown too. */
  etcd?: EtcdSettings;
}

/**
 * Prints the report; the exit code is 1 only when some state could not be read, or is of a newer format (drift is
 * reported, not failed on: see doctor).
 */
export async function status(options: StatusOptions): Promise<number> {
  const links = new Links();
  try {
    const plugin = options.plugin;
    const report = await collectStatus(options.stateDir, plugin?.name ?? driverName(options.socket), links);
    if (plugin) report.plugin = { name: plugin.name, id: plugin.id, enabled: plugin.enabled };
    if (options.etcd)
      ({ cluster: report.cluster, ranges: report.ranges } = await collectCluster(
        options.etcd,
        instanceId(options.stateDir),
        report.ranges,
      ));
    console.log(options.json ? JSON.stringify(report, null, 2) : formatStatus(report));
    return report.unreadable.length || report.cluster?.error || report.stateFormat.state === 'newer' ? 1 : 0;
  } finally {
    links.close();
  }
}
