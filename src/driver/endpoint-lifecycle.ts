// An endpoint's life: CreateEndpoint records it, Join makes its host-side macvlan or ipvlan (Docker moves it into the
// container), DeleteEndpoint forgets it and removes the link Docker has moved back.
import type { Logger } from 'pino';
import { PluginError } from '../errors';
import type { Links } from '../kernel/links';
import { MARK_ENDPOINT } from '../kernel/marks';
import { LinkReaper } from '../kernel/reaper';
import { crashPoint } from '../state/crash';
import type { KeyedMutex } from '../state/keyed-mutex';
import { clientKey, type Lease } from '../dhcp/lease';
import { dhcpIdentity, type DhcpLeases } from './dhcp-leases';
import { LeaseRecordWrites } from './dhcp-records';
import {
  type CreatedEndpoint,
  type CreateEndpointRequest,
  type JoinAnswer,
  joinAnswer,
  refuseGivenAddresses,
  sameAnswer,
} from './endpoint-answers';
import type { DriverState } from './driver-state';
import { ForgottenEndpoints } from './forgotten-endpoints';
import { endpointLinkName, endpointMac, type EndpointRecord } from './endpoint-naming';
import type { SlaacEndpoints } from './slaac-endpoints';
import type { HostAccess } from './host-access';
import { childMode, ownMac, unlessUnsupported } from './link-kind';
import type { NetworkRecord } from './network-options';

/**
 * Told, once an endpoint is deleted, of each address Docker had the network's IPAM give it (subnet, address, and the
 * IPAM's address space as Docker named it to CreateNetwork): Docker's ReleaseAddress for it comes next, and the IPAM
 * makes sure it is not lost (IpamService.releaseDue).
 */
export type ReleaseDue = (subnet: string, address: string, addressSpace: string | undefined) => Promise<void>;

/**
 * Where a DHCP CreateEndpoint's time went, in ms from its start: its IPv4 and IPv6 leases in hand (their checks
 * ended), and the wait for the writes of the unanswered record after them.
 */
interface LeaseTiming {
  checkedMs?: number;
  checked6Ms?: number;
  settleMs?: number;
}

const msSince = (from: number) => Math.round((performance.now() - from) * 1000) / 1000;

export class EndpointLifecycle {
  readonly reaper = new LinkReaper();
  readonly forgotten: ForgottenEndpoints;

  constructor(
    private readonly links: Links,
    private readonly state: DriverState,
    private readonly hostAccess: HostAccess,
    private readonly dhcp: DhcpLeases,
    private readonly slaac: SlaacEndpoints,
    /** One request at a time per endpoint: Docker sends them in order, a client that does not must not tangle them. */
    private readonly endpointLocks: KeyedMutex,
    private readonly log: Logger,
    private readonly releaseDue?: ReleaseDue,
  ) {
    this.forgotten = new ForgottenEndpoints(
      links,
      state,
      endpointLocks,
      (n, e) => this.deleteForgottenLocked(n, e),
      log,
    );
  }

  /** Records the endpoint; answers the MAC when Docker gave none, and the leased address on a DHCP network. */
  create(req: CreateEndpointRequest): Promise<CreatedEndpoint> {
    return this.endpointLocks.run(req.endpointId, () => this.createLocked(req));
  }

  private async createLocked(req: CreateEndpointRequest): Promise<CreatedEndpoint> {
    const started = performance.now();
    const network = this.state.network(req.networkId);
    const existing = this.state.endpoints.get(req.endpointId);
    if (existing) return sameAnswer(existing, req, ownMac(childMode(network)));
    const others = this.state.endpointsOf.get(req.networkId);
    if (network.mode === 'passthru' && others?.size && !others.has(req.endpointId)) {
      throw new PluginError(
        `network ${req.networkId.slice(0, 12)} uses macvlan_mode=passthru, which gives parent '${network.parent}' to a single container, and one is attached already`,
      );
    }
    refuseGivenAddresses(network, req);
    const record: EndpointRecord = {
      id: req.endpointId,
      networkId: req.networkId,
      mac: ownMac(childMode(network)) ? req.mac || endpointMac(req.ipv4, req.endpointId) : '',
      ...(req.ipv4 && { ipv4: req.ipv4 }),
      ...(req.ipv6 && { ipv6: req.ipv6 }),
    };
    // Claim the slot before the first await, so parallel requests see it.
    this.state.addEndpoint(record);
    const leases = { v4: false, v6: false };
    try {
      if (!record.mac) record.mac = await this.parentMac(network, req.mac);
      let answered = record;
      let timing: LeaseTiming | undefined;
      if (network.dhcp) [answered, timing] = await this.leasesFor(network, record, leases, started);
      const writing = performance.now();
      // Just before the answer: a restart keeps it from here on. Without DHCP nothing was done before it that a start
      // would have to undo, so no unanswered record comes first: a crash before its rename leaves no endpoint at all.
      const unrecorded = network.dhcp ? undefined : () => crashPoint('endpoint-recorded');
      await this.state.endpointStore.put(record.id, answered, unrecorded);
      this.state.endpoints.set(record.id, answered);
      crashPoint('endpoint-answered');
      this.forgotten.created(record.id);
      if (timing) this.logLeases(answered, { ...timing, writeMs: msSince(writing), ms: msSince(started) });
      return {
        ...(!req.mac && ownMac(childMode(network)) && { mac: record.mac }),
        ...(answered.lease && { ipv4: answered.ipv4 }),
        ...((answered.slaac || answered.dhcp6) && { ipv6: answered.ipv6 }),
      };
    } catch (err) {
      this.state.forgetEndpoint(record);
      if (leases.v4) this.dhcp.release(clientKey(dhcpIdentity(network, record)));
      if (leases.v6) this.slaac.release(record.mac);
      // Marked unanswered if it got written: the next start would roll it back anyway.
      await this.state.endpointStore.remove(record.id).catch(() => undefined);
      throw err;
    }
  }

  /**
   * A DHCP endpoint's record with its leases (IPv4, and IPv6 with --ipv6), each on disk (unanswered) when this
   * resolves: see LeaseRecordWrites. `leases` says which the endpoint holds, for a rollback; the timing is for the log.
   */
  private async leasesFor(
    network: NetworkRecord,
    record: EndpointRecord,
    leases: { v4: boolean; v6: boolean },
    started: number,
  ): Promise<[EndpointRecord, LeaseTiming]> {
    const writes = new LeaseRecordWrites(this.state.endpointStore, () => {
      this.dhcp.release(clientKey(dhcpIdentity(network, record)));
      this.slaac.release(record.mac);
    });
    writes.write(record, 'endpoint-recorded');
    let answered = record;
    const timing: LeaseTiming = {};
    if (!network.dhcp!.noIpv4) {
      const withLease = (lease: Lease): EndpointRecord => ({
        ...record,
        ipv4: `${lease.address}/${lease.prefixLength}`,
        lease,
      });
      const onChecking = (lease: Lease) => writes.write(withLease(lease), 'lease-recorded');
      const lease = await writes.around(this.dhcp.acquire(network, record, onChecking));
      leases.v4 = true;
      timing.checkedMs = msSince(started);
      await writes.settled();
      crashPoint('dhcp-leased');
      answered = withLease(lease);
      if (writes.written?.lease !== lease) writes.write(answered, 'lease-recorded');
    }
    if (network.dhcp!.ipv6) {
      const onChecking = (withLease6: EndpointRecord) => writes.write(withLease6, 'lease6-recorded');
      answered = await writes.around(this.slaac.address(network, answered, onChecking));
      leases.v6 = answered.dhcp6 !== undefined;
      timing.checked6Ms = msSince(started);
    }
    const waiting = performance.now();
    await writes.settled();
    timing.settleMs = msSince(waiting);
    return [answered, timing];
  }

  /** The log line of each lease, with where the request's time went (the bench splits a lease's time by them). */
  private logLeases(answered: EndpointRecord, timing: LeaseTiming & { writeMs: number; ms: number }): void {
    const { checkedMs, checked6Ms, ...rest } = timing;
    const common = { endpoint: answered.id, mac: answered.mac, ...rest };
    if (answered.lease) this.log.info({ ...common, address: answered.ipv4, checkedMs }, 'DHCP endpoint created');
    if (answered.dhcp6)
      this.log.info({ ...common, address: answered.ipv6, checkedMs: checked6Ms }, 'DHCPv6 endpoint created');
  }

  /**
   * The MAC of an ipvlan endpoint: its parent's, which every ipvlan there shares. The kernel refuses to give an ipvlan
   * another (EOPNOTSUPP), so a MAC Docker was asked for is refused now rather than when Docker sets it at Join.
   */
  private async parentMac(network: NetworkRecord, asked: string | undefined): Promise<string> {
    if (asked)
      throw new PluginError(
        `network ${network.id.slice(0, 12)} gives its containers ipvlan links, which have the MAC of parent '${network.parent}' ` +
          `(the kernel sets no other); leave out --mac-address (${asked}), or use a macvlan network for a MAC of the container's own`,
      );
    const parent = await this.links.get(network.parent);
    if (!parent?.mac) throw parentGone(network);
    return parent.mac;
  }

  /** Creates the host-side link; Docker moves it into the container. */
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
    const lost6 = network.dhcp?.ipv6 && endpoint.leaseLost && !endpoint.slaac && !endpoint.dhcp6;
    if ((network.dhcp && !network.dhcp.noIpv4 && !endpoint.lease) || lost6)
      throw new PluginError(
        `endpoint ${endpoint.id.slice(0, 12)} lost its DHCP lease of ${endpoint.leaseLost?.address ?? 'its address'}; disconnect and connect the container again for a new one`,
      );
    const name = await this.makeLink(network, endpoint);
    crashPoint('endpoint-link-ready');
    try {
      if (network.dhcp) endpoint = await this.recordJoin(network, endpoint, name, sandbox);
      if (network.hostAccess && endpoint.ipv4) {
        await this.hostAccess.route(networkId, network.hostAccess, endpoint.ipv4.split('/')[0]);
        crashPoint('route-added');
      }
    } catch (err) {
      await this.links.delete(name);
      throw err;
    }
    this.forgotten.joined(endpointId);
    const answer = joinAnswer(network, endpoint, name);
    // Routers need no address in the prefix they advertise: their link-local address is the one they answer on.
    const router6 = answer.gatewayIpv6 && this.slaac.poolRouter(network);
    if (router6) answer.gatewayIpv6 = router6;
    return answer;
  }

  /**
   * What a lost lease needs to remove a DHCP endpoint's interface: the container's namespace, and for an ipvlan the
   * index of its link (see EndpointRecord.linkIndex).
   */
  private async recordJoin(
    network: NetworkRecord,
    endpoint: EndpointRecord,
    name: string,
    sandbox: string | undefined,
  ): Promise<EndpointRecord> {
    const linkIndex = ownMac(childMode(network)) ? undefined : (await this.links.get(name))?.index;
    if ((!sandbox || sandbox === endpoint.sandbox) && linkIndex === endpoint.linkIndex) return endpoint;
    const record = {
      ...endpoint,
      ...(sandbox && { sandbox }),
      ...(linkIndex !== undefined && { linkIndex }),
    };
    await this.state.endpointStore.put(record.id, record);
    this.state.endpoints.set(record.id, record);
    return record;
  }

  /** The endpoint's host-side link on the network's parent; answers its name. */
  private async makeLink(network: NetworkRecord, endpoint: EndpointRecord): Promise<string> {
    // passthru admits one macvlan on the parent: a previous endpoint's link must be gone first.
    if (network.mode === 'passthru' && this.reaper.busy) await this.reaper.settled();
    const parent = await this.links.get(network.parent);
    if (!parent) throw parentGone(network);
    const name = endpointLinkName(endpoint.id);
    const spec = {
      name,
      parentIndex: parent.index,
      ...childMode(network),
      // In passthru mode the link takes the parent's own MAC; Docker sets the endpoint's inside the container.
      ...(network.mode !== 'passthru' && { mac: endpoint.mac }),
      ...(network.mtu !== undefined && { mtu: network.mtu }),
    };
    // A link by this name of ours is left from an interrupted Join of this endpoint: it is replaced. Anyone else's stays.
    const outcome = await unlessUnsupported(spec.kind, network.parent, () =>
      this.links.replaceOwnChild(spec, MARK_ENDPOINT),
    );
    if (outcome === 'name-taken')
      throw new PluginError(
        `cannot create link '${name}' for endpoint ${endpoint.id.slice(0, 12)}: a link by that name exists and is not this plugin's`,
      );
    if (outcome === 'parent-busy')
      throw new PluginError(
        `the kernel refused a ${spec.kind} on parent '${network.parent}' (EBUSY): it carries links of the other kind ` +
          `(macvlan or ipvlan; those inside containers, such as Docker's own macvlan or ipvlan driver's, count too) or a ` +
          `passthru macvlan, or it is a port of a bridge or bond; 'tsmacvlan doctor --parent ${network.parent}' shows what the host sees`,
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
  private async noteReleasesDue(networkId: string, endpoint: EndpointRecord, strict = false): Promise<void> {
    const network = this.state.networks.get(networkId);
    if (!this.releaseDue || !network || endpoint.lease) return;
    const note = this.releaseDue;
    const families = [
      [network.ipv4, endpoint.ipv4],
      [network.ipv6, endpoint.ipv6],
    ] as const;
    // The two families' subnets have journals of their own: their notes are written side by side.
    await Promise.all(
      families.map(async ([data, address]) => {
        if (!data || !address) return;
        await note(data.pool, address.split('/')[0], data.addressSpace).catch((err: unknown) => {
          if (strict) throw err;
          this.log.warn({ err, endpoint: endpoint.id, address }, 'could not note the release due for an address');
        });
      }),
    );
  }

  /**
   * Deletes an endpoint Docker forgot (forgotten-endpoints.ts). Its addresses' releases are due first, and must be
   * noted: no ReleaseAddress will come for them, so a due that cannot be noted (etcd unreachable) throws, and the
   * endpoint stays for the next check.
   */
  private async deleteForgottenLocked(networkId: string, endpointId: string): Promise<void> {
    const endpoint = this.state.endpoints.get(endpointId);
    if (!endpoint) return;
    await this.noteReleasesDue(networkId, endpoint, true);
    await this.deleteLocked(networkId, endpointId, false);
  }

  private async deleteLocked(networkId: string, endpointId: string, noteDues = true): Promise<void> {
    this.forgotten.deleted(endpointId);
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
    if (endpoint.lease) this.dhcp.release(clientKey(endpoint.lease));
    if (endpoint.dhcp6) this.slaac.release(endpoint.dhcp6.lease.mac);
    const hostAddress = this.state.networks.get(networkId)?.hostAccess;
    if (hostAddress && endpoint.ipv4) {
      await this.hostAccess.unroute(networkId, endpoint.ipv4.split('/')[0]);
      crashPoint('route-removed');
    }
    // Only once the delete has succeeded: Docker keeps an endpoint whose delete failed, and its address with it.
    if (noteDues) await this.noteReleasesDue(networkId, endpoint);
    // Only our own link: a name clash with someone else's link must not cost them their interface. Its deletion
    // (17-20 ms of kernel time) finishes after the answer; if the plugin dies first, the link is ours and owned by
    // no record, so the next start deletes it.
    if (link && this.links.owns(link)) {
      this.reaper.delete(name).catch((err) => this.log.warn({ err, link: name }, 'could not delete endpoint link'));
    }
  }
}

function parentGone(network: NetworkRecord): PluginError {
  return new PluginError(
    `parent '${network.parent}' of network ${network.id.slice(0, 12)} no longer exists; bring it back or recreate the network`,
  );
}
