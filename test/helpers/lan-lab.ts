// A LAN with devices the plugin does not know: a switch namespace with a bridge, a veth parent in the test's own
// namespace (with an address of the subnet, so nothing routes out), and squatters, each a namespace of its own on a
// port of the switch holding addresses of the range with a MAC of its own, as a printer or a NAS with a static
// address would. Everything is named with one random prefix and removed by close().
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { ip } from './net';

function inNs(ns: string, ...args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export class LanLab {
  readonly prefix: string;
  readonly switchNs: string;
  readonly parent: string;
  private readonly namespaces: string[] = [];
  private squatters = 0;

  /** The switch and the parent, which holds `parentAddress` (CIDR); removed again if a step fails. */
  static create(namePrefix: string, parentAddress: string): LanLab {
    const lab = new LanLab(namePrefix + randomBytes(3).toString('hex'));
    try {
      lab.addNs(lab.switchNs);
      inNs(lab.switchNs, 'ip', 'link', 'add', 'br0', 'type', 'bridge');
      inNs(lab.switchNs, 'ip', 'link', 'set', 'br0', 'up');
      lab.plug(lab.parent, null);
      ip('addr', 'add', parentAddress, 'dev', lab.parent);
      return lab;
    } catch (error) {
      lab.close();
      throw error;
    }
  }

  private constructor(prefix: string) {
    this.prefix = prefix;
    this.switchNs = `${prefix}sw`;
    this.parent = `${prefix}p`;
  }

  /**
   * A device on the LAN with `mac`, holding `addresses` (CIDR; IPv6 ones without duplicate address detection, so
   * they answer at once). Answers ARP and neighbour solicitations for them. Returns its namespace.
   */
  squatter(mac: string, addresses: string[]): string {
    const ns = `${this.prefix}q${this.squatters++}`;
    this.addNs(ns);
    const link = `${ns}l`;
    this.plug(link, ns);
    inNs(ns, 'ip', 'link', 'set', link, 'address', mac);
    for (const address of addresses) {
      const v6 = address.includes(':');
      inNs(ns, 'ip', ...(v6 ? ['-6'] : []), 'addr', 'add', address, 'dev', link, ...(v6 ? ['nodad'] : []));
    }
    return ns;
  }

  /** A device leaves the LAN. */
  leave(ns: string): void {
    ip('netns', 'del', ns);
    this.namespaces.splice(this.namespaces.indexOf(ns), 1);
  }

  close(): void {
    for (const ns of this.namespaces.reverse()) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // already gone
      }
    }
    try {
      ip('link', 'del', this.parent);
    } catch {
      // went with the switch namespace
    }
  }

  private addNs(ns: string): void {
    ip('netns', 'add', ns);
    this.namespaces.push(ns);
  }

  /** A veth from the switch's bridge to `ns` (null: the test's own namespace), both ends up. */
  private plug(name: string, ns: string | null): void {
    const peer = `${name}s`;
    ip('link', 'add', name, 'type', 'veth', 'peer', 'name', peer, 'netns', this.switchNs);
    inNs(this.switchNs, 'ip', 'link', 'set', peer, 'master', 'br0', 'up');
    if (ns) {
      ip('link', 'set', name, 'netns', ns);
      inNs(ns, 'ip', 'link', 'set', name, 'up');
    } else ip('link', 'set', name, 'up');
  }
}
