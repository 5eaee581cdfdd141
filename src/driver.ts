// The network driver: Docker's network and endpoint lifecycle, decided here, carried out by the kernel layer and the store.
import { join } from 'node:path';
import type { Logger } from 'pino';
import { MARK_ENDPOINT, endpointLinkName, endpointMac, type EndpointRecord } from './endpoint';
import { crashPoint } from './crash';
import { PluginError } from './errors';
import { HostAccess, shimName } from './host-access';
import { KernelError, type Links } from './link';
import { KeyedMutex } from './lock';
import { checkHostAccess, parseNetworkOptions, type IpData, type NetworkRecord } from './network';
import { Parents, internalParentName } from './parent';
import { planRepairs, type Repair } from './reconcile';
import { LinkReaper } from './reaper';
import { RecordStore } from './store';

export interface CreateNetworkRequest {
  networkId: string;
  generic: Record<string, unknown>;
  internal: boolean;
  /** Addresses Docker's IPAM keeps from containers (--aux-address), bare. */
  reserved: string[];
  ipv4?: IpData;
  ipv6?: IpData;
}

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
}

export class NetworkDriver {
  private readonly networks: Map<string, NetworkRecord>;
  private readonly endpoints: Map<string, EndpointRecord>;
  /** Endpoint ids per network and network ids per parent, so no check has to scan every record. */
  private readonly endpointsOf = new Map<string, Set<string>>();
  private readonly networksOn = new Map<string, Set<string>>();
  private readonly shims = new Map<string, string>(); // shim link name → network id
  private readonly pendingRepairs = new Map<string, NodeJS.Timeout>();
  private stopWatching: (() => void) | undefined;
  private readonly parentLocks = new KeyedMutex();
  /** One request at a time per endpoint: Docker sends them in order, a client that does not must not tangle them. */
  private readonly endpointLocks = new KeyedMutex();
  private readonly parents: Parents;
  private readonly hostAccess: HostAccess;
  private readonly reaper = new LinkReaper();
  private readonly networkStore: RecordStore<NetworkRecord>;
  private readonly endpointStore: RecordStore<EndpointRecord>;
  /** Records of creates a crash cut short before their answer: kept apart until reconcile rolls them back. */
  private unanswered: { networks: NetworkRecord[]; endpoints: EndpointRecord[] } = { networks: [], endpoints: [] };

  constructor(
    private readonly links: Links,
    stateDir: string,
    private readonly log: Logger,
  ) {
    this.parents = new Parents(links);
    this.hostAccess = new HostAccess(links);
    this.networkStore = new RecordStore(join(stateDir, 'networks'));
    this.endpointStore = new RecordStore(join(stateDir, 'endpoints'));
    this.networks = this.networkStore.loadAll();
    this.endpoints = this.endpointStore.loadAll();
    for (const [id, network] of this.networks)
      if (network.unanswered) (this.unanswered.networks.push(network), this.networks.delete(id));
    for (const [id, endpoint] of this.endpoints)
      if (endpoint.unanswered) (this.unanswered.endpoints.push(endpoint), this.endpoints.delete(id));
    for (const network of this.networks.values()) {
      this.index(this.networksOn, network.parent, network.id);
      if (network.hostAccess) this.shims.set(shimName(network.id), network.id);
    }
    for (const endpoint of this.endpoints.values()) this.index(this.endpointsOf, endpoint.networkId, endpoint.id);
  }

  private index(map: Map<string, Set<string>>, key: string, id: string): void {
    let ids = map.get(key);
    if (!ids) map.set(key, (ids = new Set()));
    ids.add(id);
  }

  private unindex(map: Map<string, Set<string>>, key: string, id: string): void {
    const ids = map.get(key);
    ids?.delete(id);
    if (ids?.size === 0) map.delete(key);
  }

  /**
   * Brings the kernel in line with the state, before any request is answered: re-creates parents this plugin made
   * that are gone (a reboot removes them), marks those a crash left unmarked, deletes links marked as the plugin's
   * that nothing owns (only in this namespace: links inside containers are never touched), re-makes host-access
   * shims. One log line per repair. With `dryRun`, only says what it would do.
   */
  async reconcile({ dryRun = false } = {}): Promise<Repair[]> {
    const networks = [...this.listNetworks(), ...this.unanswered.networks];
    const endpoints = [...this.listEndpoints(), ...this.unanswered.endpoints];
    const repairs = planRepairs(await this.links.list(), this.links.group, networks, endpoints);
    if (dryRun) return repairs;
    for (const repair of repairs) {
      if (repair.action === 'forget') {
        await (repair.record === 'network' ? this.networkStore : this.endpointStore).remove(repair.id);
        this.log.warn({ [repair.record]: repair.id, reason: repair.reason }, `rolled back ${repair.record}`);
        continue;
      }
      if (repair.action === 'delete') await this.links.delete(repair.link);
      else {
        const networkId = repair.networkId as string;
        await this.parents.restore(repair.link, networkId, this.networks.get(networkId)?.vlanProtocol);
      }
      this.log.info({ link: repair.link, action: repair.action, reason: repair.reason }, 'repaired');
    }
    this.unanswered = { networks: [], endpoints: [] };
    for (const network of this.networks.values()) if (network.hostAccess) await this.repairHostAccess(network.id);
    this.updateWatch();
    return repairs;
  }

  /** Resolves once the endpoint links asked to be deleted so far are gone. */
  settled(): Promise<void> {
    return this.reaper.settled();
  }

  /** Finishes pending link deletions and stops the link watch; the state stays. */
  async close(): Promise<void> {
    this.stopWatch();
    await this.reaper.close();
  }

  private stopWatch(): void {
    this.stopWatching?.();
    this.stopWatching = undefined;
  }

  /**
   * Keeps host-access shims alive (re-made within moments when their parent comes back or they are removed) by
   * watching link events, only while a host_access network exists: every link change on the host costs an event.
   */
  private updateWatch(): void {
    if (this.shims.size > 0 && !this.stopWatching) this.stopWatching = this.watchLinks();
    else if (this.shims.size === 0) this.stopWatch();
  }

  private watchLinks(): () => void {
    const onChange = (name: string) => {
      const affected = [...(this.networksOn.get(name) ?? [])];
      const shimOf = this.shims.get(name);
      if (shimOf) affected.push(shimOf);
      for (const networkId of affected) {
        if (!this.networks.get(networkId)?.hostAccess || this.pendingRepairs.has(networkId)) continue;
        // One repair per burst of events (a create, its mark and bringing it up are three events).
        this.pendingRepairs.set(
          networkId,
          setTimeout(() => {
            this.pendingRepairs.delete(networkId);
            this.repairHostAccess(networkId).catch((err) =>
              this.log.error({ err, networkId }, 'could not repair host access'),
            );
          }, 50),
        );
      }
    };
    // Dropped events may have been any link's: every shim and every parent is checked, as its own event would have.
    const onLost = (err: Error) => {
      this.log.warn({ err }, 'link events were lost; checking every shim and parent again');
      for (const name of [...this.shims.keys(), ...this.networksOn.keys()]) onChange(name);
    };
    const stop = this.links.watch(onChange, onLost);
    return () => {
      stop();
      for (const timer of this.pendingRepairs.values()) clearTimeout(timer);
      this.pendingRepairs.clear();
    };
  }

  private async repairHostAccess(networkId: string): Promise<void> {
    const network = this.networks.get(networkId);
    if (!network?.hostAccess) return;
    await this.parentLocks.run(network.parent, async () => {
      if (!this.networks.has(networkId)) return; // deleted meanwhile
      const made = await this.hostAccess.ensure(this.shimSpec(network), () => this.containerAddresses(networkId));
      this.log.debug({ networkId, made }, 'host access checked');
    });
  }

  private shimSpec(network: NetworkRecord) {
    return {
      networkId: network.id,
      parent: network.parent,
      address: network.hostAccess as string,
      ...(network.mtu !== undefined && { mtu: network.mtu }),
    };
  }

  private *containerAddresses(networkId: string): Iterable<string> {
    for (const endpointId of this.endpointsOf.get(networkId) ?? []) {
      const ipv4 = this.endpoints.get(endpointId)?.ipv4;
      if (ipv4) yield ipv4.split('/')[0];
    }
  }

  listNetworks(): NetworkRecord[] {
    return [...this.networks.values()];
  }

  listEndpoints(): EndpointRecord[] {
    return [...this.endpoints.values()];
  }

  async createNetwork(req: CreateNetworkRequest): Promise<void> {
    const options = parseNetworkOptions(req.generic);
    if (options.hostAccess) checkHostAccess(options.hostAccess, req.ipv4, req.reserved);
    if (this.networks.has(req.networkId)) return; // a retry of a create that already succeeded
    const parentName = options.parent ?? internalParentName(req.networkId);
    await this.parentLocks.run(parentName, async () => {
      if (this.networks.has(req.networkId)) return; // the same request, sent again while the first was under way
      const sharing = this.networksOn.get(parentName);
      if (sharing?.size) {
        const passthru = [...sharing].find((id) => this.networks.get(id)?.mode === 'passthru');
        if (passthru)
          throw new PluginError(
            `parent '${parentName}' is taken by network ${passthru.slice(0, 12)} in passthru mode, which cannot share its parent`,
          );
        if (options.mode === 'passthru')
          throw new PluginError(
            `macvlan_mode=passthru needs a parent of its own, but '${parentName}' is used by ${sharing.size} other network(s)`,
          );
      }
      // Everything is checked before anything is made.
      const plan = options.parent ? await this.parents.plan(parentName) : undefined;
      const parentMtu = plan ? ('existing' in plan ? plan.existing.mtu : plan.vlan.base.mtu) : undefined;
      if (options.vlanProtocol && plan && 'existing' in plan && plan.existing.vlanProtocol !== options.vlanProtocol) {
        throw new PluginError(
          `parent '${parentName}' exists with protocol ${plan.existing.vlanProtocol ?? 'none (not a VLAN)'}, not vlan_protocol=${options.vlanProtocol}`,
        );
      }
      if (options.mtu !== undefined && parentMtu !== undefined && options.mtu > parentMtu) {
        throw new PluginError(
          `mtu ${options.mtu} is larger than the MTU of parent '${parentName}' (${parentMtu}); use at most ${parentMtu}`,
        );
      }
      const record: NetworkRecord = {
        id: req.networkId,
        parent: parentName,
        ownsParent: !plan || !('existing' in plan) || plan.owned,
        mode: options.mode,
        // Without a parent of the user's, nothing leaves the host: Docker's macvlan makes such networks internal too.
        internal: req.internal || !options.parent,
        ...(options.mtu !== undefined && { mtu: options.mtu }),
        ...(options.sourceMacs && { sourceMacs: options.sourceMacs }),
        ...(req.ipv4 && { ipv4: req.ipv4 }),
        ...(req.ipv6 && { ipv6: req.ipv6 }),
        ...(options.hostAccess && { hostAccess: options.hostAccess }),
        ...(options.vlanProtocol && { vlanProtocol: options.vlanProtocol }),
      };
      // The record goes to disk before any link is made, so a crash at any later step is finished or undone at start.
      await this.networkStore.put(record.id, { ...record, unanswered: true });
      crashPoint('network-recorded');
      try {
        if (!plan) await this.parents.createInternal(record.id);
        else if ('vlan' in plan)
          await this.parents.createVlan(parentName, plan.vlan.base, plan.vlan.vid, options.vlanProtocol);
        crashPoint('parent-ready');
        if (record.hostAccess) await this.hostAccess.ensure(this.shimSpec(record), () => []);
        crashPoint('shim-ready');
        // Just before the answer: from here on Docker may know the network, so a restart keeps it.
        await this.networkStore.put(record.id, record);
        crashPoint('network-answered');
      } catch (err) {
        if (record.hostAccess) await this.hostAccess.remove(record.id).catch(() => undefined);
        if (record.ownsParent && !sharing?.size) await this.parents.release(parentName).catch(() => undefined);
        await this.networkStore.remove(record.id);
        throw err;
      }
      this.networks.set(record.id, record);
      this.index(this.networksOn, parentName, record.id);
      if (record.hostAccess) this.shims.set(shimName(record.id), record.id);
      this.updateWatch();
    });
  }

  async deleteNetwork(networkId: string): Promise<void> {
    const network = this.networks.get(networkId);
    if (!network) return;
    for (const endpointId of [...(this.endpointsOf.get(networkId) ?? [])])
      await this.deleteEndpoint(networkId, endpointId);
    await this.parentLocks.run(network.parent, async () => {
      if (this.networks.get(networkId) !== network) return; // deleted by the same request sent again meanwhile
      // Record first: what a crash leaves after this is marked as the plugin's and owned by nothing, so the start removes it.
      await this.networkStore.remove(networkId);
      crashPoint('network-forgotten');
      this.networks.delete(networkId);
      this.unindex(this.networksOn, network.parent, networkId);
      if (network.hostAccess) {
        this.shims.delete(shimName(networkId));
        this.updateWatch();
        await this.hostAccess.remove(networkId);
        crashPoint('shim-removed');
      }
      if (network.ownsParent && !this.networksOn.has(network.parent)) {
        await this.parents.release(network.parent);
        this.log.info({ parent: network.parent }, 'removed parent created for the network');
      }
    });
  }

  private network(networkId: string): NetworkRecord {
    const network = this.networks.get(networkId);
    if (!network)
      throw new PluginError(
        `network ${networkId} is not known to tsmacvlan; recreate it with 'docker network create -d tsmacvlan ...'`,
      );
    return network;
  }

  /** Records the endpoint; answers the MAC when Docker gave none. */
  createEndpoint(req: CreateEndpointRequest): Promise<{ mac?: string }> {
    return this.endpointLocks.run(req.endpointId, () => this.createEndpointLocked(req));
  }

  private async createEndpointLocked(req: CreateEndpointRequest): Promise<{ mac?: string }> {
    const network = this.network(req.networkId);
    const existing = this.endpoints.get(req.endpointId);
    if (existing) {
      // The same request again is answered the same way; anything else under that id is refused.
      const same =
        existing.networkId === req.networkId &&
        existing.ipv4 === req.ipv4 &&
        existing.ipv6 === req.ipv6 &&
        (!req.mac || req.mac === existing.mac);
      if (!same)
        throw new PluginError(
          `endpoint ${req.endpointId.slice(0, 12)} already exists on network ${existing.networkId.slice(0, 12)} with other settings; endpoint ids are unique`,
        );
      return req.mac ? {} : { mac: existing.mac };
    }
    const others = this.endpointsOf.get(req.networkId);
    if (network.mode === 'passthru' && others?.size && !others.has(req.endpointId)) {
      throw new PluginError(
        `network ${req.networkId.slice(0, 12)} uses macvlan_mode=passthru, which gives parent '${network.parent}' to a single container, and one is attached already`,
      );
    }
    const record: EndpointRecord = {
      id: req.endpointId,
      networkId: req.networkId,
      mac: req.mac || endpointMac(req.ipv4, req.endpointId),
      ...(req.ipv4 && { ipv4: req.ipv4 }),
      ...(req.ipv6 && { ipv6: req.ipv6 }),
    };
    // Claim the slot before the first await, so parallel requests see it.
    this.endpoints.set(record.id, record);
    this.index(this.endpointsOf, record.networkId, record.id);
    try {
      await this.endpointStore.put(record.id, { ...record, unanswered: true });
      crashPoint('endpoint-recorded');
      await this.endpointStore.put(record.id, record); // just before the answer: a restart keeps it from here on
      crashPoint('endpoint-answered');
    } catch (err) {
      this.endpoints.delete(record.id);
      this.unindex(this.endpointsOf, record.networkId, record.id);
      // Marked unanswered if it got written: the next start would roll it back anyway.
      await this.endpointStore.remove(record.id).catch(() => undefined);
      throw err;
    }
    return req.mac ? {} : { mac: record.mac };
  }

  /** Creates the host-side macvlan link; Docker moves it into the container. */
  join(networkId: string, endpointId: string): Promise<JoinAnswer> {
    return this.endpointLocks.run(endpointId, () => this.joinLocked(networkId, endpointId));
  }

  private async joinLocked(networkId: string, endpointId: string): Promise<JoinAnswer> {
    const network = this.network(networkId);
    const endpoint = this.endpoints.get(endpointId);
    if (!endpoint || endpoint.networkId !== networkId) {
      throw new PluginError(
        `endpoint ${endpointId.slice(0, 12)} does not exist on network ${networkId.slice(0, 12)}; it was never created or was already deleted`,
      );
    }
    // passthru admits one macvlan on the parent: a previous endpoint's link must be gone first.
    if (network.mode === 'passthru' && this.reaper.busy) await this.reaper.settled();
    const parent = await this.links.get(network.parent);
    if (!parent) {
      throw new PluginError(
        `parent '${network.parent}' of network ${networkId.slice(0, 12)} no longer exists; bring it back or recreate the network`,
      );
    }
    const name = endpointLinkName(endpointId);
    const spec = {
      name,
      parentIndex: parent.index,
      mode: network.mode,
      // In passthru mode the link takes the parent's own MAC; Docker sets the endpoint's inside the container.
      ...(network.mode !== 'passthru' && { mac: endpoint.mac }),
      ...(network.mtu !== undefined && { mtu: network.mtu }),
      ...(network.sourceMacs && { sourceMacs: network.sourceMacs }),
    };
    try {
      await this.links.createMacvlan(spec, MARK_ENDPOINT);
    } catch (err) {
      if (!(err instanceof KernelError && err.errno === 'EEXIST')) throw explain(err, network.parent);
      // A link by this name of ours is left from an interrupted Join of this endpoint: replace it. Anyone else's stays.
      const existing = await this.links.get(name);
      if (existing && !this.links.owns(existing)) {
        throw new PluginError(
          `cannot create link '${name}' for endpoint ${endpointId.slice(0, 12)}: a link by that name exists and is not this plugin's`,
        );
      }
      await this.links.delete(name);
      await this.links.createMacvlan(spec, MARK_ENDPOINT).catch((e) => Promise.reject(explain(e, network.parent)));
    }
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
    const answer: JoinAnswer = { linkName: name };
    if (!network.internal) {
      if (network.ipv4?.gateway) answer.gateway = network.ipv4.gateway;
      if (network.ipv6?.gateway) answer.gatewayIpv6 = network.ipv6.gateway;
    }
    return answer;
  }

  /** Removes the host-side link (Docker has moved it back from the container by now) and forgets the endpoint. */
  deleteEndpoint(networkId: string, endpointId: string): Promise<void> {
    return this.endpointLocks.run(endpointId, () => this.deleteEndpointLocked(networkId, endpointId));
  }

  private async deleteEndpointLocked(networkId: string, endpointId: string): Promise<void> {
    const endpoint = this.endpoints.get(endpointId);
    if (!endpoint) return;
    const name = endpointLinkName(endpointId);
    const link = await this.links.get(name);
    // Record first: Docker forgets the endpoint even when this fails (it only logs), so a crash after this point must
    // leave nothing the start would keep. The link is then ours and owned by no record, and a host route to it has no
    // owner either: the start deletes both.
    await this.endpointStore.remove(endpointId);
    crashPoint('endpoint-forgotten');
    this.endpoints.delete(endpointId);
    this.unindex(this.endpointsOf, networkId, endpointId);
    const hostAddress = this.networks.get(networkId)?.hostAccess;
    if (hostAddress && endpoint.ipv4) {
      await this.hostAccess.unroute(networkId, endpoint.ipv4.split('/')[0]);
      crashPoint('route-removed');
    }
    // Only our own link: a name clash with someone else's link must not cost them their interface. Its deletion
    // (17-20 ms of kernel time) finishes after the answer; if the plugin dies first, the link is ours and owned by
    // no record, so the next start deletes it.
    if (link && this.links.owns(link)) {
      this.reaper.delete(name).catch((err) => this.log.warn({ err, link: name }, 'could not delete endpoint link'));
    }
  }
}

function explain(err: unknown, parent: string): unknown {
  if (err instanceof KernelError && err.errno === 'EBUSY') {
    return new PluginError(
      `the kernel refused a macvlan on parent '${parent}' (EBUSY): another macvlan mode or a passthru link already holds it`,
    );
  }
  return err;
}
