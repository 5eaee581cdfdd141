// The leases of DHCP endpoints: obtained at CreateEndpoint, renewed for the endpoint's life, kept in its record,
// resumed after a restart, released at DeleteEndpoint. One DhcpClients for the daemon, opened at the first need.
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import {
  type DhcpClients,
  type DhcpCounts,
  type DhcpIdentity,
  type LeaseChange,
  type LeasePhase,
  NoDhcpAnswer,
  openDhcpClients,
  SharedLease,
} from '../dhcp/clients';
import { clientKey, type Lease } from '../dhcp/lease';
import { PluginError } from '../errors';
import { deleteInNamespace, deleteMovedChild, type ForeignLink } from '../kernel/foreign-links';
import type { Links } from '../kernel/links';
import type { KeyedMutex } from '../state/keyed-mutex';
import type { DriverState } from './driver-state';
import { endpointClientId, type EndpointRecord } from './endpoint-naming';
import { childMode, ownMac } from './link-kind';
import type { NetworkRecord } from './network-options';

export type OpenClients = (log: Logger) => { clients: DhcpClients; close: () => void };

/** The leases by phase, with those lost (their endpoints cut off), and what happened to leases since start. */
export interface DhcpFigures {
  leases: Record<LeasePhase | 'lost', number>;
  counts: DhcpCounts;
}

export class DhcpLeases {
  private opened: { clients: DhcpClients; close: () => void } | undefined;

  constructor(
    private readonly links: Links,
    private readonly state: DriverState,
    private readonly endpointLocks: KeyedMutex,
    private readonly log: Logger,
    private readonly open: OpenClients = openDhcpClients,
  ) {}

  private get clients(): DhcpClients {
    if (!this.opened) {
      this.opened = this.open(this.log);
      this.opened.clients.on('lease', (change) => void this.changed(change));
    }
    return this.opened.clients;
  }

  /**
   * A lease for the endpoint on the network's parent, or an error saying no server answered within the network's
   * timeout, or that the server cannot tell it from another container of the parent. `onChecking` gets each lease
   * the server grants as its ARP check begins (see DhcpClients.acquire).
   */
  async acquire(
    network: NetworkRecord,
    endpoint: Pick<EndpointRecord, 'id' | 'mac'>,
    onChecking?: (lease: Lease) => void,
  ): Promise<Lease> {
    const seconds = network.dhcp!.timeoutSeconds;
    const ifindex = await this.parentIndex(network);
    const identity = dhcpIdentity(network, endpoint);
    try {
      return await this.clients.acquire(ifindex, identity, seconds * 1000, undefined, onChecking);
    } catch (error) {
      if (error instanceof SharedLease) throw sharedLeaseError(network, error);
      if (!(error instanceof NoDhcpAnswer)) throw error;
      const who = identity.clientId ? `client id ${identity.clientId}` : `MAC ${identity.mac}`;
      throw new PluginError(
        `no DHCP server answered on ${network.parent} within ${seconds} s (for ${who}); check that a DHCP server ` +
          `serves the LAN of ${network.parent} and has free addresses, or give it longer with -o dhcp_timeout=<seconds>`,
      );
    }
  }

  /** Sends DHCPRELEASE for the lease (see clientKey: the lease or the endpoint's DHCP identity) and stops renewing it. */
  release(key: string): void {
    this.opened?.clients.release(key);
  }

  /**
   * At start: leases of answered endpoints renew on their schedule again; leases of endpoints whose CreateEndpoint
   * was never answered (Docker does not know them) are released.
   */
  async resumeAtStart(answered: EndpointRecord[], unanswered: EndpointRecord[]): Promise<void> {
    for (const endpoint of [...answered, ...unanswered]) {
      const network = this.state.networks.get(endpoint.networkId);
      if (!endpoint.lease || !network) continue;
      let ifindex: number;
      try {
        ifindex = await this.parentIndex(network);
      } catch (error) {
        this.log.error({ endpoint: endpoint.id, error: (error as Error).message }, 'cannot resume a DHCP lease');
        continue;
      }
      this.clients.resume(ifindex, endpoint.lease);
      if (endpoint.unanswered) {
        this.clients.release(clientKey(endpoint.lease));
        this.log.warn(
          { endpoint: endpoint.id, address: endpoint.lease.address },
          'released the lease of an unanswered endpoint',
        );
      }
    }
  }

  /** For the metrics, on scrape: one pass over the clients and one over the endpoints. */
  figures(): DhcpFigures {
    const phases = this.opened?.clients.phases() ?? { acquiring: 0, bound: 0, renewing: 0, rebinding: 0 };
    let lost = 0;
    for (const endpoint of this.state.endpoints.values()) if (endpoint.leaseLost) lost++;
    const counts = this.opened?.clients.counts ?? {
      renewals: 0,
      failures: { nak: 0, timeout: 0, declined: 0, changed: 0 },
    };
    return { leases: { ...phases, lost }, counts };
  }

  /** Stops renewing without releasing: the leases stay valid for the next start to resume. */
  close(): void {
    this.opened?.close();
    this.opened = undefined;
  }

  private async parentIndex(network: NetworkRecord): Promise<number> {
    const parent = await this.links.get(network.parent);
    if (!parent)
      throw new PluginError(
        `parent '${network.parent}' of network ${network.id.slice(0, 12)} no longer exists; bring it back or recreate the network`,
      );
    return parent.index;
  }

  /** A renewal's new times go to the record; a lease lost or moved to another address cuts the container off. */
  private async changed(change: LeaseChange): Promise<void> {
    const { event } = change;
    if (event.kind !== 'renewed' && event.kind !== 'changed' && event.kind !== 'lost') return;
    const key = clientKey(change);
    const owner = [...this.state.endpoints.values()].find(
      (endpoint) => endpoint.lease && clientKey(endpoint.lease) === key,
    );
    if (!owner) return;
    // At once, before any await: the client has started over (DISCOVER) and must not bind an address the container
    // would never get; a changed address goes back to the server.
    if (event.kind !== 'renewed') this.clients.release(key);
    await this.endpointLocks.run(owner.id, async () => {
      const endpoint = this.state.endpoints.get(owner.id);
      if (!endpoint?.lease) return; // deleted (or cut off) meanwhile
      try {
        if (event.kind === 'renewed') await this.keep(endpoint, event.lease);
        else await this.lostLease(endpoint, event.kind === 'changed' ? 'changed' : event.reason);
      } catch (error) {
        this.log.error({ endpoint: endpoint.id, error: (error as Error).message }, 'could not record a lease change');
      }
    });
  }

  private async keep(endpoint: EndpointRecord, lease: Lease): Promise<void> {
    const record = { ...endpoint, lease };
    await this.state.endpointStore.put(endpoint.id, record);
    this.state.endpoints.set(endpoint.id, record);
  }

  /**
   * The server took the address back (NAK), let it expire, or renewed to another one. The container must not keep
   * using it, and the plugin cannot give it a new one (Docker sets addresses only at Join): the DHCP client stops
   * (a new address would be released), the record keeps the endpoint without a lease, and the container's interface
   * is deleted. `docker network disconnect` + `connect` (or a restart of the container) leases anew.
   */
  private async lostLease(endpoint: EndpointRecord, reason: 'changed' | 'nak' | 'expired' | 'declined'): Promise<void> {
    const lease = endpoint.lease!;
    const { lease: _dropped, ...rest } = endpoint;
    const record: EndpointRecord = { ...rest, leaseLost: { address: lease.address, reason, at: Date.now() } };
    await this.state.endpointStore.put(endpoint.id, record);
    this.state.endpoints.set(endpoint.id, record);
    this.log.error(
      { endpoint: endpoint.id, mac: lease.mac, address: lease.address, reason },
      `DHCP lease of ${lease.address} lost (${reason}): the container's interface on this network is removed; disconnect and reconnect it (or restart the container) for a new lease`,
    );
    await this.cutOff(record);
  }

  /** Deletes the container's interface, from the host side (see foreign-links.ts: the kernel cannot take it down so). */
  async cutOff(endpoint: EndpointRecord): Promise<void> {
    const context = { endpoint: endpoint.id, mac: endpoint.mac, sandbox: endpoint.sandbox };
    try {
      if (!endpoint.sandbox) this.log.warn(context, 'the endpoint never joined a container: nothing to remove');
      else if (!(await this.deleteInterface(endpoint, endpoint.sandbox)))
        this.log.warn(context, "the container's interface is not in its namespace any more: nothing to remove");
      else this.log.warn(context, "removed the container's interface");
    } catch (error) {
      this.log.error({ ...context, error: (error as Error).message }, "could not remove the container's interface");
    }
  }

  /**
   * By the namespace file Docker gave at Join, or, where this process cannot see that file (the managed plugin's mount
   * namespace has none of Docker's), by the id the kernel gave the namespace when Docker moved the link there. A
   * macvlan is found by its MAC, an ipvlan (whose MAC its siblings share) by the index it had when Join made it.
   */
  private async deleteInterface(endpoint: EndpointRecord, sandbox: string): Promise<boolean> {
    const network = this.state.networks.get(endpoint.networkId);
    if (!network) return false;
    const mode = childMode(network);
    let which: ForeignLink;
    if (ownMac(mode)) which = { mac: endpoint.mac };
    else if (endpoint.linkIndex !== undefined) which = { index: endpoint.linkIndex, kind: mode.kind };
    else return false;
    if (existsSync(sandbox)) return deleteInNamespace(sandbox, which);
    return deleteMovedChild(await this.parentIndex(network), mode.kind, which);
  }
}

/**
 * Who the endpoint is to the DHCP server. A macvlan's MAC is its own, and its client identifier the MAC's (a
 * reservation by MAC pins its address). An ipvlan's is its parent's, shared by every container there: the identifier
 * is the endpoint's own (see endpointClientId), the same at every start.
 */
export function dhcpIdentity(network: NetworkRecord, endpoint: Pick<EndpointRecord, 'id' | 'mac'>): DhcpIdentity {
  return ownMac(childMode(network))
    ? { mac: endpoint.mac }
    : { mac: endpoint.mac, clientId: endpointClientId(endpoint.id) };
}

/** The server keys its leases by chaddr alone: on an ipvlan network it cannot tell the containers apart. */
function sharedLeaseError(network: NetworkRecord, error: SharedLease): PluginError {
  return new PluginError(
    `the DHCP server ${error.serverId} on ${network.parent} leased ${error.address} to this container although another ` +
      `container there holds it (DHCP client ${error.holder}): the server tells clients apart by their hardware address ` +
      `(chaddr) alone, and every container of an ipvlan network has the MAC of ${network.parent}. Make the server key ` +
      `its leases by the client identifier (option 61), as dnsmasq, ISC dhcpd and Kea do unless told otherwise ` +
      `(dnsmasq: no dhcp-ignore-clid; Kea: match-client-id true), or use a macvlan network`,
  );
}
