// One endpoint's DHCPv6 client for one IA_NA (RFC 8415 §18), as a pure state machine like the DHCPv4 client: the
// caller feeds it received messages, the outcome of the duplicate address check and due timers with the current time,
// and carries out what it returns (messages to send to the servers' group, the next wake-up, lease events). The check
// itself (neighbour solicitations) is the caller's: it runs when the client reports `checking`.
import { parseIp } from '../ip/address';
import { type Lease6, leaseFromReply } from './lease';
import { DNS_SERVERS_OPTION, type Dhcp6Message, type Dhcp6Type, STATUS } from './message';

/** Timings, shortened from RFC 8415 §7.6's so that a container starts within seconds; see each value. */
export const Timing6 = {
  /** SOL_TIMEOUT and REQ_TIMEOUT are 1 s; SOL_MAX_RT 3600 s, REQ_MAX_RT 30 s. Here both double from 1 s to 8 s. */
  firstRetransmitMs: 1000,
  maxRetransmitMs: 8000,
  /** REQ_MAX_RC is 10; here 4 REQUESTs, then a new SOLICIT (as the DHCPv4 client starts over with a DISCOVER). */
  requestAttempts: 4,
  /** REN_TIMEOUT and REB_TIMEOUT are 10 s: renewals are retransmitted after half the time left, at least 10 s. */
  minRenewRetransmitMs: 10_000,
} as const;

export type Client6State = 'soliciting' | 'requesting' | 'checking' | 'bound' | 'renewing' | 'rebinding' | 'released';

export type Lease6Event =
  | { kind: 'bound'; lease: Lease6 }
  | { kind: 'renewed'; lease: Lease6 }
  /** The server granted an address: the caller checks it on the LAN and calls checked(). */
  | { kind: 'checking'; lease: Lease6 }
  | { kind: 'declined'; address: string; heldBy: string }
  /** noBinding/expired: the server no longer gives it; changed: a renewal gave another address. */
  | { kind: 'lost'; lease: Lease6; reason: 'noBinding' | 'expired' | 'changed' }
  | { kind: 'released'; lease: Lease6 };

export interface Step6 {
  send: Dhcp6Message[];
  events: Lease6Event[];
  /** When to call timer() next (epoch ms); undefined: nothing is due until a message arrives. */
  wakeAt: number | undefined;
}

export interface Client6Options {
  mac: string;
  duid: string;
  iaid: number;
  /** Uniform in [0, 1): transaction ids and retransmission jitter. */
  random: () => number;
}

interface Exchange {
  xid: number;
  startedAt: number;
  attempts: number;
  sentAt: number;
}

export class Dhcp6Client {
  private current: Client6State = 'soliciting';
  private exchange: Exchange = { xid: 0, startedAt: 0, attempts: 0, sentAt: 0 };
  private advert: Dhcp6Message | undefined;
  private candidate: Lease6 | undefined;
  private leased: Lease6 | undefined;
  private wakeAt: number | undefined;
  private out: Pick<Step6, 'send' | 'events'> = { send: [], events: [] };

  constructor(private readonly options: Client6Options) {}

  get state(): Client6State {
    return this.current;
  }

  get lease(): Lease6 | undefined {
    return this.leased;
  }

  /** The transaction id of the current exchange: replies carry it. */
  get xid(): number {
    return this.exchange.xid;
  }

  start(now: number): Step6 {
    this.solicit(now);
    return this.finish();
  }

  /** Takes over a lease kept from before a restart, in the state its times say now. */
  resume(lease: Lease6, now: number): Step6 {
    this.leased = lease;
    this.bind(now);
    return this.finish();
  }

  /** Gives the address back (RELEASE, once) and stops; an address still under check is released too. */
  release(now: number): Step6 {
    const held = this.leased ?? this.candidate;
    if (held && this.current !== 'released') {
      this.newExchange(now);
      this.send('release', now, held);
      this.out.events.push({ kind: 'released', lease: held });
    }
    this.current = 'released';
    this.leased = this.candidate = this.advert = undefined;
    this.wakeAt = undefined;
    return this.finish();
  }

  /** A server's message: ours when it carries our transaction id and client DUID. */
  receive(message: Dhcp6Message, now: number): Step6 {
    if (message.xid !== this.exchange.xid || message.clientId !== this.options.duid) return this.finish();
    if (this.current === 'soliciting' && message.type === 'advertise') this.takeAdvert(message, now);
    else if (message.type === 'reply') {
      if (this.current === 'requesting') this.granted(message, now);
      else if (this.current === 'renewing' || this.current === 'rebinding') this.renewed(message, now);
    }
    return this.finish();
  }

  /** The outcome of the duplicate address check of the address granted: `heldBy`, the MAC of a device holding it. */
  checked(now: number, heldBy?: string): Step6 {
    const candidate = this.candidate;
    if (this.current !== 'checking' || !candidate) return this.finish();
    this.candidate = undefined;
    if (heldBy === undefined) {
      this.leased = candidate;
      this.out.events.push({ kind: 'bound', lease: candidate });
      this.bind(now);
    } else {
      // RFC 8415 §18.2.8: DECLINE (once here, as the DHCPv4 client does), then start over.
      this.newExchange(now);
      this.send('decline', now, candidate);
      this.out.events.push({ kind: 'declined', address: candidate.address, heldBy });
      this.solicit(now);
    }
    return this.finish();
  }

  timer(now: number): Step6 {
    if (this.wakeAt === undefined || now < this.wakeAt) return this.finish();
    if (this.current === 'soliciting') this.resend('solicit', now);
    else if (this.current === 'requesting') {
      if (this.exchange.attempts >= Timing6.requestAttempts) this.solicit(now);
      else this.resend('request', now);
    } else if (this.current === 'bound' || this.current === 'renewing' || this.current === 'rebinding')
      this.retransmitRenewal(now);
    return this.finish();
  }

  private finish(): Step6 {
    const step = { ...this.out, wakeAt: this.wakeAt };
    this.out = { send: [], events: [] };
    return step;
  }

  private newExchange(now: number): void {
    this.exchange = { xid: Math.floor(this.options.random() * 0x100_0000), startedAt: now, attempts: 0, sentAt: now };
  }

  private solicit(now: number): void {
    this.current = 'soliciting';
    this.advert = this.candidate = undefined;
    this.newExchange(now);
    this.resend('solicit', now);
  }

  /** Sends (again) and waits RFC 8415 §15's doubling time, ±10 %. */
  private resend(type: 'solicit' | 'request', now: number): void {
    this.send(type, now);
    this.exchange.attempts++;
    const base = Math.min(Timing6.firstRetransmitMs * 2 ** (this.exchange.attempts - 1), Timing6.maxRetransmitMs);
    this.wakeAt = now + base * (0.9 + 0.2 * this.options.random());
  }

  /** The first usable ADVERTISE is taken (RFC 8415 §18.2.1 lets a client wait for more; a container start cannot). */
  private takeAdvert(advert: Dhcp6Message, now: number): void {
    if (!advert.serverId || advert.status === STATUS.noAddrsAvail) return;
    const ia = advert.ia;
    if (!ia || ia.iaid !== this.options.iaid || (ia.status ?? 0) !== STATUS.success) return;
    if (!ia.addresses.some((a) => a.validSeconds > 0 && (a.status ?? 0) === STATUS.success)) return;
    this.advert = advert;
    this.current = 'requesting';
    this.exchange = { ...this.exchange, xid: Math.floor(this.options.random() * 0x100_0000), attempts: 0 };
    this.resend('request', now);
  }

  private granted(reply: Dhcp6Message, now: number): void {
    const lease = leaseFromReply(reply, this.options, this.exchange.sentAt);
    if (typeof lease === 'string') {
      if (reply.ia?.status === STATUS.noAddrsAvail || reply.status === STATUS.noAddrsAvail) this.solicit(now);
      return; // otherwise retransmission goes on
    }
    this.candidate = lease;
    this.current = 'checking';
    this.wakeAt = undefined;
    this.out.events.push({ kind: 'checking', lease });
  }

  private renewed(reply: Dhcp6Message, now: number): void {
    const held = this.leased!;
    const lease = leaseFromReply(reply, this.options, this.exchange.sentAt);
    if (typeof lease === 'string') {
      if (reply.ia?.status === STATUS.noBinding) this.lose('noBinding', now);
      return; // another failure: retransmit until T2 or expiry
    }
    if (lease.address !== held.address) return this.lose('changed', now);
    this.leased = lease;
    this.out.events.push({ kind: 'renewed', lease });
    this.bind(now);
  }

  private lose(reason: 'noBinding' | 'expired' | 'changed', now: number): void {
    this.out.events.push({ kind: 'lost', lease: this.leased!, reason });
    this.leased = undefined;
    this.solicit(now);
  }

  private bind(now: number): void {
    this.current = 'bound';
    this.wakeAt = this.leased!.renewAt;
    if (now >= this.wakeAt) this.retransmitRenewal(now);
  }

  private retransmitRenewal(now: number): void {
    const lease = this.leased!;
    if (now >= lease.expiresAt) return this.lose('expired', now);
    if (this.current !== 'rebinding' && now >= lease.rebindAt) {
      this.current = 'rebinding';
      this.newExchange(now);
    } else if (this.current === 'bound') {
      this.current = 'renewing';
      this.newExchange(now);
    }
    this.send(this.current === 'renewing' ? 'renew' : 'rebind', now, lease);
    const until = this.current === 'renewing' ? lease.rebindAt : lease.expiresAt;
    this.wakeAt = Math.min(until, now + Math.max((until - now) / 2, Timing6.minRenewRetransmitMs));
  }

  /** A message of the current exchange; `about`: the lease whose address it names (REQUEST names the advertised one). */
  private send(type: Dhcp6Type, now: number, about?: Lease6): void {
    const address = about ? parseIp(about.address)!.value : this.advert?.ia?.addresses[0]?.address;
    const serverId = type === 'solicit' || type === 'rebind' ? undefined : (about?.serverId ?? this.advert?.serverId);
    this.exchange.sentAt = now;
    this.out.send.push({
      type,
      xid: this.exchange.xid,
      clientId: this.options.duid,
      ...(serverId !== undefined && { serverId }),
      ia: {
        iaid: this.options.iaid,
        t1: 0,
        t2: 0,
        addresses: address === undefined ? [] : [{ address, preferredSeconds: 0, validSeconds: 0 }],
      },
      elapsed: Math.floor((now - this.exchange.startedAt) / 10),
      ...(type !== 'release' && type !== 'decline' && { requested: [DNS_SERVERS_OPTION] }),
    });
  }
}
