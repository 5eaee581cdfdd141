// Probes of single addresses on a LAN, from the host side of a parent: IPv4 by ARP (RFC 5227 probes: "who has
// this address?", claiming nothing), IPv6 by the neighbour solicitation of a duplicate address check (RFC 4862 §5.4).
// A device that holds the address answers, and its MAC is the verdict; silence for the whole probe means free. Probes
// of one address on one interface share their frames and outcome.
import { formatIp } from '../ip/address';
import {
  ETHERTYPE_ARP,
  ETHERTYPE_IPV6,
  MalformedFrame,
  arpProbe,
  buildArpFrame,
  ethertypeOf,
  parseArp,
} from '../kernel/link-frames';
import { ALL_NODES_MAC, buildDadSolicitation, parseNeighbourMessage } from '../kernel/nd-frames';
import type { ReceivedFrame } from '../kernel/packet-socket';
import type { TapLink } from '../kernel/packet-tap';

/**
 * RFC 5227 §2.1.1 asks for 3 probes 1-2 s apart and 2 s more (4-9 s); the DHCP client's check shortens that to
 * 100 ms apart and 200 ms after the last (0.4 s), since a host on the LAN answers ARP in milliseconds. Probes here
 * use the same figures: one timing to reason about, and most of them run ahead of need (see src/ipam/probe-ahead.ts).
 */
export const ProbeTiming = { probes: 3, intervalMs: 100, finalWaitMs: 200 } as const;

export interface ProbeTarget {
  ifindex: number;
  /** The MAC the probes are sent from (the parent's own): answers to an ARP probe come back to it. */
  sourceMac: string;
  v6: boolean;
  address: bigint;
}

/** What a probe found: nobody answered, or the device with `mac` did. */
export type Answer = { held: false } | { held: true; mac: string };

export type ProbeLink = Pick<TapLink, 'send' | 'addMulticast' | 'dropMulticast'>;

interface Running {
  target: ProbeTarget;
  /** The address as an ARP packet writes it (IPv4 only). */
  text: string;
  sent: number;
  /** When the first probe went out (Date.now()): the later ones are due against it. */
  startedAt: number;
  timer: NodeJS.Timeout | undefined;
  done: (answer: Answer | Error) => void;
  outcome: Promise<Answer>;
}

const key = (ifindex: number, v6: boolean, address: bigint) => `${ifindex}/${v6 ? 6 : 4}/${address}`;

export class AddressProbes {
  private readonly running = new Map<string, Running>();
  /** IPv6 probes under way per interface: its all-nodes membership is held while there are any. */
  private readonly listening = new Map<number, number>();

  constructor(private readonly link: ProbeLink) {}

  /** Probes `target`; rejects when the frames cannot be sent (a parent down or gone): the caller must not assume free. */
  probe(target: ProbeTarget): Promise<Answer> {
    const id = key(target.ifindex, target.v6, target.address);
    const existing = this.running.get(id);
    if (existing) return existing.outcome;
    let done!: (answer: Answer | Error) => void;
    const outcome = new Promise<Answer>((resolve, reject) => {
      done = (answer) => (answer instanceof Error ? reject(answer) : resolve(answer));
    });
    const text = target.v6 ? '' : formatIp(false, target.address);
    const run: Running = { target, text, sent: 0, startedAt: Date.now(), timer: undefined, done, outcome };
    run.done = (answer) => {
      if (this.running.get(id) !== run) return;
      this.running.delete(id);
      clearTimeout(run.timer);
      if (target.v6) this.stopListening(target.ifindex);
      done(answer);
    };
    this.running.set(id, run);
    if (target.v6) {
      try {
        this.listen(target.ifindex);
      } catch (error) {
        this.running.delete(id);
        return Promise.reject(error as Error);
      }
    }
    this.step(run);
    return outcome;
  }

  /** A frame from the packet socket: an answer for a running probe settles it. Other frames are ignored. */
  receive({ ifindex, frame, outgoing }: ReceivedFrame): void {
    // Frames sent by this host (ours, and its containers' through the parent) never answer a probe.
    if (outgoing || this.running.size === 0) return;
    try {
      const type = ethertypeOf(frame);
      if (type === ETHERTYPE_ARP) {
        const arp = parseArp(frame);
        // Whoever sends an ARP packet from the address holds it: a reply to the probe, or its own request.
        const run = this.running.get(key(ifindex, false, ipv4Value(arp.senderIp)));
        if (run && arp.senderMac !== run.target.sourceMac) run.done({ held: true, mac: arp.senderMac });
      } else if (type === ETHERTYPE_IPV6) {
        const message = parseNeighbourMessage(frame);
        if (message.type !== 'advertisement') return; // another host's own check of the address claims nothing yet
        const run = this.running.get(key(ifindex, true, message.target));
        const mac = message.targetMac ?? message.sourceMac;
        if (run && mac !== run.target.sourceMac) run.done({ held: true, mac });
      }
    } catch (error) {
      if (!(error instanceof MalformedFrame)) throw error;
    }
  }

  /** Stops every probe: they reject (nothing is known of their addresses). */
  close(): void {
    for (const run of [...this.running.values()]) run.done(new Error('the address probes were stopped'));
  }

  private step(run: Running): void {
    if (run.sent === ProbeTiming.probes) {
      run.done({ held: false });
      return;
    }
    const { ifindex, sourceMac, v6, address } = run.target;
    try {
      const frame = v6 ? buildDadSolicitation(sourceMac, address) : buildArpFrame(arpProbe(sourceMac, run.text));
      this.link.send(ifindex, frame);
    } catch (error) {
      run.done(new Error(`cannot send a probe on interface ${ifindex}: ${(error as Error).message}`));
      return;
    }
    run.sent++;
    // Due against the first probe, so that late timers do not add up over the check (a loaded host's timers fire
    // late); the last wait keeps at least half its length after the last probe.
    const last = run.sent === ProbeTiming.probes;
    const offset = last
      ? (ProbeTiming.probes - 1) * ProbeTiming.intervalMs + ProbeTiming.finalWaitMs
      : run.sent * ProbeTiming.intervalMs;
    const now = Date.now();
    const wait = Math.max(run.startedAt + offset - now, last ? ProbeTiming.finalWaitMs / 2 : 0);
    run.timer = setTimeout(() => this.step(run), wait);
  }

  private listen(ifindex: number): void {
    const count = this.listening.get(ifindex) ?? 0;
    if (count === 0) this.link.addMulticast(ifindex, ALL_NODES_MAC);
    this.listening.set(ifindex, count + 1);
  }

  private stopListening(ifindex: number): void {
    const count = (this.listening.get(ifindex) ?? 1) - 1;
    if (count > 0) {
      this.listening.set(ifindex, count);
      return;
    }
    this.listening.delete(ifindex);
    try {
      this.link.dropMulticast(ifindex, ALL_NODES_MAC);
    } catch {
      // The interface is gone, and its memberships with it.
    }
  }
}

function ipv4Value(text: string): bigint {
  return text.split('.').reduce((value, octet) => (value << 8n) | BigInt(Number(octet)), 0n);
}
