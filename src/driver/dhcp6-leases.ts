// The DHCPv6 leases of endpoints (see docs/ipv6.md): asked for at CreateEndpoint where the parent's router sends the
// M flag, checked on the LAN (duplicate address detection) before they are taken, renewed for the endpoint's life,
// kept in its record, resumed after a restart, released at DeleteEndpoint. One Dhcp6Clients for the daemon, opened
// at the first need.
import type { Logger } from 'pino';
import { type Dhcp6Clients, type Lease6Change, NoDhcp6Answer } from '../dhcp6/clients';
import type { Lease6 } from '../dhcp6/lease';
import { PluginError } from '../errors';
import type { Links } from '../kernel/links';
import type { Neighbourhood } from '../probe/neighbourhood';
import type { KeyedMutex } from '../state/keyed-mutex';
import type { DriverState } from './driver-state';
import type { EndpointRecord } from './endpoint-naming';
import type { NetworkRecord } from './network-options';

export type OpenClients6 = (log: Logger) => { clients: Dhcp6Clients; close: () => void };

export class Dhcp6Leases {
  private opened: { clients: Dhcp6Clients; close: () => void } | undefined;

  constructor(
    private readonly links: Links,
    private readonly state: DriverState,
    private readonly neighbourhood: Neighbourhood | undefined,
    private readonly endpointLocks: KeyedMutex,
    private readonly log: Logger,
    private readonly open: OpenClients6 | undefined,
    /** Removes a container's interface from the host side (DhcpLeases.cutOff). */
    private readonly cutOff: (endpoint: EndpointRecord) => Promise<void>,
  ) {}

  private get clients(): Dhcp6Clients {
    if (!this.opened) {
      if (!this.open) throw new PluginError('this plugin instance has no packet socket to ask a DHCPv6 server with');
      this.opened = this.open(this.log);
      this.opened.clients.on('lease', (change) => void this.changed(change));
    }
    return this.opened.clients;
  }

  /**
   * A lease for the endpoint's MAC on the network's parent within `timeoutMs`, its address checked on the LAN.
   * `onChecking` gets each lease the server grants as its check begins (see Dhcp6Clients.acquire).
   */
  async acquire(
    network: NetworkRecord,
    endpoint: Pick<EndpointRecord, 'mac'>,
    timeoutMs: number,
    onChecking?: (lease: Lease6) => void,
  ): Promise<Lease6> {
    const neighbourhood = this.neighbourhood;
    if (!neighbourhood) throw new PluginError('this plugin instance cannot check addresses on the LAN');
    const parent = await this.links.get(network.parent);
    if (!parent)
      throw new PluginError(`parent '${network.parent}' of network ${network.id.slice(0, 12)} no longer exists`);
    const check = async (_ifindex: number, value: bigint) => {
      const verdict = await neighbourhood.checkOnParent(network.parent, value);
      return verdict.held ? verdict.mac : undefined;
    };
    try {
      return await this.clients.acquire(parent.index, endpoint.mac, timeoutMs, check, onChecking);
    } catch (error) {
      if (!(error instanceof NoDhcp6Answer)) throw error;
      const seconds = network.dhcp!.timeoutSeconds;
      const { declined } = error;
      if (declined)
        throw new PluginError(
          `the DHCPv6 server on ${network.parent} leased ${declined.address} to MAC ${endpoint.mac}, but the device with ` +
            `MAC ${declined.heldBy} answered the duplicate address check for it (declined), and no other address came ` +
            `within ${seconds} s; free that address on the LAN or exclude it from the server's range, then try again`,
        );
      throw new PluginError(
        `the IPv6 router on ${network.parent} sets the M flag (addresses from DHCPv6), but no DHCPv6 server leased an ` +
          `address to MAC ${endpoint.mac} within ${seconds} s; check that a DHCPv6 server serves the LAN of ` +
          `${network.parent} and has free addresses, give it longer with -o dhcp_timeout=<seconds>, or leave out --ipv6`,
      );
    }
  }

  /** Sends RELEASE for the endpoint's lease and stops renewing it. */
  release(mac: string): void {
    this.opened?.clients.release(mac);
  }

  /** At start: answered endpoints' leases renew on schedule again; unanswered endpoints' leases are released. */
  async resumeAtStart(endpoints: EndpointRecord[]): Promise<void> {
    for (const endpoint of endpoints) {
      const network = this.state.networks.get(endpoint.networkId);
      if (!endpoint.dhcp6 || !network) continue;
      const parent = await this.links.get(network.parent).catch(() => undefined);
      if (!parent) {
        this.log.error({ endpoint: endpoint.id, parent: network.parent }, 'cannot resume a DHCPv6 lease: no parent');
        continue;
      }
      this.clients.resume(parent.index, endpoint.dhcp6.lease);
      if (endpoint.unanswered) this.clients.release(endpoint.dhcp6.lease.mac);
    }
  }

  get counts(): Dhcp6Clients['counts'] | undefined {
    return this.opened?.clients.counts;
  }

  close(): void {
    this.opened?.close();
    this.opened = undefined;
  }

  /** A renewal's new times go to the record; a lease lost (or moved to another address) cuts the container off. */
  private async changed({ mac, event }: Lease6Change): Promise<void> {
    if (event.kind !== 'renewed' && event.kind !== 'lost') return;
    const owner = [...this.state.endpoints.values()].find((endpoint) => endpoint.dhcp6?.lease.mac === mac);
    if (!owner) return;
    if (event.kind === 'lost') this.clients.release(mac); // it started over: nothing it binds could reach the container
    await this.endpointLocks.run(owner.id, async () => {
      const endpoint = this.state.endpoints.get(owner.id);
      if (!endpoint?.dhcp6) return;
      try {
        if (event.kind === 'renewed')
          await this.keep({ ...endpoint, dhcp6: { ...endpoint.dhcp6, lease: event.lease } });
        else await this.lost(endpoint, event.reason);
      } catch (error) {
        this.log.error(
          { endpoint: endpoint.id, error: (error as Error).message },
          'could not record a DHCPv6 lease change',
        );
      }
    });
  }

  private async keep(record: EndpointRecord): Promise<void> {
    await this.state.endpointStore.put(record.id, record);
    this.state.endpoints.set(record.id, record);
  }

  private async lost(endpoint: EndpointRecord, reason: string): Promise<void> {
    const { dhcp6, ...rest } = endpoint;
    const address = dhcp6!.lease.address;
    await this.keep({ ...rest, leaseLost: { address, reason, at: Date.now() } });
    this.log.error(
      { endpoint: endpoint.id, mac: endpoint.mac, address, reason },
      `DHCPv6 lease of ${address} lost (${reason}): the container's interface on this network is removed; disconnect and reconnect it (or restart the container) for a new lease`,
    );
    await this.cutOff(endpoint);
  }
}
