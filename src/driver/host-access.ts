// Host access: a parent never passes traffic between itself and its own macvlans or ipvlans, so the host cannot reach
// its containers. The fix is a link of the host's own on the same parent (the "shim"), of the containers' kind and
// mode (for an ipvlan it must be: the kernel keeps one mode per parent), holding one address of the network, with a
// /32 route to each container through it.
import { type Links } from '../kernel/links';
import { KernelError } from '../kernel/errors';
import type { ChildMode, LinkInfo } from '../kernel/link-info';
import { MARK_SHIM } from '../kernel/marks';
import { unlessUnsupported } from './link-kind';

export const SHIM_PREFIX = 'tsmvh';

export function shimName(networkId: string): string {
  return SHIM_PREFIX + networkId.slice(0, 10);
}

/** What ensure found: the shim had to be made, it was there, or its parent is not (nothing to hang it on). */
export type ShimOutcome = 'made' | 'present' | 'no parent';

export interface ShimSpec {
  networkId: string;
  parent: string;
  address: string; // the host's address on the network, bare IPv4
  /** The network's links: the shim is one of them. */
  link: ChildMode;
  mtu?: number;
}

export class HostAccess {
  constructor(private readonly links: Links) {}

  /**
   * Makes the shim and its routes exist, whatever is left of them: called at create, at start and whenever the
   * parent or the shim changes. Idempotent.
   */
  async ensure(spec: ShimSpec, containerAddresses: () => Iterable<string>): Promise<ShimOutcome> {
    const found = await this.shim(spec);
    if (!found) return 'no parent';
    const { shim, made } = found;
    await this.links.addIpv4Address(shim.index, spec.address, 32);
    if (!shim.up) await this.links.setUp(shim.index);
    for (const address of containerAddresses()) await this.links.replaceHostRoute(address, shim.index, spec.address);
    // A route no endpoint owns is left by a DeleteEndpoint cut short after it forgot the endpoint. The owners are
    // read after the dump: a route in the dump was added by a Join whose endpoint is already recorded by then.
    const routes = await this.links.hostRoutes(shim.index);
    const owned = new Set(containerAddresses());
    for (const address of routes) if (!owned.has(address)) await this.links.deleteHostRoute(address, shim.index);
    return made ? 'made' : 'present';
  }

  /**
   * The network's shim: the one there when it hangs off the parent as the network's kind of link (it is adopted),
   * else a new one (`made`). Undefined when the parent is not there.
   */
  private async shim(spec: ShimSpec): Promise<{ shim: LinkInfo; made: boolean } | undefined> {
    const name = shimName(spec.networkId);
    const [existing, parent] = [await this.links.get(name), await this.links.get(spec.parent)];
    if (existing && parent && existing.parentIndex === parent.index && existing.kind === spec.link.kind)
      return { shim: existing, made: false };
    if (existing && this.links.owns(existing)) await this.links.delete(name);
    if (!parent) return undefined;
    let made = false;
    try {
      const mtu = spec.mtu !== undefined ? { mtu: spec.mtu } : {};
      const shim = { name, parentIndex: parent.index, ...spec.link, ...mtu };
      await unlessUnsupported(spec.link.kind, spec.parent, () => this.links.createChild(shim, MARK_SHIM));
      made = true;
    } catch (err) {
      // Another event's ensure made it meanwhile.
      if (!(err instanceof KernelError && err.nameTaken)) throw err;
    }
    const shim = await this.links.get(name);
    return shim && { shim, made };
  }

  async route(networkId: string, hostAddress: string, containerAddress: string): Promise<void> {
    const shim = await this.links.get(shimName(networkId));
    if (shim) await this.links.replaceHostRoute(containerAddress, shim.index, hostAddress);
  }

  async unroute(networkId: string, containerAddress: string): Promise<void> {
    const shim = await this.links.get(shimName(networkId));
    if (shim) await this.links.deleteHostRoute(containerAddress, shim.index);
  }

  /** Deletes the shim; its address and routes go with it. */
  async remove(networkId: string): Promise<void> {
    await this.links.delete(shimName(networkId));
  }
}
