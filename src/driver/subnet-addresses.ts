// Which addresses of a subnet the driver's own records account for: its endpoints' (from the moment a CreateEndpoint
// claims its slot), and its networks' gateways and aux addresses. The IPAM asks it before it frees an address Docker
// took and never used (ipam/forgotten-takes.ts): the two layers do not import each other, the cli wires them.
import { parseCidr, parseIp } from '../ip/address';
import type { EndpointRecord } from './endpoint-naming';
import type { IpData, NetworkRecord } from './network-options';

/** "subnet value": one key per address of a subnet, the subnet as parseCidr writes it. */
function keyOf(subnet: string, value: bigint): string {
  return `${subnet} ${value}`;
}

/** The subnet of `data` as the IPAM names it, or undefined when it does not parse. */
function subnetOf(data: IpData): string | undefined {
  const parsed = parseCidr(data.pool);
  return parsed.ok ? parsed.cidr.text : undefined;
}

export class SubnetAddresses {
  /** How many records hold each address. */
  private readonly holders = new Map<string, number>();
  /** The networks on each subnet, per IPAM address space; `unknown`: some lack a record of their aux addresses. */
  private readonly networks = new Map<string, { count: Map<string, number>; unknown: number }>();

  private hold(subnet: string | undefined, address: string | undefined, by: 1 | -1): void {
    const ip = address === undefined ? undefined : parseIp(address.split('/')[0]);
    if (!subnet || !ip) return;
    const key = keyOf(subnet, ip.value);
    const count = (this.holders.get(key) ?? 0) + by;
    if (count > 0) this.holders.set(key, count);
    else this.holders.delete(key);
  }

  private count(data: IpData, by: 1 | -1): void {
    const subnet = subnetOf(data);
    if (!subnet) return;
    let entry = this.networks.get(subnet);
    if (!entry) this.networks.set(subnet, (entry = { count: new Map(), unknown: 0 }));
    const space = data.addressSpace ?? '';
    entry.count.set(space, (entry.count.get(space) ?? 0) + by);
    if (!data.aux) entry.unknown += by;
    if (entry.unknown === 0 && [...entry.count.values()].every((n) => n === 0)) this.networks.delete(subnet);
    this.hold(subnet, data.gateway, by);
    for (const aux of data.aux ?? []) this.hold(subnet, aux, by);
  }

  addNetwork(network: NetworkRecord): void {
    for (const data of [network.ipv4, network.ipv6]) if (data) this.count(data, 1);
  }

  forgetNetwork(network: NetworkRecord): void {
    for (const data of [network.ipv4, network.ipv6]) if (data) this.count(data, -1);
  }

  addEndpoint(endpoint: EndpointRecord, network: NetworkRecord | undefined): void {
    this.endpoint(endpoint, network, 1);
  }

  forgetEndpoint(endpoint: EndpointRecord, network: NetworkRecord | undefined): void {
    this.endpoint(endpoint, network, -1);
  }

  private endpoint(endpoint: EndpointRecord, network: NetworkRecord | undefined, by: 1 | -1): void {
    // A DHCP network's addresses are the LAN server's, not an IPAM's (and its records gain them after they are added).
    if (!network || network.dhcp) return;
    if (network.ipv4) this.hold(subnetOf(network.ipv4), endpoint.ipv4, by);
    if (network.ipv6) this.hold(subnetOf(network.ipv6), endpoint.ipv6, by);
  }

  /**
   * How many of the driver's networks use `subnet` through an IPAM naming one of `spaces`; undefined when one of its
   * networks on that subnet has no record of its aux addresses (made before they were recorded): then what the
   * driver holds there is not fully known.
   */
  networksOn(subnet: string, spaces: readonly string[]): number | undefined {
    const entry = this.networks.get(subnet);
    if (!entry) return 0;
    if (entry.unknown > 0) return undefined;
    let total = 0;
    for (const space of spaces) total += entry.count.get(space) ?? 0;
    return total;
  }

  /** Whether an endpoint, a gateway or an aux address of the driver's holds `value` of `subnet`. */
  holds(subnet: string, value: bigint): boolean {
    return this.holders.has(keyOf(subnet, value));
  }
}
