// The network driver: Docker's network and endpoint lifecycle, decided here, carried out by the kernel layer and the
// store. Its parts, by lifecycle: the records (driver-state.ts), networks, endpoints and Join, host-access upkeep,
// start-up repair.
import type { Logger } from 'pino';
import type { Links } from '../kernel/links';
import { KeyedMutex } from '../state/keyed-mutex';
import { DhcpLeases, type OpenClients } from './dhcp-leases';
import { DriverState } from './driver-state';
import {
  EndpointLifecycle,
  type CreateEndpointRequest,
  type CreatedEndpoint,
  type JoinAnswer,
  type ReleaseDue,
} from './endpoint-lifecycle';
import type { EndpointRecord } from './endpoint-naming';
import { HostAccess } from './host-access';
import { HostAccessUpkeep } from './host-access-upkeep';
import { NetworkLifecycle, type CreateNetworkRequest } from './network-lifecycle';
import type { NetworkRecord } from './network-options';
import { Parents } from './parents';
import type { Repair } from './reconcile';
import { repairAtStart } from './start-up-repair';

export type { CreateEndpointRequest, CreateNetworkRequest, JoinAnswer };

export interface DriverOptions {
  openDhcp?: OpenClients;
  releaseDue?: ReleaseDue;
}

export class NetworkDriver {
  private readonly state: DriverState;
  private readonly parents: Parents;
  private readonly upkeep: HostAccessUpkeep;
  private readonly networkLife: NetworkLifecycle;
  private readonly endpointLife: EndpointLifecycle;
  private readonly dhcp: DhcpLeases;

  constructor(
    private readonly links: Links,
    stateDir: string,
    private readonly log: Logger,
    { openDhcp, releaseDue }: DriverOptions = {},
  ) {
    this.state = new DriverState(stateDir);
    this.parents = new Parents(links);
    const hostAccess = new HostAccess(links);
    const parentLocks = new KeyedMutex();
    this.upkeep = new HostAccessUpkeep(links, this.state, hostAccess, parentLocks, log);
    this.networkLife = new NetworkLifecycle(this.state, this.parents, hostAccess, this.upkeep, parentLocks, log);
    const endpointLocks = new KeyedMutex();
    this.dhcp = new DhcpLeases(links, this.state, endpointLocks, log, openDhcp);
    this.endpointLife = new EndpointLifecycle(links, this.state, hostAccess, this.dhcp, endpointLocks, log, releaseDue);
  }

  /**
   * Brings the kernel in line with the state, before any request is answered (see repairAtStart); then DHCP leases
   * renew again, and those of endpoints never answered are released.
   */
  async reconcile({ dryRun = false } = {}): Promise<Repair[]> {
    const { links, state, parents, upkeep, log } = this;
    const unanswered = state.unanswered.endpoints;
    const repairs = await repairAtStart({ links, state, parents, upkeep, log }, dryRun);
    if (!dryRun) await this.dhcp.resumeAtStart([...state.endpoints.values()], unanswered);
    return repairs;
  }

  /** Resolves once the endpoint links asked to be deleted so far are gone. */
  settled(): Promise<void> {
    return this.endpointLife.reaper.settled();
  }

  /** Finishes pending link deletions and stops the link watch; the state stays. */
  async close(): Promise<void> {
    this.dhcp.close();
    this.upkeep.stop();
    await this.endpointLife.reaper.close();
  }

  listNetworks(): NetworkRecord[] {
    return [...this.state.networks.values()];
  }

  listEndpoints(): EndpointRecord[] {
    return [...this.state.endpoints.values()];
  }

  createNetwork(req: CreateNetworkRequest): Promise<void> {
    return this.networkLife.create(req);
  }

  async deleteNetwork(networkId: string): Promise<void> {
    const network = this.state.networks.get(networkId);
    if (!network) return;
    for (const endpointId of [...(this.state.endpointsOf.get(networkId) ?? [])])
      await this.endpointLife.delete(networkId, endpointId);
    await this.networkLife.delete(network);
  }

  /** Records the endpoint; answers the MAC when Docker gave none, and the leased address on a DHCP network. */
  createEndpoint(req: CreateEndpointRequest): Promise<CreatedEndpoint> {
    return this.endpointLife.create(req);
  }

  /** Creates the host-side macvlan link; Docker moves it into the container (whose namespace is `sandbox`). */
  join(networkId: string, endpointId: string, sandbox?: string): Promise<JoinAnswer> {
    return this.endpointLife.join(networkId, endpointId, sandbox);
  }

  /** Removes the host-side link (Docker has moved it back from the container by now) and forgets the endpoint. */
  deleteEndpoint(networkId: string, endpointId: string): Promise<void> {
    return this.endpointLife.delete(networkId, endpointId);
  }
}
