// An endpoint's life: CreateEndpoint records it, Join makes its host-side macvlan (Docker moves it into the
// container), DeleteEndpoint forgets it and removes the link Docker has moved back.
import type { Logger } from 'pino';
import { PluginError } from '../errors';
import type { Links } from '../kernel/links';
import { MARK_ENDPOINT } from '../kernel/marks';
import { LinkReaper } from '../kernel/reaper';
import { crashPoint } from '../state/crash';
import type { KeyedMutex } from '../state/keyed-mutex';
import type { DhcpLeases } from './dhcp-leases';
import { joinRoutes, type StaticRoute } from './dhcp-network';
import type { DriverState } from './driver-state';
import { endpointLinkName, endpointMac, type EndpointRecord } from './endpoint-naming';
import type { HostAccess } from './host-access';
import type { NetworkRecord } from './network-options';

export interface CreateEndpointRequest {
  networkId: string;
  endpointId: string;
  mac?: string;
  ipv4?: string;
  ipv6?: string;
}

export interface JoinAnswer {
  linkName: string;
  gateway?: string;
  gatewayIpv6?: string;
  staticRoutes: StaticRoute[];
}

/** What CreateEndpoint fills in that Docker left empty. */
export interface CreatedEndpoint {
  mac?: string;
  /** CIDR: the address leased on a DHCP network. */
  ipv4?: string;
}

/**
 * Told, once an endpoint is deleted, of each address Docker had the network's IPAM give it (subnet, address, and the
 * IPAM's address space as Docker named it to CreateNetwork): Docker's ReleaseAddress for it comes next, and the IPAM
 * makes sure it is not lost (IpamService.releaseDue).
 */
export type ReleaseDue = (subnet: string, address: string, addressSpace: string | undefined) => Promise<void>;

export class EndpointLifecycle {
  readonly reaper = new LinkReaper();

  constructor(
    private readonly links: Links,
    private readonly state: DriverState,
    private readonly hostAccess: HostAccess,
    private readonly dhcp: DhcpLeases,
    /** One request at a time per endpoint: Docker sends them in order, a client that does not must not tangle them. */
    private readonly endpointLocks: KeyedMutex,
    private readonly log: Logger,
    private readonly releaseDue?: ReleaseDue,
  ) {}

  /** Records the endpoint; answers the MAC when Docker gave none, and the leased address on a DHCP network. */
  create(req: CreateEndpointRequest): Promise<CreatedEndpoint> {
    return this.endpointLocks.run(req.endpointId, () => this.createLocked(req));
  }

  private async createLocked(req: CreateEndpointRequest): Promise<CreatedEndpoint> {
    const network = this.state.network(req.networkId);
    const existing = this.state.endpoints.get(req.endpointId);
    if (existing) return sameAnswer(existing, req);
    const others = this.state.endpointsOf.get(req.networkId);
    if (network.mode === 'passthru' && others?.size && !others.has(req.endpointId)) {
      throw new PluginError(
        `network ${req.networkId.slice(0, 12)} uses macvlan_mode=passthru, which gives parent '${network.parent}' to a single container, and one is attached already`,
      );
    }
    if (network.dhcp && req.ipv4)
      throw new PluginError(
        `network ${req.networkId.slice(0, 12)} leases its addresses from the LAN's DHCP server, so Docker must give none (got ${req.ipv4}); ` +
          `leave out --ip, and pin an address with a reservation for the container's --mac-address on the server instead`,
      );
    const record: EndpointRecord = {
      id: req.endpointId,
      networkId: req.networkId,
      mac: req.mac || endpointMac(req.ipv4, req.endpointId),
      ...(req.ipv4 && { ipv4: req.ipv4 }),
      ...(req.ipv6 && { ipv6: req.ipv6 }),
    };
    // Claim the slot before the first await, so parallel requests see it.
    this.state.addEndpoint(record);
    let leased = false;
    try {
      await this.state.endpointStore.put(record.id, { ...record, unanswered: true });
      crashPoint('endpoint-recorded');
      let answered = record;
      if (network.dhcp) {
        const lease = await this.dhcp.acquire(network, record.mac);
        leased = true;
        crashPoint('dhcp-leased');
        answered = { ...record, ipv4: `${lease.address}/${lease.prefixLength}`, lease };
        // Recorded before it is answered: a start that finds it unanswered still knows what to release.
        await this.state.endpointStore.put(record.id, { ...answered, unanswered: true });
        crashPoint('lease-recorded');
      }
      await this.state.endpointStore.put(record.id, answered); // just before the answer: a restart keeps it from here on
      this.state.endpoints.set(record.id, answered);
      crashPoint('endpoint-answered');
      return { ...(!req.mac && { mac: record.mac }), ...(answered.lease && { ipv4: answered.ipv4 }) };
    } catch (err) {
      this.state.forgetEndpoint(record);
      if (leased) this.dhcp.release(record.mac);
      // Marked unanswered if it got written: the next start would roll it back anyway.
      await this.state.endpointStore.remove(record.id).catch(() => undefined);
      throw err;
    }
  }

  /** Creates the host-side macvlan link; Docker moves it into the container. */
  join(networkId: string, endpointId: string, sandbox?: string): Promise<JoinAnswer> {
    return this.endpointLocks.run(endpointId, () => this.joinLocked(networkId, endpointId, sandbox));
  }

  private async joinLocked(networkId: string, endpointId: string, sandbox?: string): Promise<JoinAnswer> {
    const network = this.state.network(networkId);
    let endpoint = this.state.endpoints.get(endpointId);
    if (!endpoint || endpoint.networkId !== networkId) {
      throw new PluginError(
        `endpoint ${endpointId.slice(0, 12)} does not exist on network ${networkId.slice(0, 12)}; it was never created or was already deleted`,
      );
    }
    if (network.dhcp) endpoint = await this.recordSandbox(endpoint, sandbox);
    const name = await this.makeLink(network, endpoint);
    crashPoint('endpoint-link-ready');
    if (network.hostAccess && endpoint.ipv4) {
      try {
        await this.hostAccess.route(networkId, network.hostAccess, endpoint.ipv4.split('/')[0]);
        crashPoint('route-added');
      } catch (err) {
        await this.links.delete(name);
        throw err;
      }
    }
    const answer: JoinAnswer = { linkName: name, staticRoutes: [] };
    if (endpoint.lease) {
      const routes = joinRoutes(endpoint.lease);
      answer.staticRoutes = routes.staticRoutes;
      if (routes.gateway && !network.internal) answer.gateway = routes.gateway;
    }
    if (!network.internal) {
      if (network.ipv4?.gateway) answer.gateway = network.ipv4.gateway;
      if (network.ipv6?.gateway) answer.gatewayIpv6 = network.ipv6.gateway;
    }
    return answer;
  }

  /** A DHCP endpoint's container namespace, kept so that a lost lease can remove its interface. */
  private async recordSandbox(endpoint: EndpointRecord, sandbox: string | undefined): Promise<EndpointRecord> {
    if (!endpoint.lease)
      throw new PluginError(
        `endpoint ${endpoint.id.slice(0, 12)} lost its DHCP lease of ${endpoint.leaseLost?.address ?? 'its address'}; disconnect and connect the container again for a new one`,
      );
    if (!sandbox || sandbox === endpoint.sandbox) return endpoint;
    const record = { ...endpoint, sandbox };
    await this.state.endpointStore.put(record.id, record);
    this.state.endpoints.set(record.id, record);
    return record;
  }

  /** The endpoint's host-side macvlan on the network's parent; answers its name. */
  private async makeLink(network: NetworkRecord, endpoint: EndpointRecord): Promise<string> {
    // passthru admits one macvlan on the parent: a previous endpoint's link must be gone first.
    if (network.mode === 'passthru' && this.reaper.busy) await this.reaper.settled();
    const parent = await this.links.get(network.parent);
    if (!parent) {
      throw new PluginError(
        `parent '${network.parent}' of network ${network.id.slice(0, 12)} no longer exists; bring it back or recreate the network`,
      );
    }
    const name = endpointLinkName(endpoint.id);
    const spec = {
      name,
      parentIndex: parent.index,
      mode: network.mode,
      // In passthru mode the link takes the parent's own MAC; Docker sets the endpoint's inside the container.
      ...(network.mode !== 'passthru' && { mac: endpoint.mac }),
      ...(network.mtu !== undefined && { mtu: network.mtu }),
      ...(network.sourceMacs && { sourceMacs: network.sourceMacs }),
    };
    // A link by this name of ours is left from an interrupted Join of this endpoint: it is replaced. Anyone else's stays.
    const outcome = await this.links.replaceOwnMacvlan(spec, MARK_ENDPOINT);
    if (outcome === 'name-taken')
      throw new PluginError(
        `cannot create link '${name}' for endpoint ${endpoint.id.slice(0, 12)}: a link by that name exists and is not this plugin's`,
      );
    if (outcome === 'parent-busy')
      throw new PluginError(
        `the kernel refused a macvlan on parent '${network.parent}' (EBUSY): another macvlan mode or a passthru link already holds it`,
      );
    return name;
  }

  /** Removes the host-side link (Docker has moved it back from the container by now) and forgets the endpoint. */
  delete(networkId: string, endpointId: string): Promise<void> {
    return this.endpointLocks.run(endpointId, () => this.deleteLocked(networkId, endpointId));
  }

  /**
   * Tells the IPAM, once the endpoint is gone, which addresses Docker's ReleaseAddress is due for next (not a leased one:
   * DHCP addresses come from the LAN's server). A failure is logged, never fails the delete: deletes roll forward.
   */
  private async noteReleasesDue(networkId: string, endpoint: EndpointRecord): Promise<void> {
    const network = this.state.networks.get(networkId);
    if (!this.releaseDue || !network || endpoint.lease) return;
    for (const [data, address] of [
      [network.ipv4, endpoint.ipv4],
      [network.ipv6, endpoint.ipv6],
    ] as const) {
      if (!data || !address) continue;
      await this.releaseDue(data.pool, address.split('/')[0], data.addressSpace).catch((err: unknown) =>
        this.log.warn({ err, endpoint: endpoint.id, address }, 'could not note the release due for an address'),
      );
    }
  }

  private async deleteLocked(networkId: string, endpointId: string): Promise<void> {
    const endpoint = this.state.endpoints.get(endpointId);
    if (!endpoint) return;
    const name = endpointLinkName(endpointId);
    const link = await this.links.get(name);
    // Record first: Docker forgets the endpoint even when this fails (it only logs), so a crash after this point must
    // leave nothing the start would keep. The link is then ours and owned by no record, and a host route to it has no
    // owner either: the start deletes both.
    await this.state.endpointStore.remove(endpointId);
    crashPoint('endpoint-forgotten');
    this.state.forgetEndpoint({ id: endpointId, networkId });
    // After the record: a crash between the two leaves the lease to expire on the server, never a record to renew it.
    if (endpoint.lease) this.dhcp.release(endpoint.mac);
    const hostAddress = this.state.networks.get(networkId)?.hostAccess;
    if (hostAddress && endpoint.ipv4) {
      await this.hostAccess.unroute(networkId, endpoint.ipv4.split('/')[0]);
      crashPoint('route-removed');
    }
    // Only once the delete has succeeded: Docker keeps an endpoint whose delete failed, and its address with it.
    await this.noteReleasesDue(networkId, endpoint);
    // Only our own link: a name clash with someone else's link must not cost them their interface. Its deletion
    // (17-20 ms of kernel time) finishes after the answer; if the plugin dies first, the link is ours and owned by
    // no record, so the next start deletes it.
    if (link && this.links.owns(link)) {
      this.reaper.delete(name).catch((err) => this.log.warn({ err, link: name }, 'could not delete endpoint link'));
    }
  }
}

/** The same request again is answered the same way; anything else under that id is refused. */
function sameAnswer(existing: EndpointRecord, req: CreateEndpointRequest): CreatedEndpoint {
  const same =
    existing.networkId === req.networkId &&
    (existing.lease ? req.ipv4 === undefined : existing.ipv4 === req.ipv4) &&
    existing.ipv6 === req.ipv6 &&
    (!req.mac || req.mac === existing.mac);
  if (!same)
    throw new PluginError(
      `endpoint ${req.endpointId.slice(0, 12)} already exists on network ${existing.networkId.slice(0, 12)} with other settings; endpoint ids are unique`,
    );
  return { ...(!req.mac && { mac: existing.mac }), ...(existing.lease && { ipv4: existing.ipv4 }) };
}
