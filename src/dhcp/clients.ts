// Runs one DhcpClient per endpoint over the host's one packet socket: frames in are decoded and handed to the
// clients of the interface they arrived on, what the clients return is framed and sent, their wake-ups become
// timers, and lease changes are emitted. The driver's whole view of DHCP.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { ETHERTYPE_ARP, ETHERTYPE_IPV4 } from '../kernel/link-frames';
import { PacketSocket, type ReceivedFrame } from '../kernel/packet-socket';
import type { PacketTap } from '../kernel/packet-tap';
import { DhcpClient, type LeaseEvent, type Outgoing, type Step } from './client';
import { buildArpFrame, buildUdpFrame, MalformedFrame, parseFrame } from './frame';
import { clientKey, type Lease, macClientId } from './lease';
import { CLIENT_PORT, decodeMessage, type DhcpMessage, encodeMessage, MalformedMessage, SERVER_PORT } from './message';

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
  /** The client's identifier when it is its own (see DhcpIdentity); clientKey() of this change names the client. */
  clientId?: string;
  event: LeaseEvent;
}

/**
 * Who a client is to the server: its chaddr, and a client identifier of its own where several clients share that MAC
 * (the endpoints of an ipvlan network all have their parent's). A plain MAC stands for `{ mac }`. The client is named
 * by its identifier if it has one, else by its MAC (see clientKey): that is what release, renew and lease take.
 */
export interface DhcpIdentity {
  mac: string;
  clientId?: string;
}

export class NoDhcpAnswer extends Error {}

/** Why a lease was not had or not kept: refused (NAK), nothing answered in time, the address in use (ARP), moved. */
export const FAILURE_REASONS = ['nak', 'timeout', 'declined', 'changed'] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

/** Where the clients are: getting a lease (DISCOVER to the ARP check), holding one, or renewing or rebinding it. */
export type LeasePhase = 'acquiring' | 'bound' | 'renewing' | 'rebinding';

/** What happened to the clients' leases since start, for the metrics. */
export interface DhcpCounts {
  /** Renewals (and rebinds) the server granted for the same address. */
  renewals: number;
  failures: Record<FailureReason, number>;
}

/**
 * The server leased a client an address another client of this host holds: it tells clients apart by chaddr alone,
 * and these two share one. The new client stops without a DHCPRELEASE, which would free the other's lease.
 */
export class SharedLease extends Error {
  constructor(
    readonly address: string,
    readonly serverId: string,
    readonly holder: string,
  ) {
    super(`the DHCP server ${serverId} leased ${address}, which ${holder} holds already`);
  }
}

const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's limit; a longer wait is re-armed

interface Running extends DhcpIdentity {
  ifindex: number;
  client: DhcpClient;
  /** Told of each lease the server grants while its address is being checked (see acquire). */
  onChecking: ((lease: Lease) => void) | undefined;
  checking: Lease | undefined;
  timer: NodeJS.Timeout | undefined;
  armedFor: number | undefined;
  waiter: { resolve: (lease: Lease) => void; reject: (error: Error) => void; timeout: NodeJS.Timeout } | undefined;
  /** The transaction id of its last message. */
  xid: number | undefined;
}

export class DhcpClients extends EventEmitter<{ lease: [LeaseChange] }> {
  /** By clientKey. */
  private readonly running = new Map<string, Running>();
  readonly counts: DhcpCounts = { renewals: 0, failures: { nak: 0, timeout: 0, declined: 0, changed: 0 } };
  /** The client holding each leased address, by `<ifindex> <address>`: a second client given one is found at once. */
  private readonly holders = new Map<string, string>();
  /** Clients by the transaction id of their last message: replies that echo no client identifier find theirs so. */
  private readonly byXid = new Map<number, string>();
  private readonly clock: () => number;
  private readonly random: () => number;

  constructor(private readonly options: DhcpClientsOptions) {
    super();
    this.clock = options.clock ?? Date.now;
    this.random = options.random ?? Math.random;
  }

  /**
   * Obtains a lease for `who` (a MAC, or a DhcpIdentity) on the parent `ifindex` (DISCOVER, OFFER, REQUEST, ACK, ARP
   * check) and keeps it renewed until release(). Rejects with NoDhcpAnswer when no lease is bound within timeoutMs,
   * with SharedLease when the server leased an address another client here holds.
   */
  acquire(
    ifindex: number,
    who: string | DhcpIdentity,
    timeoutMs: number,
    hostname?: string,
    onChecking?: (lease: Lease) => void,
  ): Promise<Lease> {
    const identity = typeof who === 'string' ? { mac: who } : who;
    const key = clientKey(identity);
    if (this.running.has(key)) return Promise.reject(new Error(`a DHCP client for ${key} is already running`));
    let entry: Running;
    try {
      entry = this.add(ifindex, identity, hostname);
      entry.onChecking = onChecking;
    } catch (error) {
      const reason = (error as Error).message;
      return Promise.reject(new Error(`cannot listen for DHCP answers to ${key} on interface ${ifindex}: ${reason}`));
    }
    return new Promise<Lease>((resolve, reject) => {
      const timeout = setTimeout(() => {
        this.counts.failures.timeout++;
        entry.waiter = undefined;
        this.release(key);
        reject(new NoDhcpAnswer(`no DHCP server answered for ${key} on interface ${ifindex} within ${timeoutMs} ms`));
      }, timeoutMs);
      entry.waiter = { resolve, reject, timeout };
      this.carryOut(key, entry.client.start(this.clock()));
    });
  }

  /** Takes over a lease kept from before a restart: renewals go on on its schedule. */
  resume(ifindex: number, lease: Lease, hostname?: string): void {
    const key = clientKey(lease);
    if (this.running.has(key)) throw new Error(`a DHCP client for ${key} is already running`);
    const entry = this.add(ifindex, lease, hostname);
    this.holders.set(`${ifindex} ${lease.address}`, key);
    this.carryOut(key, entry.client.resume(lease, this.clock()));
  }

  /** Renews now instead of at T1 (unicast to the server); the outcome is a lease event. `key`: see DhcpIdentity. */
  renew(key: string): void {
    const entry = this.running.get(key);
    if (entry) this.carryOut(key, entry.client.renew(this.clock()));
  }

  /** Sends DHCPRELEASE (when there is a lease) and forgets the client; unknown keys are a no-op. */
  release(key: string): void {
    const entry = this.running.get(key);
    if (!entry) return;
    this.carryOut(key, entry.client.release(this.clock()));
    this.forget(key, entry, `the DHCP client for ${key} was released before it got a lease`);
  }

  lease(key: string): Lease | undefined {
    return this.running.get(key)?.client.lease;
  }

  /** How many clients are in each phase (one pass over them: for a scrape, not a request). */
  phases(): Record<LeasePhase, number> {
    const phases = { acquiring: 0, bound: 0, renewing: 0, rebinding: 0 };
    for (const { client } of this.running.values()) {
      const state = client.state;
      if (state === 'bound' || state === 'renewing' || state === 'rebinding') phases[state]++;
      else if (state !== 'released') phases.acquiring++;
    }
    return phases;
  }

  /** Stops every client without releasing (the leases stay valid for a restart to resume). */
  stop(): void {
    for (const [key, entry] of this.running)
      this.forget(key, entry, `the DHCP clients stopped before ${key} got a lease`);
  }

  /** Stops a client (without a DHCPRELEASE: the caller sent one, or must not); a waiting acquire fails with `why`. */
  private forget(key: string, entry: Running, why: string | Error): void {
    clearTimeout(entry.timer);
    if (entry.waiter) {
      clearTimeout(entry.waiter.timeout);
      entry.waiter.reject(typeof why === 'string' ? new Error(why) : why);
    }
    this.running.delete(key);
    if (entry.xid !== undefined && this.byXid.get(entry.xid) === key) this.byXid.delete(entry.xid);
    const held = entry.client.lease?.address;
    if (held !== undefined && this.holders.get(`${entry.ifindex} ${held}`) === key)
      this.holders.delete(`${entry.ifindex} ${held}`);
    this.dropUnicast(entry.ifindex, entry.mac);
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
      const [key, entry] = this.addressee(message) ?? [];
      if (key !== undefined && entry?.ifindex === ifindex)
        this.carryOut(key, entry.client.receive(message, datagram.sourceMac, this.clock()));
    } catch (error) {
      if (!(error instanceof MalformedFrame || error instanceof MalformedMessage)) throw error;
      this.options.log.debug({ ifindex, reason: error.message }, 'dropped a malformed DHCP/ARP frame');
    }
  }

  /**
   * The client a reply is for: the one its echoed client identifier names (RFC 6842), else the one of its chaddr, else
   * (a server that echoes no identifier to clients sharing a MAC, as dnsmasq 2.90) the one of its transaction id.
   */
  private addressee(message: DhcpMessage): [string, Running] | undefined {
    const { clientId, chaddr } = message;
    let key = clientId !== undefined && clientId !== macClientId(chaddr) ? clientId : chaddr;
    if (!this.running.has(key) && clientId === undefined) key = this.byXid.get(message.xid) ?? key;
    const entry = this.running.get(key);
    return entry && entry.mac === chaddr ? [key, entry] : undefined;
  }

  private add(ifindex: number, identity: DhcpIdentity, hostname: string | undefined): Running {
    const { mac, clientId } = identity;
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
    const client = new DhcpClient({
      mac,
      random: this.random,
      ...(clientId === undefined ? {} : { clientId }),
      ...(hostname === undefined ? {} : { hostname }),
    });
    const entry: Running = {
      ifindex,
      mac,
      ...(clientId !== undefined && { clientId }),
      client,
      onChecking: undefined,
      checking: undefined,
      timer: undefined,
      armedFor: undefined,
      waiter: undefined,
      xid: undefined,
    };
    this.running.set(clientKey(identity), entry);
    return entry;
  }

  private carryOut(key: string, step: Step): void {
    const entry = this.running.get(key)!;
    for (const packet of step.send) {
      if (packet.kind === 'dhcp') this.track(key, entry, packet.message.xid);
      this.send(entry.ifindex, entry.mac, packet);
    }
    const checking = entry.client.checking;
    if (checking && checking !== entry.checking && entry.onChecking) {
      entry.checking = checking;
      entry.onChecking(checking);
    }
    // Most steps (an ARP frame on the LAN, say) leave the wake-up as it was: keep the timer then.
    if (step.wakeAt !== entry.armedFor || entry.timer === undefined) this.arm(key, entry, step.wakeAt);
    for (const event of step.events) if (this.running.get(key) === entry) this.report(entry, key, event);
  }

  private track(key: string, entry: Running, xid: number): void {
    if (entry.xid === xid) return;
    if (entry.xid !== undefined && this.byXid.get(entry.xid) === key) this.byXid.delete(entry.xid);
    entry.xid = xid;
    this.byXid.set(xid, key);
  }

  private arm(key: string, entry: Running, wakeAt: number | undefined): void {
    clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.armedFor = wakeAt;
    if (wakeAt === undefined) return;
    const delay = Math.min(Math.max(wakeAt - this.clock(), 0), MAX_TIMER_MS);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      if (this.running.get(key) === entry) this.carryOut(key, entry.client.timer(this.clock()));
    }, delay);
  }

  private report(entry: Running, key: string, event: LeaseEvent): void {
    this.count(event);
    const address = event.kind === 'declined' ? event.address : event.lease.address;
    this.options.log.info({ client: key, ifindex: entry.ifindex, address }, `DHCP lease ${event.kind}`);
    if (!this.hold(entry, key, event)) return;
    if (event.kind === 'bound' && entry.waiter) {
      clearTimeout(entry.waiter.timeout);
      entry.waiter.resolve(event.lease);
      entry.waiter = undefined;
    }
    const { clientId } = entry;
    this.emit('lease', { ifindex: entry.ifindex, mac: entry.mac, ...(clientId !== undefined && { clientId }), event });
  }

  /**
   * Keeps `holders` in step with the event; false (and the client stopped, see SharedLease) when it binds an address
   * another client here holds.
   */
  private hold(entry: Running, key: string, event: LeaseEvent): boolean {
    if (event.kind === 'declined') return true;
    const at = (lease: Lease) => `${entry.ifindex} ${lease.address}`;
    const holder = this.holders.get(at(event.lease));
    if (event.kind === 'bound' && holder !== undefined && holder !== key) {
      this.forget(key, entry, new SharedLease(event.lease.address, event.lease.serverId, holder));
      return false;
    }
    if (event.kind === 'changed' && this.holders.get(at(event.previous)) === key)
      this.holders.delete(at(event.previous));
    if (event.kind === 'lost' || event.kind === 'released') {
      if (holder === key) this.holders.delete(at(event.lease));
    } else this.holders.set(at(event.lease), key);
    return true;
  }

  private count(event: LeaseEvent): void {
    const { failures } = this.counts;
    if (event.kind === 'renewed') this.counts.renewals++;
    else if (event.kind === 'changed') failures.changed++;
    else if (event.kind === 'declined') failures.declined++;
    // A lease lost to a decline was counted at its 'declined' event, just before.
    else if (event.kind === 'lost' && event.reason !== 'declined')
      failures[event.reason === 'nak' ? 'nak' : 'timeout']++;
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

/**
 * The service over the host's shared packet socket (`tap`: ARP and IPv4 frames), or over a socket of its own;
 * close() stops every client (no release) and leaves or closes the socket.
 */
export function openDhcpClients(log: Logger, tap?: PacketTap): { clients: DhcpClients; close: () => void } {
  let clients: DhcpClients | undefined;
  const onFrame = (received: ReceivedFrame) => clients?.receive(received);
  const onError = (error: Error) => log.error({ error: error.message }, 'DHCP packet socket error');
  const socket = tap
    ? tap.join({ ethertypes: [ETHERTYPE_ARP, ETHERTYPE_IPV4], frame: onFrame })
    : new PacketSocket(onFrame, onError);
  clients = new DhcpClients({ link: socket, log });
  const opened = clients;
  return {
    clients: opened,
    close: () => {
      opened.stop();
      if ('leave' in socket) socket.leave();
      else socket.close();
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
