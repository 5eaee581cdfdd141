// Replays a recorded exchange (test/fixtures/dhcp/) against a DhcpClient on a fake clock: the LAN's frames are fed
// in, and every frame the client sent then must come out of it again, in order, field for field.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { DhcpClient, LeaseEvent, Step } from '../../src/dhcp/client';
import { frameFor } from '../../src/dhcp/clients';
import { parseFrame } from '../../src/dhcp/frame';
import { decodeMessage } from '../../src/dhcp/message';
import type { Recording } from './dhcp-harness';

export function loadRecording(scenario: string): Recording {
  return JSON.parse(
    readFileSync(path.join(__dirname, '..', 'fixtures', 'dhcp', `${scenario}.json`), 'utf8'),
  ) as Recording;
}

/** What must match between a recorded frame and a replayed one (the xid and secs are the run's own). */
export function describeFrame(frame: Buffer): string {
  const parsed = parseFrame(frame);
  if (parsed.kind === 'arp') {
    const a = parsed.arp;
    return `arp ${a.operation} ${a.senderMac} ${a.senderIp} -> ${a.targetMac} ${a.targetIp}`;
  }
  const d = parsed.datagram;
  const m = decodeMessage(d.payload);
  const fields = [m.type, `${d.sourceIp}->${d.destinationIp}`, d.destinationMac, `ciaddr=${m.ciaddr}`];
  fields.push(
    `requested=${m.requestedAddress}`,
    `server=${m.serverId}`,
    `broadcast=${m.broadcast}`,
    `client=${m.clientId}`,
  );
  return fields.join(' ');
}

/** The recorded LAN frame with its transaction id replaced by the client's current one. */
function withXid(frame: Buffer, xid: number): Buffer {
  const copy = Buffer.from(frame);
  const parsed = parseFrame(copy);
  if (parsed.kind === 'udp') copy.writeUInt32BE(xid, 14 + 20 + 8 + 4);
  return copy;
}

export class Replay {
  now = 1_800_000_000_000;
  readonly events: LeaseEvent[] = [];
  private pending: Buffer[] = [];
  private wakeAt: number | undefined;
  private xid = 0;

  constructor(
    readonly client: DhcpClient,
    private readonly mac: string,
  ) {}

  take(step: Step): void {
    for (const packet of step.send) {
      const frame = frameFor(this.mac, packet);
      if (packet.kind === 'dhcp') this.xid = packet.message.xid;
      this.pending.push(frame);
    }
    this.wakeAt = step.wakeAt;
    this.events.push(...step.events);
  }

  /** Advances the fake clock to the next wake-up and runs the client's timer. */
  tick(): void {
    if (this.wakeAt === undefined) throw new Error('the client has nothing to wait for');
    this.now = Math.max(this.now, this.wakeAt);
    this.take(this.client.timer(this.now));
  }

  /** Plays the recording: returns the replayed client frames described, beside the recorded ones. */
  play(recording: Recording): { recorded: string[]; replayed: string[] } {
    const recorded: string[] = [];
    const replayed: string[] = [];
    for (const { from, hex } of recording.frames) {
      const frame = Buffer.from(hex, 'hex');
      if (from === 'client') {
        recorded.push(describeFrame(frame));
        for (let i = 0; i < 10 && this.pending.length === 0; i++) this.tick();
        const next = this.pending.shift();
        replayed.push(next ? describeFrame(next) : 'nothing');
        continue;
      }
      this.now += 1;
      const parsed = parseFrame(withXid(frame, this.xid));
      if (parsed.kind === 'arp') this.take(this.client.arp(parsed.arp, this.now));
      else this.take(this.client.receive(decodeMessage(parsed.datagram.payload), parsed.datagram.sourceMac, this.now));
    }
    // The ARP check ends in silence after the last probe: the recording has no frame for it.
    for (let i = 0; i < 10 && this.client.state === 'probing' && this.pending.length === 0; i++) this.tick();
    replayed.push(...this.pending.map(describeFrame));
    this.pending = [];
    return { recorded, replayed };
  }
}
