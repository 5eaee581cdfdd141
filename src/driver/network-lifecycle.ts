// A network's life: CreateNetwork checks everything, records the network, then makes its parent and shim;
// DeleteNetwork forgets it first, then removes what the plugin made for it.
import type { Logger } from 'pino';
import { PluginError } from '../errors';
import { crashPoint } from '../state/crash';
import type { KeyedMutex } from '../state/keyed-mutex';
import type { DriverState } from './driver-state';
import type { HostAccess } from './host-access';
import { shimSpec, type HostAccessUpkeep } from './host-access-upkeep';
import {
  checkHostAccess,
  parseNetworkOptions,
  type IpData,
  type NetworkOptions,
  type NetworkRecord,
} from './network-options';
import { checkDhcpNetwork } from './dhcp-network';
import { internalParentName, type ParentPlan, type Parents } from './parents';
import { childMode, linkOptions, sharingProblem } from './link-kind';
import type { ChildMode, LinkInfo } from '../kernel/link-info';

export interface CreateNetworkRequest {
  networkId: string;
  generic: Record<string, unknown>;
  internal: boolean;
  /** Addresses Docker's IPAM keeps from containers (--aux-address), bare. */
  reserved: string[];
  ipv4?: IpData;
  ipv6?: IpData;
}

export class NetworkLifecycle {
  constructor(
    private readonly state: DriverState,
    private readonly parents: Parents,
    private readonly hostAccess: HostAccess,
    private readonly upkeep: HostAccessUpkeep,
    private readonly parentLocks: KeyedMutex,
    private readonly log: Logger,
  ) {}

  async create(req: CreateNetworkRequest): Promise<void> {
    const options = parseNetworkOptions(req.generic);
    if (options.dhcp) checkDhcpNetwork(options, req.ipv4, req.ipv6);
    else if (options.hostAccess) checkHostAccess(options.hostAccess, req.ipv4, req.reserved);
    if (this.state.networks.has(req.networkId)) return; // a retry of a create that already succeeded
    const parentName = options.parent ?? internalParentName(req.networkId);
    await this.parentLocks.run(parentName, async () => {
      if (this.state.networks.has(req.networkId)) return; // the same request, sent again while the first was under way
      const shared = this.checkSharing(parentName, options.link);
      // Everything is checked before anything is made.
      const plan = options.parent ? await this.parents.plan(parentName) : undefined;
      checkParent(parentName, plan, options);
      if (plan && 'existing' in plan)
        checkChildren(parentName, await this.parents.children(plan.existing), options.link);
      const record = networkRecord(req, options, parentName, plan);
      await this.make(record, plan, options, shared);
      this.state.addNetwork(record);
      this.upkeep.update();
    });
  }

  /**
   * Refuses a parent this network cannot share with the networks on it (passthru; another kind of link, or another
   * ipvlan mode: see sharingProblem), naming them; answers whether other networks use the parent.
   */
  private checkSharing(parentName: string, link: ChildMode): boolean {
    const sharing = [...(this.state.networksOn.get(parentName) ?? [])]
      .map((id) => this.state.networks.get(id))
      .filter((network): network is NetworkRecord => network !== undefined);
    if (!sharing.length) return false;
    const passthru = sharing.find((network) => network.kind !== 'ipvlan' && network.mode === 'passthru');
    if (passthru)
      throw new PluginError(
        `parent '${parentName}' is taken by network ${passthru.id.slice(0, 12)} in passthru mode, which cannot share its parent`,
      );
    if (link.kind === 'macvlan' && link.mode === 'passthru')
      throw new PluginError(
        `macvlan_mode=passthru needs a parent of its own, but '${parentName}' is used by ${sharing.length} other network(s)`,
      );
    const clashing = sharing.filter((network) => sharingProblem(link, childMode(network)));
    if (clashing.length) {
      const theirs = childMode(clashing[0]!);
      const ids = clashing.map((network) => network.id.slice(0, 12)).join(', ');
      throw new PluginError(
        `parent '${parentName}' is used by network(s) ${ids} (${linkOptions(theirs)}): ${sharingProblem(link, theirs)}`,
      );
    }
    return true;
  }

  /** The record goes to disk before any link is made, so a crash at any later step is finished or undone at start. */
  private async make(record: NetworkRecord, plan: ParentPlan | undefined, options: NetworkOptions, shared: boolean) {
    await this.state.networkStore.put(record.id, { ...record, unanswered: true });
    crashPoint('network-recorded');
    try {
      if (!plan) await this.parents.createInternal(record.id);
      else if ('vlan' in plan)
        await this.parents.createVlan(record.parent, plan.vlan.base, plan.vlan.vid, options.vlanProtocol);
      crashPoint('parent-ready');
      if (record.hostAccess) await this.hostAccess.ensure(shimSpec(record), () => []);
      crashPoint('shim-ready');
      // Just before the answer: from here on Docker may know the network, so a restart keeps it.
      await this.state.networkStore.put(record.id, record);
      crashPoint('network-answered');
    } catch (err) {
      if (record.hostAccess) await this.hostAccess.remove(record.id).catch(() => undefined);
      if (record.ownsParent && !shared) await this.parents.release(record.parent).catch(() => undefined);
      await this.state.networkStore.remove(record.id);
      throw err;
    }
  }

  /** Forgets the network (its endpoints are gone by now), then removes its shim and a parent made for it alone. */
  async delete(network: NetworkRecord): Promise<void> {
    const networkId = network.id;
    await this.parentLocks.run(network.parent, async () => {
      if (this.state.networks.get(networkId) !== network) return; // deleted by the same request sent again meanwhile
      // Record first: what a crash leaves after this is marked as the plugin's and owned by nothing, so the start removes it.
      await this.state.networkStore.remove(networkId);
      crashPoint('network-forgotten');
      this.state.forgetNetwork(network);
      if (network.hostAccess) {
        this.upkeep.update();
        await this.hostAccess.remove(networkId);
        crashPoint('shim-removed');
      }
      if (network.ownsParent && !this.state.networksOn.has(network.parent)) {
        await this.parents.release(network.parent);
        this.log.info({ parent: network.parent }, 'removed parent created for the network');
      }
    });
  }
}

/** Refuses a parent that does not fit the options: another VLAN protocol, a smaller MTU. */
function checkParent(parentName: string, plan: ParentPlan | undefined, options: NetworkOptions): void {
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
}

/** Refuses a parent whose links in the kernel (anyone's: Docker's own macvlan driver's, say) this network's cannot join. */
function checkChildren(parentName: string, children: LinkInfo[], link: ChildMode): void {
  const clashing = children.filter((child) => child.child && sharingProblem(link, child.child));
  if (!clashing.length) return;
  const theirs = clashing[0]!.child!;
  throw new PluginError(
    `parent '${parentName}' carries ${theirs.kind} link(s) ${clashing.map((c) => c.name).join(', ')} (${linkOptions(theirs)}): ${sharingProblem(link, theirs)}`,
  );
}

function networkRecord(
  req: CreateNetworkRequest,
  options: NetworkOptions,
  parentName: string,
  plan: ParentPlan | undefined,
): NetworkRecord {
  return {
    id: req.networkId,
    parent: parentName,
    ownsParent: !plan || !('existing' in plan) || plan.owned,
    ...options.link,
    // Without a parent of the user's, nothing leaves the host: Docker's macvlan makes such networks internal too.
    internal: req.internal || !options.parent,
    ...(options.mtu !== undefined && { mtu: options.mtu }),
    // A DHCP network's null IPAM sends 0.0.0.0/0: its subnet is whatever the server leases.
    ...(req.ipv4 && !options.dhcp && { ipv4: req.ipv4 }),
    ...(req.ipv6 && !options.dhcp && { ipv6: req.ipv6 }),
    ...(options.hostAccess && { hostAccess: options.hostAccess }),
    ...(options.vlanProtocol && { vlanProtocol: options.vlanProtocol }),
    ...(options.dhcp && {
      dhcp: {
        ...options.dhcp,
        ...(req.ipv6 && { ipv6: 'slaac' as const }),
        ...(!req.ipv4 && { noIpv4: true as const }),
      },
    }),
  };
}
