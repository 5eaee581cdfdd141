// A network: the options a user gave with `docker network create -o`, checked and turned into a record.
import { isIPv4 } from 'node:net';
import { Address4 } from 'ip-address';
import { PluginError } from '../errors';
import type { ChildMode, IpvlanFlag, IpvlanMode, MacvlanMode, VlanProtocol } from '../kernel/link-info';
import { isJsonObject } from '../state/record-store';
import { parseDhcpOptions, type DhcpSettings } from './dhcp-network';
import { hostAccessProblem, IPVLAN_FLAGS, IPVLAN_MODES, MACVLAN_MODES, type LinkSettings } from './link-kind';

export const OPTIONS = [
  'parent',
  'macvlan_mode',
  'ipvlan_mode',
  'ipvlan_flag',
  'mtu',
  'macvlan_source',
  'host_access',
  'vlan_protocol',
  'dhcp',
  'dhcp_timeout',
] as const;
/**
 * What `docker network create --opt com.docker.network.driver.mtu=N` sends (Docker's own MTU option, honoured by its
 * bridge and overlay drivers): the network's MTU, as `-o mtu=N`.
 */
export const DOCKER_MTU_OPTION = 'com.docker.network.driver.mtu';
export const VLAN_PROTOCOLS: readonly VlanProtocol[] = ['802.1q', '802.1ad'];

/** Linux caps interface names at 15 bytes (IFNAMSIZ - 1). */
export const IFNAME_MAX = 15;

export interface IpData {
  pool: string; // CIDR
  gateway?: string; // bare address
  /** The network's IPAM address space: tells the IPAM whether it serves the network (see IpamService.releaseDue). */
  addressSpace?: string;
  /**
   * The network's aux addresses (--aux-address), bare: taken from its IPAM for no endpoint. Absent from records made
   * before they were kept, where they are unknown (an optional field, as addressSpace: docs/state.md).
   */
  aux?: string[];
}

/** A network as the state keeps it: its own fields, and the kind and mode of its links (see LinkSettings). */
export type NetworkRecord = NetworkFields & LinkSettings;

export interface NetworkFields {
  id: string;
  /** Link the endpoints hang off; for internal networks without a parent, one this plugin made. */
  parent: string;
  /** The parent was created by this plugin (VLAN sub-interface or internal parent) and goes with the last network on it. */
  ownsParent: boolean;
  mtu?: number;
  internal: boolean;
  ipv4?: IpData;
  ipv6?: IpData;
  /** The host's own address on the network, held by a shim link (see host-access.ts). */
  hostAccess?: string;
  /** The tag protocol of a VLAN parent this plugin creates (802.1ad: the outer tag of QinQ). */
  vlanProtocol?: VlanProtocol;
  /** Endpoints lease their addresses from the LAN's DHCP server (see dhcp-network.ts). */
  dhcp?: DhcpSettings;
  /** Saved by a CreateNetwork not answered yet; a record still carrying it at start is rolled back. */
  unanswered?: true;
}

export interface NetworkOptions {
  parent?: string;
  /** The links the endpoints get: macvlans (macvlan_mode, the default) or ipvlans (ipvlan_mode, ipvlan_flag). */
  link: ChildMode;
  mtu?: number;
  hostAccess?: string;
  vlanProtocol?: VlanProtocol;
  dhcp?: DhcpSettings;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** Parses the driver options (`-o key=value`). Throws a PluginError naming the option, the value and what is allowed. */
export function parseNetworkOptions(generic: Record<string, unknown>): NetworkOptions {
  for (const key of Object.keys(generic)) {
    if (key.startsWith('com.docker.network.')) continue; // Docker's own keys ride along here (driver.mtu: below)
    if (!(OPTIONS as readonly string[]).includes(key)) {
      throw new PluginError(`unknown option '${key}'; tsmacvlan accepts: ${OPTIONS.join(', ')}`);
    }
  }
  const text = (key: string): string | undefined => {
    const value = generic[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'string')
      throw new PluginError(`option '${key}' must be a string, got ${JSON.stringify(value)}`);
    return value;
  };

  const options: NetworkOptions = {
    link: parseLink(text('macvlan_mode'), text('ipvlan_mode'), text('ipvlan_flag'), text('macvlan_source')),
  };
  const parent = text('parent');
  if (parent !== undefined) options.parent = checkLinkName(parent, 'parent');

  const mtu = networkMtu(text('mtu'), text(DOCKER_MTU_OPTION));
  if (mtu !== undefined) options.mtu = mtu;
  const hostAccess = text('host_access');
  if (hostAccess !== undefined) options.hostAccess = parseHostAccess(hostAccess, options.link);
  const vlanProtocol = text('vlan_protocol');
  if (vlanProtocol !== undefined) options.vlanProtocol = parseVlanProtocol(vlanProtocol, options.parent);
  const dhcp = parseDhcpOptions(text('dhcp'), text('dhcp_timeout'));
  if (dhcp) options.dhcp = dhcp;
  return options;
}

/** `-o mtu`, or Docker's `com.docker.network.driver.mtu`; both only when they agree. */
function networkMtu(mtu: string | undefined, dockerMtu: string | undefined): number | undefined {
  if (mtu !== undefined && dockerMtu !== undefined && mtu !== dockerMtu) {
    throw new PluginError(
      `mtu=${mtu} and ${DOCKER_MTU_OPTION}=${dockerMtu} disagree; give the network's MTU once (either option)`,
    );
  }
  const given = mtu ?? dockerMtu;
  if (given === undefined) return undefined;
  if (!/^\d{1,5}$/.test(given) || Number(given) < 68) {
    const name = mtu !== undefined ? 'mtu' : DOCKER_MTU_OPTION;
    throw new PluginError(`${name} '${given}' is not valid; give a whole number from 68 up to the parent's MTU`);
  }
  return Number(given);
}

/**
 * The kind and mode of the network's links: macvlan_mode (bridge when nothing is given), or ipvlan_mode with
 * ipvlan_flag (Docker's own ipvlan driver's names and values).
 */
function parseLink(
  macvlanMode: string | undefined,
  ipvlanMode: string | undefined,
  ipvlanFlag: string | undefined,
  source: string | undefined,
): ChildMode {
  if (macvlanMode !== undefined && ipvlanMode !== undefined)
    throw new PluginError(
      `macvlan_mode and ipvlan_mode cannot both be given: a network's containers get either macvlans (a MAC each) or ipvlans (the parent's MAC); keep one`,
    );
  if (ipvlanMode === undefined) {
    if (ipvlanFlag !== undefined)
      throw new PluginError(
        macvlanMode === undefined
          ? `ipvlan_flag applies to ipvlan networks: add -o ipvlan_mode=l2 (or l3, l3s)`
          : `ipvlan_flag applies to ipvlan networks, not with macvlan_mode=${macvlanMode}`,
      );
    const mode = (macvlanMode ?? 'bridge') as MacvlanMode;
    if (!MACVLAN_MODES.includes(mode))
      throw new PluginError(`macvlan_mode '${mode}' is not a macvlan mode; use one of: ${MACVLAN_MODES.join(', ')}`);
    const sourceMacs = parseSourceMacs(source, `macvlan_mode=${mode}`);
    return { kind: 'macvlan', mode, ...(sourceMacs && { sourceMacs }) };
  }
  if (!(IPVLAN_MODES as readonly string[]).includes(ipvlanMode))
    throw new PluginError(`ipvlan_mode '${ipvlanMode}' is not an ipvlan mode; use one of: ${IPVLAN_MODES.join(', ')}`);
  const flag = ipvlanFlag ?? 'bridge';
  if (!(IPVLAN_FLAGS as readonly string[]).includes(flag))
    throw new PluginError(`ipvlan_flag '${flag}' is not an ipvlan flag; use one of: ${IPVLAN_FLAGS.join(', ')}`);
  parseSourceMacs(source, `ipvlan_mode=${ipvlanMode}`);
  return { kind: 'ipvlan', mode: ipvlanMode as IpvlanMode, flag: flag as IpvlanFlag };
}

/** The MACs of macvlan_source, which goes with macvlan_mode=source and only with it (`chosen`: what was chosen). */
function parseSourceMacs(source: string | undefined, chosen: string): string[] | undefined {
  const isSource = chosen === 'macvlan_mode=source';
  if (source === undefined) {
    if (isSource)
      throw new PluginError(
        'macvlan_mode=source needs macvlan_source=<mac>[,<mac>...], the source MACs the network accepts',
      );
    return undefined;
  }
  if (!isSource) throw new PluginError(`macvlan_source only applies with macvlan_mode=source (got ${chosen})`);
  const macs = source.split(',').map((mac) => mac.trim().toLowerCase());
  const bad = macs.find((mac) => !MAC.test(mac));
  if (bad !== undefined) throw new PluginError(`macvlan_source: '${bad}' is not a MAC address like 02:42:0a:00:00:01`);
  return macs;
}

function parseHostAccess(hostAccess: string, link: ChildMode): string {
  if (!isIPv4(hostAccess))
    throw new PluginError(
      `host_access '${hostAccess}' is not an IPv4 address; give the host's address on the network, e.g. host_access=10.0.10.250`,
    );
  const problem = hostAccessProblem(link);
  if (problem) throw new PluginError(problem);
  return hostAccess;
}

function parseVlanProtocol(vlanProtocol: string, parent: string | undefined): VlanProtocol {
  if (!(VLAN_PROTOCOLS as readonly string[]).includes(vlanProtocol.toLowerCase())) {
    throw new PluginError(
      `vlan_protocol '${vlanProtocol}' is not a VLAN protocol; use 802.1q (the default) or 802.1ad (QinQ outer tag)`,
    );
  }
  if (!parent?.includes('.')) {
    throw new PluginError('vlan_protocol applies to a VLAN parent written <interface>.<vlan id>, e.g. parent=eth0.10');
  }
  return vlanProtocol.toLowerCase() as VlanProtocol;
}

/** Checks that the host_access address lies in the network's IPv4 subnet and is kept from containers. */
export function checkHostAccess(address: string, ipv4: IpData | undefined, reserved: string[]): void {
  if (!ipv4) throw new PluginError(`host_access=${address} needs an IPv4 subnet on the network (--subnet)`);
  const subnet = new Address4(ipv4.pool);
  if (!new Address4(address).isInSubnet(subnet)) {
    throw new PluginError(
      `host_access=${address} is not in the network's subnet ${ipv4.pool}; give an address of that subnet`,
    );
  }
  if (address === ipv4.gateway)
    throw new PluginError(`host_access=${address} is the network's gateway; give the host an address of its own`);
  if (!reserved.includes(address)) {
    throw new PluginError(
      `host_access=${address} must be kept from containers: add --aux-address host=${address} to 'docker network create'`,
    );
  }
}

/** Checks a user-given interface name before it goes near the kernel. */
export function checkLinkName(name: string, option: string): string {
  if (name.length === 0) throw new PluginError(`${option} is empty; name an existing interface, e.g. ${option}=eth1`);
  if (Buffer.byteLength(name) > IFNAME_MAX) {
    throw new PluginError(
      `${option} '${name}' is longer than Linux's ${IFNAME_MAX}-character limit for interface names`,
    );
  }
  if (name === '.' || name === '..' || /[\s/:\0]/.test(name)) {
    throw new PluginError(
      `${option} '${name}' is not a valid interface name (no spaces, '/', ':' or NUL)` +
        (name.includes(':') ? `; a VLAN sub-interface is written <interface>.<vlan id>, e.g. eth0.10` : ''),
    );
  }
  return name;
}

/** The aux addresses of an IPAM entry, bare ("10.0.0.250/24" arrives in CIDR form). */
export function auxAddresses(entry: { AuxAddresses?: Record<string, unknown> | null } | undefined): string[] {
  return Object.values(entry?.AuxAddresses ?? {}).map((value) => String(value).split('/')[0]);
}

/** Parses an IPAM entry of CreateNetwork ("10.0.0.1/24" gateways arrive in CIDR form). */
export function ipData(
  entry:
    | { AddressSpace?: string; Pool: string; Gateway?: string; AuxAddresses?: Record<string, unknown> | null }
    | undefined,
): IpData | undefined {
  if (!entry) return undefined;
  const data: IpData = { pool: entry.Pool, aux: auxAddresses(entry) };
  if (entry.Gateway) data.gateway = entry.Gateway.split('/')[0];
  // Any IPAM's network is served; a name longer than any IPAM's own is not worth keeping (it is not this plugin's).
  if (entry.AddressSpace && entry.AddressSpace.length <= 64) data.addressSpace = entry.AddressSpace;
  return data;
}

/** What is wrong with a parsed value as a network record (the check of every reader of networks/). */
export function networkRecordProblem(value: unknown): string | undefined {
  if (!isJsonObject(value)) return 'not a JSON object';
  for (const key of ['id', 'parent', 'mode'])
    if (typeof value[key] !== 'string' || value[key] === '') return `no '${key}'`;
  if (typeof value.ownsParent !== 'boolean') return `no 'ownsParent'`;
  if (value.kind === 'macvlan')
    return (MACVLAN_MODES as readonly unknown[]).includes(value.mode)
      ? undefined
      : `mode '${String(value.mode)}' is not a macvlan mode`;
  if (value.kind !== 'ipvlan') return `kind '${String(value.kind)}' is neither macvlan nor ipvlan`;
  if (!(IPVLAN_MODES as readonly unknown[]).includes(value.mode))
    return `mode '${String(value.mode)}' is not an ipvlan mode`;
  if (!(IPVLAN_FLAGS as readonly unknown[]).includes(value.flag))
    return `flag '${String(value.flag)}' is not an ipvlan flag`;
  return undefined;
}
