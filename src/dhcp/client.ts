// One endpoint's DHCPv4 client (RFC 2131 §4.4) with the RFC 5227 address check, as a pure state machine: the
// caller feeds it received messages, ARP packets and due timers with the current time, and carries out what it
// returns (packets to send, the next wake-up, lease events). No I/O, no clock of its own.
import { arpProbe } from '../kernel/link-frames';
import { ANY_IPV4, type ArpPacket, BROADCAST_IPV4, BROADCAST_MAC } from './frame';
import { type Lease, leaseFromAck, macClientId } from './lease';
import type { DhcpMessage, MessageTypeName } from './message';

/** Timings, shortened from the RFCs' so that a container starts within seconds; see each value. */
export const Timing = {
  /** RFC 2131 §4.1: first retransmission after 4 s, doubling to 64 s. Here 1 s doubling to 8 s. */
  firstRetransmitMs: 1000,
  maxRetransmitMs: 8000,
  /** REQUESTs sent for one offer before starting over with a DISCOVER. */
  requestAttempts: 4,
  /**
   * RFC 5227 §2.1.1: wait 0–1 s (PROBE_WAIT), 3 probes (PROBE_NUM) 1–2 s apart, then 2 s (ANNOUNCE_WAIT): 4–9 s.
   * Here 3 probes 100 ms apart and 200 ms after the last (0.4 s): a host on the LAN answers ARP in milliseconds.
   */
  probes: 3,
  probeIntervalMs: 100,
  probeFinalWaitMs: 200,
  /** RFC 2131 §4.4.5: retransmit in RENEWING/REBINDING after half the time left, at least 60 s; here 10 s. */
  minRenewRetransmitMs: 10_000,
} as const;

/** Asked for in every DISCOVER and REQUEST: mask, classless routes, router, DNS, lease, T1, T2. */
const PARAMETERS = [1, 121, 3, 6, 51, 58, 59];

export type ClientState =
  'init' | 'selecting' | 'requesting' | 'probing' | 'bound' | 'renewing' | 'rebinding' | 'released';

export type Outgoing =
  | { kind: 'dhcp'; message: DhcpMessage; sourceIp: string; destinationIp: string; destinationMac: string }
  | { kind: 'arp'; arp: ArpPacket };

export type LeaseEvent =
  | { kind: 'bound'; lease: Lease }
  | { kind: 'renewed'; lease: Lease }
  /** A renewal or rebinding returned another address: the old one is no longer ours. */
  | { kind: 'changed'; previous: Lease; lease: Lease }
  | { kind: 'declined'; address: string; heldBy: string }
  /** nak/expired: the server no longer gives it; declined: a renewal offered another address, which was in use. */
  | { kind: 'lost'; lease: Lease; reason: 'nak' | 'expired' | 'declined' }
  | { kind: 'released'; lease: Lease };

export interface Step {
  send: Outgoing[];
  events: LeaseEvent[];
  /** When to call timer() next (epoch ms); undefined: nothing is due until a packet arrives. */
  wakeAt: number | undefined;
}

export interface ClientOptions {
  /** chaddr: the endpoint's MAC, or its parent's where endpoints share it (ipvlan). */
  mac: string;
  /**
   * Option 61 in colon hex, when the MAC alone does not tell this client apart (several share it): the server keys
   * its leases by it. Without it the client identifier is the MAC's own (type 1 + MAC).
   */
  clientId?: string;
  hostname?: string;
  /** Uniform in [0, 1): transaction ids and retransmission jitter. */
  random: () => number;
}

interface Exchange {
  xid: number;
  startedAt: number;
  attempts: number;
  lastSentAt: number;
}

export class DhcpClient {
  private current: ClientState = 'init';
  private exchange: Exchange = { xid: 0, startedAt: 0, attempts: 0, lastSentAt: 0 };
  private offer: DhcpMessage | undefined;
  /** The lease being checked with ARP before it is taken. */
  private candidate: Lease | undefined;
  private probesSent = 0;
  private probeStartedAt = 0;
  private leased: Lease | undefined;
  private wakeAt: number | undefined;
  /** What the current call returns, collected as it goes. */
  private out: Pick<Step, 'send' | 'events'> = { send: [], events: [] };

  constructor(private readonly options: ClientOptions) {}

  get state(): ClientState {
    return this.current;
  }

  get lease(): Lease | undefined {
    return this.leased;
  }

  /** The lease a server has just granted (ACK), while its address is being checked with ARP before it is taken. */
  get checking(): Lease | undefined {
    return this.current === 'probing' ? this.candidate : undefined;
  }

  /** Starts acquiring a lease: INIT → SELECTING. */
  start(now: number): Step {
    this.discover(now);
    return this.finish();
  }

  /** Takes over a lease kept from before a restart, in the state its times say now. */
  resume(lease: Lease, now: number): Step {
    this.leased = lease;
    this.bind(now);
    return this.finish();
  }

  /** Renews now (an administrative renew), as at T1. */
  renew(now: number): Step {
    if (this.current === 'bound') this.enter('renewing', now);
    return this.finish();
  }

  /** Gives the address back (DHCPRELEASE) and stops; an ACKed address still under ARP check is released too. */
  release(now: number): Step {
    const held = this.leased ?? this.candidate;
    if (held && this.current !== 'released') {
      this.sendToServer('release', held, now);
      this.out.events.push({ kind: 'released', lease: held });
    }
    this.current = 'released';
    this.leased = this.candidate = this.offer = undefined;
    this.wakeAt = undefined;
    return this.finish();
  }

  /** The client identifier this client sends (option 61, colon hex). */
  get clientId(): string {
    return this.options.clientId ?? macClientId(this.options.mac);
  }

  /**
   * A DHCP message received on this endpoint's parent; sourceMac is the frame's. A reply is ours when it names our
   * chaddr and transaction, and our client identifier if it echoes one (RFC 6842: where clients share a MAC, it is
   * the identifier that tells their replies apart).
   */
  receive(message: DhcpMessage, sourceMac: string, now: number): Step {
    const ours =
      message.chaddr === this.options.mac &&
      message.xid === this.exchange.xid &&
      (message.clientId === undefined || message.clientId === this.clientId);
    if (message.op === 'reply' && ours) {
      if (this.current === 'selecting' && message.type === 'offer') this.takeOffer(message, now);
      else if (this.expectsAck() && (message.type === 'ack' || message.type === 'nak')) {
        if (this.fromOurServer(message)) this.answer(message, sourceMac, now);
      }
    }
    return this.finish();
  }

  /** Any ARP packet seen on the parent: during the check, one from another host claiming the address is a conflict. */
  arp(packet: ArpPacket, now: number): Step {
    const candidate = this.candidate;
    if (this.current === 'probing' && candidate && packet.senderMac !== this.options.mac) {
      const claims = packet.senderIp === candidate.address;
      const probesToo =
        packet.operation === 'request' && packet.senderIp === ANY_IPV4 && packet.targetIp === candidate.address;
      if (claims || probesToo) this.decline(candidate, packet.senderMac, now);
    }
    return this.finish();
  }

  /** The wake-up time came: retransmit, move on after the ARP check, or enter RENEWING/REBINDING/expiry. */
  timer(now: number): Step {
    if (this.wakeAt === undefined || now < this.wakeAt) return this.finish();
    switch (this.current) {
      case 'selecting':
        this.sendDiscover(now);
        break;
      case 'requesting':
        if (this.exchange.attempts >= Timing.requestAttempts) this.discover(now);
        else this.sendRequest(now);
        break;
      case 'probing':
        this.probe(now);
        break;
      case 'bound':
      case 'renewing':
      case 'rebinding':
        this.retransmitRenewal(now);
        break;
    }
    return this.finish();
  }

  private finish(): Step {
    const step = { ...this.out, wakeAt: this.wakeAt };
    this.out = { send: [], events: [] };
    return step;
  }

  private expectsAck(): boolean {
    return this.current === 'requesting' || this.current === 'renewing' || this.current === 'rebinding';
  }

  private fromOurServer(message: DhcpMessage): boolean {
    if (this.current === 'rebinding') return true; // any server may answer a broadcast rebind
    const chosen = this.current === 'requesting' ? this.offer?.serverId : this.leased?.serverId;
    return message.serverId === undefined || message.serverId === chosen;
  }

  private newExchange(now: number): void {
    this.exchange = {
      xid: Math.floor(this.options.random() * 0x1_0000_0000) >>> 0,
      startedAt: now,
      attempts: 0,
      lastSentAt: now,
    };
  }

  private backoff(now: number): number {
    const base = Math.min(Timing.firstRetransmitMs * 2 ** (this.exchange.attempts - 1), Timing.maxRetransmitMs);
    return now + base * (0.9 + 0.2 * this.options.random()); // ±10 % so that clients do not stay in step
  }

  private discover(now: number): void {
    this.current = 'selecting';
    this.offer = this.candidate = undefined;
    this.newExchange(now);
    this.sendDiscover(now);
  }

  private sendDiscover(now: number): void {
    this.broadcast('discover', { parameterRequestList: PARAMETERS }, now);
  }

  private takeOffer(offer: DhcpMessage, now: number): void {
    if (!offer.serverId || offer.yiaddr === ANY_IPV4) return; // unusable: wait for another offer
    this.offer = offer;
    this.current = 'requesting';
    this.exchange.attempts = 0;
    this.sendRequest(now);
  }

  private sendRequest(now: number): void {
    const offer = this.offer!;
    const fields = { requestedAddress: offer.yiaddr, serverId: offer.serverId, parameterRequestList: PARAMETERS };
    this.broadcast('request', fields, now);
  }

  private answer(message: DhcpMessage, sourceMac: string, now: number): void {
    if (message.type === 'nak') {
      if (this.leased) this.out.events.push({ kind: 'lost', lease: this.leased, reason: 'nak' });
      this.leased = undefined;
      this.discover(now);
      return;
    }
    const granted = leaseFromAck(message, sourceMac, this.exchange.lastSentAt);
    if (typeof granted === 'string') return; // not usable: retransmission goes on
    const lease = this.options.clientId === undefined ? granted : { ...granted, clientId: this.options.clientId };
    if (this.leased && this.leased.address === lease.address) {
      this.leased = lease;
      this.out.events.push({ kind: 'renewed', lease });
      this.bind(now);
      return;
    }
    this.candidate = lease;
    this.current = 'probing';
    this.probesSent = 0;
    this.probeStartedAt = now;
    this.probe(now);
  }

  private probe(now: number): void {
    const candidate = this.candidate!;
    if (this.probesSent < Timing.probes) {
      this.probesSent++;
      this.out.send.push({ kind: 'arp', arp: arpProbe(this.options.mac, candidate.address) });
      // Due against the check's start, so that late timers do not add up over the check; the last wait keeps at least
      // half its length after the last probe.
      const last = this.probesSent === Timing.probes;
      const offset = last
        ? (Timing.probes - 1) * Timing.probeIntervalMs + Timing.probeFinalWaitMs
        : this.probesSent * Timing.probeIntervalMs;
      this.wakeAt = Math.max(this.probeStartedAt + offset, last ? now + Timing.probeFinalWaitMs / 2 : now);
      return;
    }
    const previous = this.leased;
    this.leased = candidate;
    this.candidate = undefined;
    this.out.events.push(
      previous ? { kind: 'changed', previous, lease: candidate } : { kind: 'bound', lease: candidate },
    );
    this.bind(now);
  }

  /** RFC 2131 §3.1.5: DHCPDECLINE, then start over (without the 10 s wait: the server will offer another). */
  private decline(candidate: Lease, heldBy: string, now: number): void {
    const decline = {
      requestedAddress: candidate.address,
      serverId: candidate.serverId,
      message: `ARP reply from ${heldBy}`,
    };
    this.broadcast('decline', decline, now);
    this.out.events.push({ kind: 'declined', address: candidate.address, heldBy });
    if (this.leased) this.out.events.push({ kind: 'lost', lease: this.leased, reason: 'declined' });
    this.leased = undefined;
    this.discover(now);
  }

  /** BOUND until T1; a lease whose T1, T2 or expiry has already passed goes straight to where its times say. */
  private bind(now: number): void {
    this.current = 'bound';
    this.wakeAt = this.leased!.renewAt;
    if (now >= this.wakeAt) this.retransmitRenewal(now);
  }

  private enter(state: 'renewing' | 'rebinding', now: number): void {
    this.current = state;
    this.newExchange(now);
    this.sendRenewal(now);
  }

  private retransmitRenewal(now: number): void {
    const lease = this.leased!;
    if (now >= lease.expiresAt) this.expire(now);
    else if (this.current !== 'rebinding' && now >= lease.rebindAt) this.enter('rebinding', now);
    else if (this.current === 'bound') this.enter('renewing', now);
    else this.sendRenewal(now);
  }

  private sendRenewal(now: number): void {
    const lease = this.leased!;
    const fields = { ciaddr: lease.address, parameterRequestList: PARAMETERS };
    if (this.current === 'renewing') this.sendToServer('request', lease, now, fields);
    else this.broadcast('request', fields, now, lease.address);
    const until = this.current === 'renewing' ? lease.rebindAt : lease.expiresAt;
    this.wakeAt = Math.min(until, now + Math.max((until - now) / 2, Timing.minRenewRetransmitMs));
  }

  private expire(now: number): void {
    const lease = this.leased!;
    this.leased = undefined;
    this.out.events.push({ kind: 'lost', lease, reason: 'expired' });
    this.discover(now);
  }

  private message(type: MessageTypeName, fields: Partial<DhcpMessage>, now: number): DhcpMessage {
    return {
      op: 'request',
      type,
      xid: this.exchange.xid,
      secs: Math.min(Math.floor((now - this.exchange.startedAt) / 1000), 0xffff),
      // Until it holds an address, replies are asked for by broadcast: they reach the host's socket even where the
      // NIC's unicast filter does not hold the endpoint's MAC yet.
      broadcast: fields.ciaddr === undefined,
      ciaddr: ANY_IPV4,
      yiaddr: ANY_IPV4,
      siaddr: ANY_IPV4,
      giaddr: ANY_IPV4,
      chaddr: this.options.mac,
      clientId: this.clientId,
      ...(this.options.hostname === undefined || type === 'decline' || type === 'release'
        ? {}
        : { hostname: this.options.hostname }),
      ...fields,
    };
  }

  private broadcast(type: MessageTypeName, fields: Partial<DhcpMessage>, now: number, sourceIp = ANY_IPV4): void {
    const message = this.message(type, fields, now);
    this.out.send.push({
      kind: 'dhcp',
      message,
      sourceIp,
      destinationIp: BROADCAST_IPV4,
      destinationMac: BROADCAST_MAC,
    });
    this.countSend(type, now);
  }

  private sendToServer(type: MessageTypeName, lease: Lease, now: number, fields: Partial<DhcpMessage> = {}): void {
    const message = this.message(
      type,
      { ciaddr: lease.address, serverId: type === 'release' ? lease.serverId : undefined, ...fields },
      now,
    );
    if (message.serverId === undefined) delete message.serverId; // RFC 2131 table 5: no server id when renewing
    this.out.send.push({
      kind: 'dhcp',
      message,
      sourceIp: lease.address,
      destinationIp: lease.serverId,
      destinationMac: lease.serverMac,
    });
    this.countSend(type, now);
  }

  private countSend(type: MessageTypeName, now: number): void {
    if (type === 'decline' || type === 'release') return;
    this.exchange.attempts++;
    this.exchange.lastSentAt = now;
    if (this.current === 'selecting' || this.current === 'requesting') this.wakeAt = this.backoff(now);
  }
}
