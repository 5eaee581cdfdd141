// Drives one DhcpClient over the real packet socket with a clock the test can move forward, and keeps every frame
// sent and received on the parent (what test/fixtures/dhcp/ holds).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { DhcpClient, type LeaseEvent, type Step } from '../../src/dhcp/client';
import { frameFor } from '../../src/dhcp/clients';
import { parseFrame } from '../../src/dhcp/frame';
import { decodeMessage, SERVER_PORT } from '../../src/dhcp/message';
import type { PacketSocket, ReceivedFrame } from '../../src/kernel/packet-socket';
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ethertypeOf } from '../../src/kernel/link-frames';
import { sleep } from './dhcp-lab';

export interface RecordedFrame {
  from: 'client' | 'lan';
  hex: string;
}

export interface Recording {
  scenario: string;
  mac: string;
  frames: RecordedFrame[];
}

export class ClientHarness {
  readonly client: DhcpClient;
  readonly events: LeaseEvent[] = [];
  frames: RecordedFrame[] = [];
  skewMs = 0;
  private wakeAt: number | undefined;

  constructor(
    private readonly socket: PacketSocket,
    private readonly ifindex: number,
    readonly mac: string,
  ) {
    this.client = new DhcpClient({ mac, random: Math.random });
  }

  now(): number {
    return Date.now() + this.skewMs;
  }

  carry(step: Step): void {
    for (const packet of step.send) {
      const frame = frameFor(this.mac, packet);
      this.frames.push({ from: 'client', hex: frame.toString('hex') });
      this.socket.send(this.ifindex, frame);
    }
    this.wakeAt = step.wakeAt;
    this.events.push(...step.events);
  }

  /** A frame from the socket: the LAN's frames on our parent go to the client (our own are recorded when sent). */
  onFrame({ ifindex, frame, outgoing }: ReceivedFrame): void {
    if (ifindex !== this.ifindex || outgoing || !isIpv4OrArp(frame)) return;
    const parsed = parseFrame(frame);
    if (parsed.kind === 'arp') {
      if (parsed.arp.senderMac === this.mac) return;
      // Keep what concerns this client: answers to it, and questions about its address.
      if (parsed.arp.targetMac === this.mac || parsed.arp.targetIp === this.client.lease?.address)
        this.frames.push({ from: 'lan', hex: frame.toString('hex') });
      this.carry(this.client.arp(parsed.arp, this.now()));
    } else if (parsed.datagram.sourcePort === SERVER_PORT) {
      const message = decodeMessage(parsed.datagram.payload);
      if (message.chaddr !== this.mac) return;
      this.frames.push({ from: 'lan', hex: frame.toString('hex') });
      this.carry(this.client.receive(message, parsed.datagram.sourceMac, this.now()));
    }
  }

  /** Runs the client's timers until an event of `kind` arrives (or throws after timeoutMs of real time). */
  async until(kind: LeaseEvent['kind'], timeoutMs = 10_000): Promise<LeaseEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find((e) => e.kind === kind);
      if (found) {
        this.events.splice(this.events.indexOf(found), 1);
        return found;
      }
      if (Date.now() > deadline)
        throw new Error(`no ${kind} event within ${timeoutMs} ms; events: ${JSON.stringify(this.events)}`);
      if (this.wakeAt !== undefined && this.now() >= this.wakeAt) this.carry(this.client.timer(this.now()));
      await sleep(10);
    }
  }

  /** Writes the frames so far as a fixture when TSMV_DHCP_RECORD is set, and starts a new recording. */
  record(scenario: string): Recording {
    const recording = { scenario, mac: this.mac, frames: this.frames };
    this.frames = [];
    if (process.env.TSMV_DHCP_RECORD) {
      const file = path.join(__dirname, '..', 'fixtures', 'dhcp', `${scenario}.json`);
      writeFileSync(file, JSON.stringify(recording, null, 2) + '\n');
    }
    return recording;
  }
}

/** The packet socket passes IPv6 neighbour discovery too (address probes): DHCP's tests look at IPv4 and ARP only. */
export function isIpv4OrArp(frame: Buffer): boolean {
  const ethertype = ethertypeOf(frame);
  return ethertype === ETHERTYPE_IPV4 || ethertype === ETHERTYPE_ARP;
}
