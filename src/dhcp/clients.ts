// Runs one DhcpClient per endpoint over the host's one packet socket: frames in are decoded and handed to the
// clients of the interface they arrived on, what the clients return is framed and sent, their wake-ups become
// timers, and lease changes are emitted. The driver's whole view of DHCP.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { PacketSocket, type ReceivedFrame } from '../kernel/packet-socket';
import { DhcpClient, type LeaseEvent, type Outgoing, type Step } from './client';
import { buildArpFrame, buildUdpFrame, MalformedFrame, parseFrame } from './frame';
import type { Lease } from './lease';
import { CLIENT_PORT, decodeMessage, encodeMessage, MalformedMessage, SERVER_PORT } from './message';

/** Where frames go out, and which MACs the NIC must let in: the packet socket, or a recorder around it in tests. */
export type FrameLink = Pick<PacketSocket, 'send' | 'addUnicast' | 'dropUnicast'>;

export interface DhcpClientsOptions {
  link: FrameLink;
  log: Logger;
  clock?: () => number;
  random?: () => number;
}

export interface LeaseChange {
  ifindex: number;
  mac: string;
  event: LeaseEvent;
}

export class NoDhcpAnswer extends Error {}

const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's limit; a longer wait is re-armed

interface Running {
  ifindex: number;
  client: DhcpClient;
  timer: NodeJS.Timeout | undefined;
  armedFor: number | undefined;
  waiter: { resolve: (lease: Lease) => void; reject: (error: Error) => void; timeout: NodeJS.Timeout } | undefined;
}

export class DhcpClients extends EventEmitter<{ lease: [LeaseChange] }> {
  private readonly running = new Map<string, Running>();
  private readonly clock: () => number;
  private readonly random: () => number;

  constructor(private readonly options: DhcpClientsOptions) {
    super();
    this.clock = options.clock ?? Date.now;
    this.random = options.random ?? Math.random;
  }

  /**
   * Obtains a lease for `mac` on the parent `ifindex` (DISCOVER, OFFER, REQUEST, ACK, ARP check) and keeps it
   * renewed until release(). Rejects with NoDhcpAnswer when no lease is bound within timeoutMs.
   */
  acquire(ifindex: number, mac: string, timeoutMs: number, hostname?: string): Promise<Lease> {
    if (this.running.has(mac)) return Promise.reject(new Error(`a DHCP client for ${mac} is already running`));
    let entry: Running;
    try {
      entry = this.add(ifindex, mac, hostname);
    } catch (error) {
      const reason = (error as Error).message;
      return Promise.reject(new Error(`cannot listen for DHCP answers to ${mac} on interface ${ifindex}: ${reason}`));
    }
    return new Promise<Lease>((resolve, reject) => {
      const timeout = setTimeout(() => {
        entry.waiter = undefined;
        this.release(mac);
        reject(new NoDhcpAnswer(`no DHCP server answered for ${mac} on interface ${ifindex} within ${timeoutMs} ms`));
      }, timeoutMs);
      entry.waiter = { resolve, reject, timeout };
      this.carryOut(mac, entry.client.start(this.clock()));
    });
  }

  /** Takes over a lease kept from before a restart: renewals go on on its schedule. */
  resume(ifindex: number, lease: Lease, hostname?: string): void {
    if (this.running.has(lease.mac)) throw new Error(`a DHCP client for ${lease.mac} is already running`);
    const entry = this.add(ifindex, lease.mac, hostname);
    this.carryOut(lease.mac, entry.client.resume(lease, this.clock()));
  }

  /** Renews now instead of at T1 (unicast to the server); the outcome is a lease event. */
  renew(mac: string): void {
    const entry = this.running.get(mac);
    if (entry) this.carryOut(mac, entry.client.renew(this.clock()));
  }

  /** Sends DHCPRELEASE (when there is a lease) and forgets the client; unknown MACs are a no-op. */
  release(mac: string): void {
    const entry = this.running.get(mac);
    if (!entry) return;
    this.carryOut(mac, entry.client.release(this.clock()));
    clearTimeout(entry.timer);
    if (entry.waiter) {
      clearTimeout(entry.waiter.timeout);
      entry.waiter.reject(new Error(`the DHCP client for ${mac} was released before it got a lease`));
    }
    this.running.delete(mac);
    this.dropUnicast(entry.ifindex, mac);
  }

  lease(mac: string): Lease | undefined {
    return this.running.get(mac)?.client.lease;
  }

  /** Stops every client without releasing (the leases stay valid for a restart to resume). */
  stop(): void {
    for (const [mac, entry] of this.running) {
      clearTimeout(entry.timer);
      if (entry.waiter) {
        clearTimeout(entry.waiter.timeout);
        entry.waiter.reject(new Error(`the DHCP clients stopped before ${mac} got a lease`));
      }
      this.dropUnicast(entry.ifindex, mac);
    }
    this.running.clear();
  }

  /** A frame from the packet socket. Frames that are not well-formed DHCP or ARP are dropped (logged at debug). */
  receive({ ifindex, frame }: ReceivedFrame): void {
    try {
      const parsed = parseFrame(frame);
      if (parsed.kind === 'arp') {
        for (const [mac, entry] of this.running) {
          if (entry.ifindex === ifindex) this.carryOut(mac, entry.client.arp(parsed.arp, this.clock()));
        }
        return;
      }
      const { datagram } = parsed;
      if (datagram.sourcePort !== SERVER_PORT || datagram.destinationPort !== CLIENT_PORT) return;
      const message = decodeMessage(datagram.payload);
      const entry = this.running.get(message.chaddr);
      if (entry?.ifindex === ifindex)
        this.carryOut(message.chaddr, entry.client.receive(message, datagram.sourceMac, this.clock()));
    } catch (error) {
      if (!(error instanceof MalformedFrame || error instanceof MalformedMessage)) throw error;
      this.options.log.debug({ ifindex, reason: error.message }, 'dropped a malformed DHCP/ARP frame');
    }
  }

  private add(ifindex: number, mac: string, hostname: string | undefined): Running {
    // Replies to the endpoint's MAC must get in before its link exists (a NIC filters unicast in hardware).
    try {
      this.options.link.addUnicast(ifindex, mac);
    } catch (error) {
      // A kernel without packet socket memberships (qemu's user mode, which runs the arm64 plugin in the tests, has no
      // SOL_PACKET options): parents that pass every frame (veth, bridges, promiscuous NICs) need none, and on a NIC
      // that drops the replies the acquire ends in NoDhcpAnswer. Any other error (no such interface) is the request's.
      if ((error as NodeJS.ErrnoException).code !== 'ENOPROTOOPT') throw error;
      this.options.log.warn(
        { mac, ifindex, error: (error as Error).message },
        "could not add the endpoint's MAC to the parent's unicast filter: replies to it arrive only if the parent passes them",
      );
    }
    const client = new DhcpClient({ mac, random: this.random, ...(hostname === undefined ? {} : { hostname }) });
    const entry: Running = { ifindex, client, timer: undefined, armedFor: undefined, waiter: undefined };
    this.running.set(mac, entry);
    return entry;
  }

  private carryOut(mac: string, step: Step): void {
    const entry = this.running.get(mac)!;
    for (const packet of step.send) this.send(entry.ifindex, mac, packet);
    // Most steps (an ARP frame on the LAN, say) leave the wake-up as it was: keep the timer then.
    if (step.wakeAt !== entry.armedFor || entry.timer === undefined) this.arm(mac, entry, step.wakeAt);
    for (const event of step.events) this.report(entry, mac, event);
  }

  private arm(mac: string, entry: Running, wakeAt: number | undefined): void {
    clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.armedFor = wakeAt;
    if (wakeAt === undefined) return;
    const delay = Math.min(Math.max(wakeAt - this.clock(), 0), MAX_TIMER_MS);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      if (this.running.get(mac) === entry) this.carryOut(mac, entry.client.timer(this.clock()));
    }, delay);
  }

  private report(entry: Running, mac: string, event: LeaseEvent): void {
    const address = event.kind === 'declined' ? event.address : event.lease.address;
    this.options.log.info({ mac, ifindex: entry.ifindex, address }, `DHCP lease ${event.kind}`);
    if (event.kind === 'bound' && entry.waiter) {
      clearTimeout(entry.waiter.timeout);
      entry.waiter.resolve(event.lease);
      entry.waiter = undefined;
    }
    this.emit('lease', { ifindex: entry.ifindex, mac, event });
  }

  private dropUnicast(ifindex: number, mac: string): void {
    try {
      this.options.link.dropUnicast(ifindex, mac);
    } catch (error) {
      // The interface is gone, and the MAC with it.
      this.options.log.debug({ mac, ifindex, error: (error as Error).message }, 'could not drop a unicast MAC');
    }
  }

  private send(ifindex: number, mac: string, packet: Outgoing): void {
    try {
      this.options.link.send(ifindex, frameFor(mac, packet));
    } catch (error) {
      // A lost frame is like one lost on the wire: the client retransmits.
      this.options.log.warn({ mac, ifindex, error: (error as Error).message }, 'could not send a DHCP/ARP frame');
    }
  }
}

/** The service over a packet socket of its own; close() stops every client (no release) and closes the socket. */
export function openDhcpClients(log: Logger): { clients: DhcpClients; close: () => void } {
  let clients: DhcpClients | undefined;
  const socket = new PacketSocket(
    (received) => clients?.receive(received),
    (error) => log.error({ error: error.message }, 'DHCP packet socket error'),
  );
  clients = new DhcpClients({ link: socket, log });
  const opened = clients;
  return {
    clients: opened,
    close: () => {
      opened.stop();
      socket.close();
    },
  };
}

/** The whole Ethernet frame for what the client of `mac` sends. */
export function frameFor(mac: string, packet: Outgoing): Buffer {
  if (packet.kind === 'arp') return buildArpFrame(packet.arp);
  return buildUdpFrame({
    sourceMac: mac,
    destinationMac: packet.destinationMac,
    sourceIp: packet.sourceIp,
    destinationIp: packet.destinationIp,
    sourcePort: CLIENT_PORT,
    destinationPort: SERVER_PORT,
    payload: encodeMessage(packet.message),
  });
}
