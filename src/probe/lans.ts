// Which LAN a subnet's addresses live on: the parents of this plugin's networks over the subnet. The driver knows
// them (Docker sends it the driver options) and tells this registry at CreateNetwork, at DeleteNetwork and at start;
// the IPAM, which Docker tells only --ipam-opt, reads it here. A subnet with no network of this plugin on it (another
// driver uses the pool) has no parent: its addresses cannot be probed.
import { parseCidr } from '../ip/address';

export class Lans {
  /** What each network (owner) attached: its parent, and its subnets in canonical form. */
  private readonly byOwner = new Map<string, { parent: string; subnets: string[] }>();
  /** Per subnet: its parents, each with how many networks put it there. */
  private readonly bySubnet = new Map<string, Map<string, number>>();

  /** Records that `owner`'s addresses of `subnets` are on `parent`; answers the subnets that had no parent before. */
  attach(owner: string, parent: string, subnets: string[]): string[] {
    this.detach(owner);
    const canonical = subnets.map(canonicalSubnet).filter((s): s is string => s !== undefined);
    this.byOwner.set(owner, { parent, subnets: canonical });
    const fresh: string[] = [];
    for (const subnet of canonical) {
      let parents = this.bySubnet.get(subnet);
      if (!parents) {
        this.bySubnet.set(subnet, (parents = new Map()));
        fresh.push(subnet);
      }
      parents.set(parent, (parents.get(parent) ?? 0) + 1);
    }
    return fresh;
  }

  detach(owner: string): void {
    const attached = this.byOwner.get(owner);
    if (!attached) return;
    this.byOwner.delete(owner);
    for (const subnet of attached.subnets) {
      const parents = this.bySubnet.get(subnet);
      const count = (parents?.get(attached.parent) ?? 1) - 1;
      if (count > 0) parents!.set(attached.parent, count);
      else parents?.delete(attached.parent);
      if (parents?.size === 0) this.bySubnet.delete(subnet);
    }
  }

  /** The parents `subnet` (canonical text) is on; empty when none is known. */
  parentsOf(subnet: string): string[] {
    return [...(this.bySubnet.get(subnet)?.keys() ?? [])];
  }
}

/** A subnet as the IPAM writes it ("10.79.0.0/24"), whatever form Docker passed it on in. */
function canonicalSubnet(text: string): string | undefined {
  const parsed = parseCidr(text);
  return parsed.ok ? parsed.cidr.text : undefined;
}
