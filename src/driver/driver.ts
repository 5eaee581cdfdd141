// The network driver: Docker's network and endpoint lifecycle, decided here, carried out by the kernel layer and the
// store. Its parts, by lifecycle: the records (driver-state.ts), networks, endpoints and Join, host-access upkeep,
// start-up repair.
import type { Logger } from 'pino';
import type { Links } from '../kernel/links';
import type { Neighbourhood } from '../probe/neighbourhood';
import type { RouterAdverts } from '../ra/router-adverts';
import { KeyedMutex } from '../state/keyed-mutex';
import { type DhcpFigures, DhcpLeases, type OpenClients } from './dhcp-leases';
import { DriverState } from './driver-state';
import type { CreateEndpointRequest, CreatedEndpoint, JoinAnswer } from './endpoint-answers';
import { EndpointLifecycle, type ReleaseDue } from './endpoint-lifecycle';
import type { EndpointRecord } from './endpoint-naming';
import { HostAccess } from './host-access';
import { HostAccessUpkeep } from './host-access-upkeep';
import { LanAddresses } from './lan-addresses';
import { NetworkLifecycle, type CreateNetworkRequest } from './network-lifecycle';
import type { NetworkRecord } from './network-options';
import { Parents } from './parents';
import type { Repair } from './reconcile';
import type { SubnetAddresses } from './subnet-addresses';
import { Dhcp6Leases, type OpenClients6 } from './dhcp6-leases';
import { SlaacEndpoints } from './slaac-endpoints';
import { repairAtStart } from './start-up-repair';

export type { CreateEndpointRequest, CreateNetworkRequest, JoinAnswer };

export interface DriverOptions {
  openDhcp?: OpenClients;
  /** The DHCPv6 clients, for DHCP networks with IPv6 whose router sends the M flag. */
  openDhcp6?: OpenClients6;
  /** Told which LAN each network's subnets are on, asked about --ip addresses (probe before use). */
  neighbourhood?: Neighbourhood;
  releaseDue?: ReleaseDue;
  /** Heard on the parents of DHCP networks with IPv6: their SLAAC prefixes and routers. */
  routerAdverts?: RouterAdverts;
}

/** What the driver keeps count of, read by the metrics on scrape. */
export interface DriverFigures {
  /** Endpoints per network id, every network listed. */
  endpoints: Map<string, number>;
  /** Times link events were lost and every shim and parent checked again; host-access shims made again. */
  resyncs: number;
  shimsRemade: number;
  dhcp: DhcpFigures;
}

export class NetworkDriver {
  private readonly state: DriverState;
  private readonly parents: Parents;
  private readonly upkeep: HostAccessUpkeep;
  private readonly networkLife: NetworkLifecycle;
  private readonly endpointLife: EndpointLifecycle;
  private readonly dhcp: DhcpLeases;
  private readonly lan: LanAddresses;
  private readonly slaac: SlaacEndpoints;
  private readonly dhcp6: Dhcp6Leases;

  constructor(
    private readonly links: Links,
    stateDir: string,
    private readonly log: Logger,
    { openDhcp, openDhcp6, neighbourhood, releaseDue, routerAdverts }: DriverOptions = {},
  ) {
    this.state = new DriverState(stateDir);
    this.parents = new Parents(links);
    const hostAccess = new HostAccess(links);
    const parentLocks = new KeyedMutex();
    this.upkeep = new HostAccessUpkeep(links, this.state, hostAccess, parentLocks, log);
    this.networkLife = new NetworkLifecycle(this.state, this.parents, hostAccess, this.upkeep, parentLocks, log);
    const endpointLocks = new KeyedMutex();
    this.dhcp = new DhcpLeases(links, this.state, endpointLocks, log, openDhcp);
    this.dhcp6 = new Dhcp6Leases(links, this.state, neighbourhood, endpointLocks, log, openDhcp6, (endpoint) =>
      this.dhcp.cutOff(endpoint),
    );
    this.slaac = new SlaacEndpoints(links, this.state, routerAdverts, neighbourhood, endpointLocks, log, this.dhcp6);
    const { state, dhcp, slaac } = this;
    this.endpointLife = new EndpointLifecycle(links, state, hostAccess, dhcp, slaac, endpointLocks, log, releaseDue);
    this.lan = new LanAddresses(neighbourhood);
    for (const network of this.state.networks.values()) this.lan.attach(network);
  }

  /** Which addresses the records hold, per subnet (the IPAM asks before it frees one Docker forgot). */
  get addresses(): SubnetAddresses {
    return this.state.addresses;
  }

  /**
   * Brings the kernel in line with the state, before any request is answered (see repairAtStart); then DHCP leases
   * renew again, and those of endpoints never answered are released.
   */
  async reconcile({ dryRun = false } = {}): Promise<Repair[]> {
    const { links, state, parents, upkeep, log } = this;
    const unanswered = state.unanswered.endpoints;
    // One dump for both: the repairs delete only links no record owns, and only recorded endpoints' links count below.
    const present = await links.list();
    const repairs = await repairAtStart({ links, state, parents, upkeep, log }, dryRun, present);
    if (dryRun) return repairs;
    await this.dhcp.resumeAtStart([...state.endpoints.values()], unanswered);
    await this.dhcp6.resumeAtStart([...state.endpoints.values(), ...unanswered]);
    this.endpointLife.forgotten.resumeAtStart(new Set(present.map((link) => link.name)));
    // Each parent of an IPv6 DHCP network is asked for a router advertisement now: prefixes known before a container needs one.
    for (const network of state.networks.values()) await this.slaac.watch(network);
    return repairs;
  }

  /** Resolves once the endpoint links asked to be deleted so far are gone. */
  settled(): Promise<void> {
    return this.endpointLife.reaper.settled();
  }

  /** Finishes pending link deletions and stops the link watch; the state stays. */
  async close(): Promise<void> {
    this.dhcp.close();
    this.dhcp6.close();
    this.upkeep.stop();
    this.endpointLife.forgotten.stop();
    await this.endpointLife.reaper.close();
  }

  /** Counts kept as the driver goes; reading them is one pass over the networks (and DHCP's over its clients). */
  figures(): DriverFigures {
    const endpoints = new Map<string, number>();
    for (const id of this.state.networks.keys()) endpoints.set(id, this.state.endpointsOf.get(id)?.size ?? 0);
    const { resyncs, shimsRemade } = this.upkeep;
    return { endpoints, resyncs, shimsRemade, dhcp: this.dhcp.figures() };
  }

  listNetworks(): NetworkRecord[] {
    return [...this.state.networks.values()];
  }

  listEndpoints(): EndpointRecord[] {
    return [...this.state.endpoints.values()];
  }

  async createNetwork(req: CreateNetworkRequest): Promise<void> {
    const retry = this.state.networks.has(req.networkId);
    await this.networkLife.create(req);
    const network = this.state.networks.get(req.networkId);
    if (network) this.lan.attach(network);
    if (network && !retry) await this.slaac.watch(network);
  }

  async deleteNetwork(networkId: string): Promise<void> {
    const network = this.state.networks.get(networkId);
    if (!network) return;
    for (const endpointId of [...(this.state.endpointsOf.get(networkId) ?? [])])
      await this.endpointLife.delete(networkId, endpointId);
    try {
      await this.networkLife.delete(network);
    } finally {
      if (!this.state.networks.has(networkId)) {
        this.lan.detach(networkId);
        this.slaac.unwatch(network);
      }
    }
  }

  /**
   * Records the endpoint; answers the MAC when Docker gave none, and the leased address on a DHCP network. An address
   * given by name that a device on the LAN answers for is refused first.
   */
  async createEndpoint(req: CreateEndpointRequest): Promise<CreatedEndpoint> {
    const network = this.state.networks.get(req.networkId);
    if (network && !this.state.endpoints.has(req.endpointId)) await this.lan.check(network, [req.ipv4, req.ipv6]);
    return this.endpointLife.create(req);
  }

  /** Creates the host-side macvlan or ipvlan link; Docker moves it into the container (whose namespace is `sandbox`). */
  join(networkId: string, endpointId: string, sandbox?: string): Promise<JoinAnswer> {
    return this.endpointLife.join(networkId, endpointId, sandbox);
  }

  /** Removes the host-side link (Docker has moved it back from the container by now) and forgets the endpoint. */
  deleteEndpoint(networkId: string, endpointId: string): Promise<void> {
    return this.endpointLife.delete(networkId, endpointId);
  }
}
