// The driver's part in probe before use (see src/ipam/probed-takes.ts): it knows which LAN each network's subnets are
// on and tells the neighbourhood (at start, CreateNetwork and DeleteNetwork), and at CreateEndpoint it refuses an
// address the IPAM gave by name (--ip) that a device on the LAN answers for. The IPAM cannot refuse it itself: Docker
// sends a container's --ip and an --aux-address alike, and the aux address may well be a device's on purpose.
import { PluginError } from '../errors';
import { FRESH_MS, type Neighbourhood, ProbeError } from '../probe/neighbourhood';
import type { NetworkRecord } from './network-options';
import { internalParentName } from './parents';

export class LanAddresses {
  constructor(private readonly neighbourhood: Neighbourhood | undefined) {}

  /** The network's subnets are on its parent (a parent the plugin made for an internal network is on no LAN). */
  attach(network: NetworkRecord): void {
    if (!this.neighbourhood || network.parent === internalParentName(network.id)) return;
    const subnets = [network.ipv4?.pool, network.ipv6?.pool].filter((s): s is string => s !== undefined);
    if (subnets.length) this.neighbourhood.attach(network.id, network.parent, subnets);
  }

  detach(networkId: string): void {
    this.neighbourhood?.detach(networkId);
  }

  /** Refuses an endpoint address given by name that the LAN of `network` says is held. Changes nothing. */
  async check(network: NetworkRecord, addresses: (string | undefined)[]): Promise<void> {
    if (!this.neighbourhood) return;
    for (const address of addresses) {
      if (!address) continue;
      const bare = address.split('/')[0];
      let verdict;
      try {
        verdict = await this.neighbourhood.checkGiven(address, FRESH_MS);
      } catch (err) {
        if (!(err instanceof ProbeError)) throw err;
        throw new PluginError(
          `cannot check ${bare} against the LAN before a container uses it: ${err.message}; fix that, or create the network with --ipam-opt probe=off`,
        );
      }
      if (!verdict?.held) continue;
      const who =
        verdict.by === 'host'
          ? `it is this host's own address on ${network.parent}`
          : `the device with MAC ${verdict.mac} answered for it on ${network.parent} (${bare.includes(':') ? 'neighbour solicitation' : 'ARP'})`;
      throw new PluginError(
        `address ${bare} is in use on the LAN: ${who}; choose another --ip, or leave --ip out to get a free one`,
      );
    }
  }
}
