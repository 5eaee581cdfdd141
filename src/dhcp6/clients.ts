// Runs one Dhcp6Client per endpoint over the host's one packet socket, beside the DHCPv4 clients: replies to port 546
// are decoded and handed to the client whose DUID they name, what the clients return is framed (from the endpoint's
// MAC and link-local address, to the servers' group) and sent, their wake-ups become timers, and lease changes are
// emitted. A server answers a client's link-local address, which no interface holds yet: the service answers the
// neighbour solicitations for it, as the endpoint's kernel would. The driver's whole view of DHCPv6.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { parseIp } from '../ip/address';
import { ETHERTYPE_IPV6, MalformedFrame } from '../kernel/link-frames';
import {
  buildNeighbourAdvert,
  ICMPV6_NEIGHBOUR_SOLICITATION,
  parseNeighbourMessage,
  solicitedNode,
} from '../kernel/nd-frames';
import type { PacketTap, TapLink } from '../kernel/packet-tap';
import type { ReceivedFrame } from '../kernel/packet-socket';
import { Dhcp6Client, type Lease6Event, type Step6 } from './client';
import {
  ALL_SERVERS,
  ALL_SERVERS_MAC,
  buildUdp6Frame,
  CLIENT_PORT,
  linkLocalOf,
  parseUdp6Frame,
  SERVER_PORT,
} from './frame';
import type { Lease6 } from './lease';
import { decodeMessage, duidLl, encodeMessage, MalformedMessage } from './message';

/** No server granted a lease in the time given; `declined`: the last address granted, which a device held. */
export class NoDhcp6Answer extends Error {
  constructor(
    message: string,
    readonly declined?: { address: string; heldBy: string },
  ) {
    super(message);
  }
}

export interface Lease6Change {
  ifindex: number;
  mac: string;
  event: Lease6Event;
}

/** The MAC of a LAN device that holds `address` on the parent `ifindex`, or undefined when none answered. */
export type AddressCheck = (ifindex: number, address: bigint) => Promise<string | undefined>;

export type Dhcp6Link = Pick<TapLink, 'send' | 'addUnicast' | 'dropUnicast' | 'addMulticast' | 'dropMulticast'>;

const MAX_TIMER_MS = 2 ** 31 - 1;
/** One IA_NA per client: its IAID is fixed (the DUID already tells the endpoints apart). */
export const IAID = 1;

interface Running {
  ifindex: number;
  mac: string;
  linkLocal: bigint;
  client: Dhcp6Client;
  timer: NodeJS.Timeout | undefined;
  waiter: { resolve: (lease: Lease6) => void; reject: (error: Error) => void; timeout: NodeJS.Timeout } | undefined;
  check: AddressCheck | undefined;
  onChecking?: ((lease: Lease6) => void) | undefined;
  declined?: { address: string; heldBy: string };
}

export class Dhcp6Clients extends EventEmitter<{ lease: [Lease6Change] }> {
  /** By MAC (a macvlan endpoint's own). */
  private readonly running = new Map<string, Running>();
  private readonly byDuid = new Map<string, Running>();
  /** By `<ifindex> <link-local value>`: whose solicitations to answer. */
  private readonly byLinkLocal = new Map<string, Running>();
  readonly counts = { leases: 0, renewals: 0, declined: 0, lost: 0 };

  constructor(
    private readonly link: Dhcp6Link,
    private readonly log: Logger,
    private readonly clock: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {
    super();
  }

  /**
   * A lease for the endpoint `mac` on the parent `ifindex` (SOLICIT, ADVERTISE, REQUEST, REPLY, then `check` of the
   * address on the LAN; DECLINE and again when a device holds it), renewed until release(). Rejects with NoDhcp6Answer
   * when none is bound within timeoutMs. `onChecking` gets each lease granted as its check begins: the caller can
   * record it while the check's wait runs.
   */
  acquire(
    ifindex: number,
    mac: string,
    timeoutMs: number,
    check: AddressCheck,
    onChecking?: (lease: Lease6) => void,
  ): Promise<Lease6> {
    if (this.running.has(mac)) return Promise.reject(new Error(`a DHCPv6 client for ${mac} is already running`));
    let entry: Running;
    try {
      entry = this.add(ifindex, mac, check);
      entry.onChecking = onChecking;
    } catch (error) {
      return Promise.reject(
        new Error(`cannot listen for DHCPv6 answers to ${mac} on interface ${ifindex}: ${(error as Error).message}`),
      );
    }
    return new Promise<Lease6>((resolve, reject) => {
      const timeout = setTimeout(() => {
        entry.waiter = undefined;
        this.release(mac);
        reject(
          new NoDhcp6Answer(
            `no DHCPv6 server answered for ${mac} on interface ${ifindex} within ${timeoutMs} ms`,
            entry.declined,
          ),
        );
      }, timeoutMs);
      entry.waiter = { resolve, reject, timeout };
      this.carryOut(entry, entry.client.start(this.clock()));
    });
  }

  /** Takes over a lease kept from before a restart: renewals go on on its schedule. */
  resume(ifindex: number, lease: Lease6): void {
    if (this.running.has(lease.mac)) throw new Error(`a DHCPv6 client for ${lease.mac} is already running`);
    const entry = this.add(ifindex, lease.mac, undefined);
    this.carryOut(entry, entry.client.resume(lease, this.clock()));
  }

  /** Sends RELEASE (when there is a lease) and forgets the client; unknown MACs are a no-op. */
  release(mac: string): void {
    const entry = this.running.get(mac);
    if (!entry) return;
    this.carryOut(entry, entry.client.release(this.clock()));
    this.forget(entry, `the DHCPv6 client for ${mac} was released before it got a lease`);
  }

  lease(mac: string): Lease6 | undefined {
    return this.running.get(mac)?.client.lease;
  }

  /** Stops every client without releasing (the leases stay valid for a restart to resume). */
  stop(): void {
    for (const entry of [...this.running.values()])
      this.forget(entry, `the DHCPv6 clients stopped before ${entry.mac} got a lease`);
  }

  /** An IPv6 frame from the packet socket: a server's message to a client, or a solicitation for a client's address. */
  receive({ ifindex, frame, outgoing }: ReceivedFrame): void {
    if (outgoing || frame.length < 62) return;
    try {
      if (frame[20] === 58 && frame[54] === ICMPV6_NEIGHBOUR_SOLICITATION) return this.solicited(ifindex, frame);
      const datagram = parseUdp6Frame(frame);
      if (datagram.destinationPort !== CLIENT_PORT || datagram.sourcePort !== SERVER_PORT) return;
      const message = decodeMessage(datagram.payload);
      const entry = message.clientId === undefined ? undefined : this.byDuid.get(message.clientId);
      if (entry?.ifindex === ifindex) this.carryOut(entry, entry.client.receive(message, this.clock()));
    } catch (error) {
      if (!(error instanceof MalformedFrame || error instanceof MalformedMessage)) throw error;
      this.log.debug({ ifindex, reason: error.message }, 'dropped a malformed DHCPv6 frame');
    }
  }

  private solicited(ifindex: number, frame: Buffer): void {
    const asked = parseNeighbourMessage(frame);
    const entry = this.byLinkLocal.get(`${ifindex} ${asked.target}`);
    if (!entry) return;
    this.sendFrame(entry, buildNeighbourAdvert(entry.mac, entry.linkLocal, asked.source, asked.sourceMac));
  }

  private add(ifindex: number, mac: string, check: AddressCheck | undefined): Running {
    const linkLocal = linkLocalOf(mac);
    // Replies to the endpoint's MAC, and solicitations for its link-local address, must get in before its link exists.
    this.member('add', ifindex, mac, linkLocal);
    const duid = duidLl(mac);
    const client = new Dhcp6Client({ mac, duid, iaid: IAID, random: this.random });
    const entry: Running = { ifindex, mac, linkLocal, client, timer: undefined, waiter: undefined, check };
    this.running.set(mac, entry);
    this.byDuid.set(duid, entry);
    this.byLinkLocal.set(`${ifindex} ${linkLocal}`, entry);
    return entry;
  }

  private member(op: 'add' | 'drop', ifindex: number, mac: string, linkLocal: bigint): void {
    const group = solicitedNode(linkLocal).mac;
    try {
      if (op === 'add') {
        this.link.addUnicast(ifindex, mac);
        this.link.addMulticast(ifindex, group);
      } else {
        this.link.dropUnicast(ifindex, mac);
        this.link.dropMulticast(ifindex, group);
      }
    } catch (error) {
      // As for DHCPv4 (see DhcpClients.add): a kernel without packet memberships; a parent that passes every frame
      // needs none. On a drop, the interface may be gone, and its memberships with it.
      if (op === 'add' && (error as NodeJS.ErrnoException).code !== 'ENOPROTOOPT') throw error;
      this.log.debug({ mac, ifindex, error: (error as Error).message }, `could not ${op} a DHCPv6 client's MACs`);
    }
  }

  private forget(entry: Running, why: string): void {
    clearTimeout(entry.timer);
    if (entry.waiter) {
      clearTimeout(entry.waiter.timeout);
      entry.waiter.reject(new Error(why));
    }
    if (this.running.get(entry.mac) !== entry) return;
    this.running.delete(entry.mac);
    this.byDuid.delete(duidLl(entry.mac));
    this.byLinkLocal.delete(`${entry.ifindex} ${entry.linkLocal}`);
    this.member('drop', entry.ifindex, entry.mac, entry.linkLocal);
  }

  private carryOut(entry: Running, step: Step6): void {
    for (const message of step.send)
      this.sendFrame(
        entry,
        buildUdp6Frame({
          sourceMac: entry.mac,
          destinationMac: ALL_SERVERS_MAC,
          source: entry.linkLocal,
          destination: ALL_SERVERS,
          sourcePort: CLIENT_PORT,
          destinationPort: SERVER_PORT,
          payload: encodeMessage(message),
        }),
      );
    clearTimeout(entry.timer);
    entry.timer = undefined;
    if (step.wakeAt !== undefined) {
      const delay = Math.min(Math.max(step.wakeAt - this.clock(), 0), MAX_TIMER_MS);
      entry.timer = setTimeout(() => {
        entry.timer = undefined;
        if (this.running.get(entry.mac) === entry) this.carryOut(entry, entry.client.timer(this.clock()));
      }, delay);
    }
    for (const event of step.events) if (this.running.get(entry.mac) === entry) this.report(entry, event);
  }

  private report(entry: Running, event: Lease6Event): void {
    const address = event.kind === 'declined' ? event.address : event.lease.address;
    this.log.info({ mac: entry.mac, ifindex: entry.ifindex, address }, `DHCPv6 lease ${event.kind}`);
    if (event.kind === 'checking') return void this.check(entry, event.lease);
    if (event.kind === 'bound') this.counts.leases++;
    else if (event.kind === 'renewed') this.counts.renewals++;
    else if (event.kind === 'declined') {
      this.counts.declined++;
      entry.declined = { address: event.address, heldBy: event.heldBy };
    } else if (event.kind === 'lost') this.counts.lost++;
    if (event.kind === 'bound' && entry.waiter) {
      clearTimeout(entry.waiter.timeout);
      entry.waiter.resolve(event.lease);
      entry.waiter = undefined;
    }
    this.emit('lease', { ifindex: entry.ifindex, mac: entry.mac, event });
  }

  /** The duplicate address check of a granted address; a client without a check (resumed) takes it as it is. */
  private async check(entry: Running, lease: Lease6): Promise<void> {
    let heldBy: string | undefined;
    try {
      const checked = entry.check?.(entry.ifindex, parseIp(lease.address)!.value);
      entry.onChecking?.(lease);
      heldBy = await checked;
    } catch (error) {
      this.log.warn(
        { mac: entry.mac, address: lease.address, error: (error as Error).message },
        'cannot check a DHCPv6 address',
      );
      heldBy = undefined;
      if (entry.waiter) {
        const { reject, timeout } = entry.waiter;
        clearTimeout(timeout);
        entry.waiter = undefined;
        this.release(entry.mac);
        return reject(error as Error);
      }
    }
    if (this.running.get(entry.mac) === entry) this.carryOut(entry, entry.client.checked(this.clock(), heldBy));
  }

  private sendFrame(entry: Running, frame: Buffer): void {
    try {
      this.link.send(entry.ifindex, frame);
    } catch (error) {
      // A lost frame is like one lost on the wire: the client retransmits.
      this.log.warn({ mac: entry.mac, error: (error as Error).message }, 'could not send a DHCPv6 frame');
    }
  }
}

/** The service over the host's shared packet socket (IPv6 frames); close() stops every client (no release). */
export function openDhcp6Clients(log: Logger, tap: PacketTap): { clients: Dhcp6Clients; close: () => void } {
  let clients: Dhcp6Clients | undefined;
  const handle = tap.join({ ethertypes: [ETHERTYPE_IPV6], frame: (received) => clients?.receive(received) });
  clients = new Dhcp6Clients(handle, log);
  const opened = clients;
  return {
    clients: opened,
    close: () => {
      opened.stop();
      handle.leave();
    },
  };
}
