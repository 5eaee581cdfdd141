// Parents: the link a network's macvlans or ipvlans hang off. Existing links are used as they are and never changed;
// VLAN sub-interfaces (`eth0.10`) and internal parents are created here, marked, and removed with their last network.
import { PluginError } from '../errors';
import { type Links } from '../kernel/links';
import { KernelError } from '../kernel/errors';
import { MARK_INTERNAL, MARK_VLAN } from '../kernel/marks';
import { type LinkInfo, type VlanProtocol } from '../kernel/link-info';

export const INTERNAL_PREFIX = 'tsmvi';
export const VETH_PEER_PREFIX = 'tsmvp';

/** What a parent option resolves to: a link that exists, or a VLAN sub-interface to create on one that does. */
export type ParentPlan = { existing: LinkInfo; owned: boolean } | { vlan: { base: LinkInfo; vid: number } };

function unsupported(err: unknown): boolean {
  return err instanceof KernelError && err.unsupported;
}

export function internalParentName(networkId: string): string {
  return INTERNAL_PREFIX + networkId.slice(0, 10);
}

export class Parents {
  constructor(private readonly links: Links) {}

  /** Checks the named parent and says what it takes, without changing anything. */
  async plan(name: string): Promise<ParentPlan> {
    const existing = await this.links.get(name);
    if (existing) {
      if (existing.loopback)
        throw new PluginError(
          `parent '${name}' is the loopback interface; macvlan and ipvlan need an Ethernet interface such as eth1`,
        );
      return { existing, owned: this.links.owns(existing) };
    }
    const dot = name.lastIndexOf('.');
    if (dot <= 0)
      throw new PluginError(
        `parent '${name}' does not exist; name an interface listed by 'ip link', or <interface>.<vlan id> for a VLAN`,
      );
    const baseName = name.slice(0, dot);
    const vidText = name.slice(dot + 1);
    if (!/^\d+$/.test(vidText) || Number(vidText) < 1 || Number(vidText) > 4094) {
      throw new PluginError(
        `parent '${name}' does not exist, and '${vidText}' is not a VLAN id: write <interface>.<vlan id> with an id from 1 to 4094, e.g. eth0.10`,
      );
    }
    const base = await this.links.get(baseName);
    if (!base)
      throw new PluginError(
        `parent '${name}': interface '${baseName}' does not exist, so VLAN ${vidText} cannot be created on it`,
      );
    if (base.loopback)
      throw new PluginError(`parent '${name}': '${baseName}' is the loopback interface and cannot carry VLANs`);
    return { vlan: { base, vid: Number(vidText) } };
  }

  /** The macvlans and ipvlans the parent carries now, whoever made them. */
  children(parent: LinkInfo): Promise<LinkInfo[]> {
    return this.links.children(parent.index);
  }

  /** Re-creates a parent this plugin made for a network that is gone (after a reboot, or a crash before it was made). */
  async restore(name: string, networkId: string, protocol?: VlanProtocol): Promise<void> {
    if (await this.links.get(name)) return;
    if (name === internalParentName(networkId)) await this.createInternal(networkId);
    else {
      const plan = await this.plan(name);
      if ('vlan' in plan) await this.createVlan(name, plan.vlan.base, plan.vlan.vid, protocol);
    }
  }

  async createVlan(name: string, base: LinkInfo, vid: number, protocol: VlanProtocol = '802.1q'): Promise<LinkInfo> {
    try {
      await this.links.createVlan(name, base.index, vid, protocol, MARK_VLAN);
    } catch (err) {
      if (unsupported(err)) {
        throw new PluginError(
          `cannot create VLAN sub-interface '${name}': this kernel has no 802.1q support; load it with 'modprobe 8021q'`,
        );
      }
      throw err;
    }
    return this.bringUp(name);
  }

  /** A parent of the network's own, for networks created without `-o parent`: a dummy link, or a veth pair where the kernel has no dummy. */
  async createInternal(networkId: string): Promise<LinkInfo> {
    const name = internalParentName(networkId);
    await this.links.delete(name); // a leftover of an interrupted create of this same network
    try {
      await this.links.createDummy(name, MARK_INTERNAL);
    } catch (err) {
      if (!unsupported(err)) throw err;
      const peer = VETH_PEER_PREFIX + networkId.slice(0, 10);
      await this.links.createVethPair(name, peer, MARK_INTERNAL);
      await this.bringUp(peer);
    }
    return this.bringUp(name);
  }

  private async bringUp(name: string): Promise<LinkInfo> {
    const link = await this.links.get(name);
    if (!link) throw new KernelError(`bring up ${name}`, 'ENODEV');
    await this.links.setUp(link.index);
    return { ...link, up: true };
  }

  /** Removes a parent this plugin created; links it did not create are never touched. */
  async release(name: string): Promise<void> {
    const link = await this.links.get(name);
    if (link && this.links.owns(link)) await this.links.delete(name);
  }
}
