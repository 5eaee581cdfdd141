// What the driver knows: the network and endpoint records, on disk and in memory, and the indexes over them.
import { join } from 'node:path';
import { PluginError } from '../errors';
import { RecordStore } from '../state/record-store';
import type { EndpointRecord } from './endpoint-naming';
import { shimName } from './host-access';
import type { NetworkRecord } from './network-options';
import { ENDPOINT_RECORDS, NETWORK_RECORDS } from './record-formats';
import { SubnetAddresses } from './subnet-addresses';

function index(map: Map<string, Set<string>>, key: string, id: string): void {
  let ids = map.get(key);
  if (!ids) map.set(key, (ids = new Set()));
  ids.add(id);
}

function unindex(map: Map<string, Set<string>>, key: string, id: string): void {
  const ids = map.get(key);
  ids?.delete(id);
  if (ids?.size === 0) map.delete(key);
}

export class DriverState {
  readonly networks: Map<string, NetworkRecord>;
  readonly endpoints: Map<string, EndpointRecord>;
  /** Endpoint ids per network and network ids per parent, so no check has to scan every record. */
  readonly endpointsOf = new Map<string, Set<string>>();
  readonly networksOn = new Map<string, Set<string>>();
  readonly shims = new Map<string, string>(); // shim link name → network id
  /** The addresses the records hold, per subnet: what the IPAM asks before freeing one Docker forgot. */
  readonly addresses = new SubnetAddresses();
  readonly networkStore: RecordStore<NetworkRecord>;
  readonly endpointStore: RecordStore<EndpointRecord>;
  /** Records of creates a crash cut short before their answer: kept apart until reconcile rolls them back. */
  unanswered: { networks: NetworkRecord[]; endpoints: EndpointRecord[] } = { networks: [], endpoints: [] };

  constructor(stateDir: string) {
    this.networkStore = new RecordStore(join(stateDir, 'networks'), NETWORK_RECORDS);
    this.endpointStore = new RecordStore(join(stateDir, 'endpoints'), ENDPOINT_RECORDS);
    this.networks = this.networkStore.loadAll();
    this.endpoints = this.endpointStore.loadAll();
    for (const [id, network] of this.networks)
      if (network.unanswered) (this.unanswered.networks.push(network), this.networks.delete(id));
    for (const [id, endpoint] of this.endpoints)
      if (endpoint.unanswered) (this.unanswered.endpoints.push(endpoint), this.endpoints.delete(id));
    for (const network of this.networks.values()) this.indexNetwork(network);
    for (const endpoint of this.endpoints.values()) this.indexEndpoint(endpoint);
  }

  /** Keeps an answered network in memory and in the indexes (its record is on disk already). */
  addNetwork(network: NetworkRecord): void {
    this.networks.set(network.id, network);
    this.indexNetwork(network);
  }

  private indexNetwork(network: NetworkRecord): void {
    index(this.networksOn, network.parent, network.id);
    this.addresses.addNetwork(network);
    if (network.hostAccess) this.shims.set(shimName(network.id), network.id);
  }

  forgetNetwork(network: NetworkRecord): void {
    this.networks.delete(network.id);
    unindex(this.networksOn, network.parent, network.id);
    this.addresses.forgetNetwork(network);
    if (network.hostAccess) this.shims.delete(shimName(network.id));
  }

  addEndpoint(endpoint: EndpointRecord): void {
    this.endpoints.set(endpoint.id, endpoint);
    this.indexEndpoint(endpoint);
  }

  private indexEndpoint(endpoint: EndpointRecord): void {
    index(this.endpointsOf, endpoint.networkId, endpoint.id);
    this.addresses.addEndpoint(endpoint, this.networks.get(endpoint.networkId));
  }

  forgetEndpoint(endpoint: Pick<EndpointRecord, 'id' | 'networkId'>): void {
    const record = this.endpoints.get(endpoint.id);
    if (!record) return;
    this.endpoints.delete(endpoint.id);
    unindex(this.endpointsOf, record.networkId, record.id);
    this.addresses.forgetEndpoint(record, this.networks.get(record.networkId));
  }

  /** The network's record, or an error saying it is unknown. */
  network(networkId: string): NetworkRecord {
    const network = this.networks.get(networkId);
    if (!network)
      throw new PluginError(
        `network ${networkId} is not known to tsmacvlan; recreate it with 'docker network create -d tsmacvlan ...'`,
      );
    return network;
  }

  /** The bare IPv4 addresses of the network's endpoints. */
  *containerAddresses(networkId: string): Iterable<string> {
    for (const endpointId of this.endpointsOf.get(networkId) ?? []) {
      const ipv4 = this.endpoints.get(endpointId)?.ipv4;
      if (ipv4) yield ipv4.split('/')[0];
    }
  }
}
