// The router's SLAAC prefix on a parent as a pool for the IPAM (--ipam-opt ipv6=slaac): the parent is watched by the
// one RouterAdverts of the plugin, solicited, and its /64 with the A flag answered; it stays watched while pools use
// it, so a prefix withdrawn, deprecated or expired (and one advertised again) is told to the IPAM, which journals it
// with its pools.
import type { Links } from '../kernel/links';
import { NoRouterAnswer, type PrefixCondition, type RouterAdverts } from './router-adverts';
import { SLAAC_PREFIX_LENGTH } from './slaac';

/** Why no pool could be learned, in words for people (the IPAM answers them to Docker). */
export class PrefixUnknown extends Error {}

export class PoolPrefixes {
  constructor(
    private readonly adverts: RouterAdverts,
    private readonly links: Links,
  ) {}

  async learn(parent: string, timeoutMs: number): Promise<string> {
    const link = await this.links.get(parent);
    if (!link?.mac)
      throw new PrefixUnknown(
        `--ipam-opt parent=${parent}: no such interface with a MAC on this host; give the network's -o parent`,
      );
    this.adverts.watch(parent, link.index, link.mac);
    try {
      return (await this.adverts.slaacPrefix(parent, timeoutMs)).prefix.text;
    } catch (err) {
      this.adverts.unwatch(parent);
      if (!(err instanceof NoRouterAnswer)) throw err;
      throw new PrefixUnknown(
        `--ipam-opt ipv6=slaac: no IPv6 router advertised a prefix for SLAAC (A flag, /${SLAAC_PREFIX_LENGTH}) on ${parent} within ${timeoutMs / 1000} s; ` +
          `check that a router sends advertisements on the LAN of ${parent} (and that --ipam-opt parent is the network's -o parent), or give the IPv6 prefix with --subnet instead`,
      );
    }
  }

  /** A pool loaded from the state at start: its parent is watched again, for reports only. Never throws. */
  async rewatch(parent: string): Promise<void> {
    const link = await this.links.get(parent).catch(() => undefined);
    if (link?.mac) this.adverts.watch(parent, link.index, link.mac);
  }

  release(parent: string): void {
    this.adverts.unwatch(parent);
  }

  /** Each loss of a prefix on a watched parent, and each return (condition `valid`). */
  onChange(listener: (change: { parent: string; prefix: string; condition: PrefixCondition }) => void): void {
    this.adverts.onPrefixLoss((loss) => listener(loss));
    this.adverts.onPrefixBack((back) => listener({ ...back, condition: 'valid' }));
  }
}
