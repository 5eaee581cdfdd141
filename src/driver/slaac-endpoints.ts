// IPv6 for the endpoints of a DHCP network with --ipv6 (see docs/ipv6.md): the parent is watched for router
// advertisements while such a network is on it; at CreateEndpoint the endpoint's address is leased from the LAN's
// DHCPv6 server where the router sends the M flag, else formed from the router's SLAAC prefix and the endpoint's MAC;
// either is checked on the LAN (duplicate address detection) and answered to Docker, which cannot be told a new one
// later. A prefix the router withdraws, deprecates or lets expire is marked in the records
// of the endpoints with addresses in it, and unmarked when the router offers it again.
import type { Logger } from 'pino';
import { PluginError } from '../errors';
import { formatIp, parseIp } from '../ip/address';
import type { Links } from '../kernel/links';
import type { Neighbourhood } from '../probe/neighbourhood';
import { NoRouterAnswer, type PrefixBack, type PrefixLoss, type RouterAdverts } from '../ra/router-adverts';
import { SLAAC_PREFIX_LENGTH, slaacAddress } from '../ra/slaac';
import type { KeyedMutex } from '../state/keyed-mutex';
import type { Lease6 } from '../dhcp6/lease';
import type { Dhcp6Leases } from './dhcp6-leases';
import type { DriverState } from './driver-state';
import type { EndpointRecord } from './endpoint-naming';
import type { NetworkRecord } from './network-options';

export class SlaacEndpoints {
  constructor(
    private readonly links: Links,
    private readonly state: DriverState,
    private readonly routerAdverts: RouterAdverts | undefined,
    private readonly neighbourhood: Neighbourhood | undefined,
    private readonly endpointLocks: KeyedMutex,
    private readonly log: Logger,
    private readonly dhcp6?: Dhcp6Leases,
  ) {
    routerAdverts?.onPrefixLoss((loss) => void this.mark(loss, loss.condition));
    routerAdverts?.onPrefixBack((back) => void this.mark(back, undefined));
  }

  /** Starts listening to the routers of the network's parent (at start and CreateNetwork). Never throws. */
  async watch(network: NetworkRecord): Promise<void> {
    if (!network.dhcp?.ipv6 || !this.routerAdverts) return;
    try {
      const parent = await this.links.get(network.parent);
      if (!parent?.mac) throw new Error(`parent '${network.parent}' is gone or has no MAC`);
      this.routerAdverts.watch(network.parent, parent.index, parent.mac);
    } catch (err) {
      this.log.warn({ err, network: network.id }, 'cannot listen to router advertisements');
    }
  }

  /**
   * The router's link-local address, for Join's IPv6 gateway, when the network's IPv6 pool (of an IPAM: --ipam-opt
   * ipv6=slaac) is a prefix that router advertises on its parent; undefined when not known here.
   */
  poolRouter(network: NetworkRecord): string | undefined {
    const pool = network.ipv6?.pool;
    const routers = pool && !network.dhcp ? this.routerAdverts?.routers(network.parent) : undefined;
    return routers?.router && routers.prefixes.has(pool!) ? routers.router : undefined;
  }

  /** Sends the DHCPv6 RELEASE of the endpoint of `mac` (a no-op without a lease). */
  release(mac: string): void {
    this.dhcp6?.release(mac);
  }

  unwatch(network: NetworkRecord): void {
    if (network.dhcp?.ipv6) this.routerAdverts?.unwatch(network.parent);
  }

  /**
   * The endpoint's record with its IPv6 address: a DHCPv6 lease where the router sends the M flag (even beside an A
   * prefix: see docs/ipv6.md), else SLAAC; refuses when no router or server answers or a device holds the address.
   * `onChecking` gets the record with each DHCPv6 lease the server grants as its address check begins.
   */
  async address(
    network: NetworkRecord,
    record: EndpointRecord,
    onChecking?: (withLease: EndpointRecord) => void,
  ): Promise<EndpointRecord> {
    const seconds = network.dhcp!.timeoutSeconds;
    if (!this.routerAdverts || !this.neighbourhood)
      throw new PluginError('this plugin instance has no packet socket to hear IPv6 router advertisements with');
    await this.watch(network); // a parent that was down at start is watched from here on
    const deadline = Date.now() + seconds * 1000;
    let found;
    try {
      const heard = await this.routerAdverts.advertised(network.parent, seconds * 1000);
      if (heard.managed && this.dhcp6) return await this.leased(network, record, heard.router!, deadline, onChecking);
      found = await this.routerAdverts.slaacPrefix(network.parent, Math.max(deadline - Date.now(), 0));
    } catch (err) {
      if (!(err instanceof NoRouterAnswer)) throw err;
      throw new PluginError(
        `no IPv6 router advertised a prefix for SLAAC (A flag, /${SLAAC_PREFIX_LENGTH}) on ${network.parent} within ${seconds} s; ` +
          `check that a router sends advertisements on the LAN of ${network.parent}, or leave out --ipv6`,
      );
    } finally {
      this.routerAdverts.unwatch(network.parent);
    }
    const value = slaacAddress(found.prefix.prefix, record.mac);
    const address = formatIp(true, value);
    const verdict = await this.neighbourhood.checkOnParent(network.parent, value).catch((err: Error) => {
      throw new PluginError(`cannot check ${address} on the LAN before a container uses it: ${err.message}`);
    });
    if (verdict.held)
      throw new PluginError(
        `the SLAAC address ${address} of MAC ${record.mac} is in use on the LAN: the device with MAC ${verdict.mac} answered ` +
          `the duplicate address check on ${network.parent}; give the container another --mac-address`,
      );
    return {
      ...record,
      ipv6: `${address}/${SLAAC_PREFIX_LENGTH}`,
      slaac: { prefix: found.prefix.text, router: found.router.router! },
    };
  }

  /** A DHCPv6 lease's address, with the length of the on-link prefix that holds it (else /64: see docs/ipv6.md). */
  private async leased(
    network: NetworkRecord,
    record: EndpointRecord,
    router: string,
    deadline: number,
    onChecking: ((withLease: EndpointRecord) => void) | undefined,
  ): Promise<EndpointRecord> {
    const withLease = (lease: Lease6): EndpointRecord => {
      const onLink = this.routerAdverts!.onLinkPrefix(network.parent, parseIp(lease.address)!.value);
      return { ...record, ipv6: `${lease.address}/${onLink?.length ?? SLAAC_PREFIX_LENGTH}`, dhcp6: { lease, router } };
    };
    const checking = onChecking && ((lease: Lease6) => onChecking(withLease(lease)));
    return withLease(await this.dhcp6!.acquire(network, record, Math.max(deadline - Date.now(), 1), checking));
  }

  /**
   * Marks each endpoint with an address in the prefix, on a network of that parent, with how it was lost; `undefined`:
   * offered again, the mark goes.
   */
  private async mark(
    { parent, prefix }: PrefixLoss | PrefixBack,
    condition: PrefixLoss['condition'] | undefined,
  ): Promise<void> {
    for (const endpoint of this.state.endpoints.values()) {
      if (endpoint.slaac?.prefix !== prefix) continue;
      if (this.state.networks.get(endpoint.networkId)?.parent !== parent) continue;
      await this.endpointLocks
        .run(endpoint.id, async () => {
          const current = this.state.endpoints.get(endpoint.id);
          if (!current?.slaac || current.slaac.lost?.condition === condition) return;
          const { lost: _, ...slaac } = current.slaac;
          const record = { ...current, slaac: condition ? { ...slaac, lost: { condition, at: Date.now() } } : slaac };
          await this.state.endpointStore.put(record.id, record);
          this.state.endpoints.set(record.id, record);
          if (condition)
            this.log.warn(
              { endpoint: record.id, address: record.ipv6, prefix, condition },
              'an endpoint keeps an IPv6 address whose prefix the router no longer offers',
            );
          else this.log.info({ endpoint: record.id, address: record.ipv6, prefix }, 'its IPv6 prefix is offered again');
        })
        .catch((err: unknown) => this.log.error({ err, endpoint: endpoint.id }, 'cannot record an IPv6 prefix change'));
    }
  }
}
