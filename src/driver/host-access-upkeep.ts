// Keeps host-access shims alive while the plugin runs: re-made within moments when their parent comes back or they
// are removed, by watching link events.
import type { Logger } from 'pino';
import type { Links } from '../kernel/links';
import type { KeyedMutex } from '../state/keyed-mutex';
import type { DriverState } from './driver-state';
import { type HostAccess, type ShimSpec, shimName } from './host-access';
import { childMode } from './link-kind';
import type { NetworkRecord } from './network-options';

/** What a host-access shim of the network looks like. */
export function shimSpec(network: NetworkRecord): ShimSpec {
  return {
    networkId: network.id,
    parent: network.parent,
    address: network.hostAccess as string,
    link: childMode(network),
    ...(network.mtu !== undefined && { mtu: network.mtu }),
  };
}

export class HostAccessUpkeep {
  private readonly pendingRepairs = new Map<string, NodeJS.Timeout>();
  private stopWatching: (() => void) | undefined;
  /** Times link events were lost and every shim and parent checked again; shims found missing and made again. */
  resyncs = 0;
  shimsRemade = 0;

  constructor(
    private readonly links: Links,
    private readonly state: DriverState,
    private readonly hostAccess: HostAccess,
    private readonly parentLocks: KeyedMutex,
    private readonly log: Logger,
  ) {}

  /** Watches link events only while a host_access network exists: every link change on the host costs an event. */
  update(): void {
    if (this.state.shims.size > 0 && !this.stopWatching) this.stopWatching = this.watchLinks();
    else if (this.state.shims.size === 0) this.stop();
  }

  stop(): void {
    this.stopWatching?.();
    this.stopWatching = undefined;
  }

  private watchLinks(): () => void {
    const onChange = (name: string) => {
      const affected = [...(this.state.networksOn.get(name) ?? [])];
      const shimOf = this.state.shims.get(name);
      if (shimOf) affected.push(shimOf);
      for (const networkId of affected) {
        if (!this.state.networks.get(networkId)?.hostAccess || this.pendingRepairs.has(networkId)) continue;
        // One repair per burst of events (a create, its mark and bringing it up are three events).
        this.pendingRepairs.set(
          networkId,
          setTimeout(() => {
            this.pendingRepairs.delete(networkId);
            this.repair(networkId).catch((err) => this.log.error({ err, networkId }, 'could not repair host access'));
          }, 50),
        );
      }
    };
    // Dropped events may have been any link's: every shim and every parent is checked, as its own event would have.
    const onLost = (err: Error) => {
      this.resyncs++;
      this.log.warn({ err }, 'link events were lost; checking every shim and parent again');
      for (const name of [...this.state.shims.keys(), ...this.state.networksOn.keys()]) onChange(name);
    };
    const stop = this.links.watch(onChange, onLost);
    return () => {
      stop();
      for (const timer of this.pendingRepairs.values()) clearTimeout(timer);
      this.pendingRepairs.clear();
    };
  }

  /** Makes the network's shim and its routes whole again. */
  async repair(networkId: string): Promise<void> {
    const network = this.state.networks.get(networkId);
    if (!network?.hostAccess) return;
    await this.parentLocks.run(network.parent, async () => {
      if (!this.state.networks.has(networkId)) return; // deleted meanwhile
      const outcome = await this.hostAccess.ensure(shimSpec(network), () => this.state.containerAddresses(networkId));
      if (outcome === 'made') {
        this.shimsRemade++;
        this.log.info({ networkId, shim: shimName(networkId) }, 'host access shim was missing: made it again');
      } else this.log.debug({ networkId, outcome }, 'host access checked');
    });
  }
}
