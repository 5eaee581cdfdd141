// Host access: a macvlan parent never passes traffic between itself and its own macvlans, so the host cannot reach
// its containers. The fix is a macvlan of the host's own on the same parent (the "shim"), in bridge mode like the
// containers, holding one address of the network, with a /32 route to each container through it.
import { type Links } from '../kernel/links';
import { KernelError } from '../kernel/errors';
import { MARK_SHIM } from '../kernel/marks';

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
  mtu?: number;
}

export class HostAccess {
  constructor(private readonly links: Links) {}

  /**
   * Makes the shim and its routes exist, whatever is left of them: called at create, at start and whenever the
   * parent or the shim changes. Idempotent.
   */
  async ensure(spec: ShimSpec, containerAddresses: () => Iterable<string>): Promise<ShimOutcome> {
    const name = shimName(spec.networkId);
    let shim = await this.links.get(name);
    let outcome: ShimOutcome = 'present';
    if (!shim) {
      const parent = await this.links.get(spec.parent);
      if (!parent) return 'no parent';
      try {
        await this.links.createMacvlan(
          { name, parentIndex: parent.index, mode: 'bridge', ...(spec.mtu !== undefined && { mtu: spec.mtu }) },
          MARK_SHIM,
        );
        outcome = 'made';
      } catch (err) {
        // Another event's ensure made it meanwhile.
        if (!(err instanceof KernelError && err.nameTaken)) throw err;
      }
      shim = await this.links.get(name);
      if (!shim) return 'no parent';
    }
    await this.links.addIpv4Address(shim.index, spec.address, 32);
    if (!shim.up) await this.links.setUp(shim.index);
    for (const address of containerAddresses()) await this.links.replaceHostRoute(address, shim.index, spec.address);
    // A route no endpoint owns is left by a DeleteEndpoint cut short after it forgot the endpoint. The owners are
    // read after the dump: a route in the dump was added by a Join whose endpoint is already recorded by then.
    const routes = await this.links.hostRoutes(shim.index);
    const owned = new Set(containerAddresses());
    for (const address of routes) if (!owned.has(address)) await this.links.deleteHostRoute(address, shim.index);
    return outcome;
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
