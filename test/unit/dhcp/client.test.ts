// The client state machine's timers and edge cases on a fake clock, with server answers built from a recorded
// dnsmasq ACK: retransmission backoff, T1 unicast, T2 broadcast, expiry, an ACK for another address, conflicts.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DhcpClient, type Outgoing, type Step, Timing } from '../../../src/dhcp/client';
import { parseFrame } from '../../../src/dhcp/frame';
import { type DhcpMessage, decodeMessage } from '../../../src/dhcp/message';
import { loadRecording } from '../../helpers/dhcp-replay';

const acquire = loadRecording('acquire');
const MAC = acquire.mac;
const SERVER_MAC = acquire.frames[1]!.hex.slice(12, 24).replace(/(..)(?!$)/g, '$1:');
const recorded = (i: number): DhcpMessage => {
  const parsed = parseFrame(Buffer.from(acquire.frames[i]!.hex, 'hex'));
  if (parsed.kind !== 'udp') throw new Error('not DHCP');
  return decodeMessage(parsed.datagram.payload);
};
const OFFER = recorded(1);
const ACK = recorded(3);
const T0 = 1_800_000_000_000;

const dhcp = (step: Step): Extract<Outgoing, { kind: 'dhcp' }>[] =>
  step.send.filter((p): p is Extract<Outgoing, { kind: 'dhcp' }> => p.kind === 'dhcp');
const lastXid = (step: Step) => dhcp(step).at(-1)!.message.xid;

/** A client bound to the recorded ACK's address at T0; returns it with the xid of its exchange. */
function boundClient(): { client: DhcpClient; now: number } {
  const client = new DhcpClient({ mac: MAC, random: () => 0.5 });
  let step = client.start(T0);
  step = client.receive({ ...OFFER, xid: lastXid(step) }, SERVER_MAC, T0);
  client.receive({ ...ACK, xid: lastXid(step) }, SERVER_MAC, T0);
  let now = T0;
  for (let i = 0; i < 5 && client.state === 'probing'; i++) client.timer((now += Timing.probeFinalWaitMs));
  expect(client.state).toBe('bound');
  return { client, now };
}

describe('DhcpClient timers', () => {
  it('retransmits DISCOVER after 1, 2, 4, 8, 8 s (RFC 2131 backoff, shortened)', () => {
    const client = new DhcpClient({ mac: MAC, random: () => 0.5 });
    let step = client.start(T0);
    const gaps: number[] = [];
    let now = T0;
    for (let i = 0; i < 5; i++) {
      expect(client.timer(step.wakeAt! - 1).send).toEqual([]); // not before it is due
      gaps.push(step.wakeAt! - now);
      now = step.wakeAt!;
      step = client.timer(now);
      expect(dhcp(step).map((p) => p.message.type)).toEqual(['discover']);
    }
    expect(gaps).toEqual([1000, 2000, 4000, 8000, 8000]);
  });

  it('starts over with a DISCOVER after four unanswered REQUESTs', () => {
    const client = new DhcpClient({ mac: MAC, random: () => 0.5 });
    let step = client.start(T0);
    step = client.receive({ ...OFFER, xid: lastXid(step) }, SERVER_MAC, T0);
    const types = [dhcp(step)[0]!.message.type];
    for (let i = 0; i < 4; i++) types.push(...dhcp((step = client.timer(step.wakeAt!))).map((p) => p.message.type));
    expect(types).toEqual(['request', 'request', 'request', 'request', 'discover']);
  });

  it('at T1 renews by unicast to the server, at T2 rebinds by broadcast, at expiry loses the lease and starts over', () => {
    const { client } = boundClient();
    const lease = client.lease!;
    expect(client.timer(lease.renewAt - 1).send).toEqual([]);
    const renew = dhcp(client.timer(lease.renewAt))[0]!;
    expect(renew).toMatchObject({ sourceIp: lease.address, destinationIp: '10.77.0.1', destinationMac: SERVER_MAC });
    expect(renew.message).toMatchObject({ type: 'request', ciaddr: lease.address, broadcast: false });
    expect(renew.message.serverId).toBeUndefined();
    expect(renew.message.requestedAddress).toBeUndefined();
    // Unanswered: again after half the time to T2 (22.5 s here), then at T2 itself.
    let step = client.timer(lease.renewAt);
    expect(client.state).toBe('renewing');
    const retry = client.timer(lease.renewAt + 22_500);
    expect(dhcp(retry)[0]!.destinationIp).toBe('10.77.0.1');
    step = client.timer(lease.rebindAt);
    expect(client.state).toBe('rebinding');
    expect(dhcp(step)[0]).toMatchObject({ destinationIp: '255.255.255.255', destinationMac: 'ff:ff:ff:ff:ff:ff' });
    expect(dhcp(step)[0]!.message).toMatchObject({ ciaddr: lease.address });
    // The rebinding retransmission waits at least 10 s; the lease ends at expiry.
    expect(step.wakeAt).toBe(lease.rebindAt + Timing.minRenewRetransmitMs);
    step = client.timer(lease.expiresAt);
    expect(step.events).toEqual([{ kind: 'lost', lease, reason: 'expired' }]);
    expect(dhcp(step)[0]!.message.type).toBe('discover');
  });

  it('a renewal ACK extends the lease from when the REQUEST was sent', () => {
    const { client } = boundClient();
    const first = client.lease!;
    const sentAt = first.renewAt;
    const step = client.timer(sentAt);
    const answered = client.receive({ ...ACK, xid: lastXid(step) }, SERVER_MAC, sentAt + 300);
    expect(answered.events.map((e) => e.kind)).toEqual(['renewed']);
    expect(client.lease!.obtainedAt).toBe(sentAt);
    expect(answered.wakeAt).toBe(sentAt + 60_000);
  });

  it('resume: a kept lease continues in the state its times say', () => {
    const { client: original } = boundClient();
    const lease = original.lease!;
    const at = (now: number) => {
      const client = new DhcpClient({ mac: MAC, random: () => 0.5 });
      const step = client.resume(lease, now);
      return [
        client.state,
        dhcp(step)
          .map((p) => p.destinationIp)
          .join(),
        step.events.map((e) => e.kind).join(),
      ];
    };
    expect(at(lease.renewAt - 1)).toEqual(['bound', '', '']);
    expect(at(lease.renewAt)).toEqual(['renewing', '10.77.0.1', '']);
    expect(at(lease.rebindAt)).toEqual(['rebinding', '255.255.255.255', '']);
    expect(at(lease.expiresAt)).toEqual(['selecting', '255.255.255.255', 'lost']);
  });
});

describe('DhcpClient edge cases', () => {
  it('ignores replies for another transaction, another MAC, or from another server while requesting', () => {
    const client = new DhcpClient({ mac: MAC, random: () => 0.5 });
    let step = client.start(T0);
    const xid = lastXid(step);
    expect(client.receive({ ...OFFER, xid: xid + 1 }, SERVER_MAC, T0).send).toEqual([]);
    expect(client.receive({ ...OFFER, xid, chaddr: '02:00:00:00:00:99' }, SERVER_MAC, T0).send).toEqual([]);
    expect(client.receive({ ...OFFER, xid, serverId: undefined }, SERVER_MAC, T0).send).toEqual([]);
    step = client.receive({ ...OFFER, xid }, SERVER_MAC, T0);
    expect(client.state).toBe('requesting');
    expect(client.receive({ ...ACK, xid, serverId: '10.77.0.9' }, SERVER_MAC, T0).send).toEqual([]);
    expect(client.state).toBe('requesting');
  });

  it('an ACK for another address at renewal is checked with ARP, then reported as changed', () => {
    const { client } = boundClient();
    const previous = client.lease!;
    const step = client.timer(previous.renewAt);
    const other = { ...ACK, xid: lastXid(step), yiaddr: '10.77.0.119' };
    const answered = client.receive(other, SERVER_MAC, previous.renewAt);
    expect(client.state).toBe('probing');
    expect(answered.send[0]).toMatchObject({ kind: 'arp', arp: { targetIp: '10.77.0.119', senderIp: '0.0.0.0' } });
    let now = previous.renewAt;
    const events = [];
    for (let i = 0; i < 5 && client.state === 'probing'; i++) events.push(...client.timer((now += 500)).events);
    expect(events).toEqual([{ kind: 'changed', previous, lease: client.lease }]);
    expect(client.lease!.address).toBe('10.77.0.119');
  });

  it('a conflict found for the new address of a renewal declines it and loses the old lease', () => {
    const { client } = boundClient();
    const previous = client.lease!;
    const step = client.timer(previous.renewAt);
    client.receive({ ...ACK, xid: lastXid(step), yiaddr: '10.77.0.119' }, SERVER_MAC, previous.renewAt);
    const arp = {
      operation: 'reply',
      senderMac: '02:00:00:00:00:77',
      senderIp: '10.77.0.119',
      targetMac: MAC,
      targetIp: '0.0.0.0',
    } as const;
    const conflict = client.arp(arp, previous.renewAt + 50);
    expect(conflict.events.map((e) => e.kind)).toEqual(['declined', 'lost']);
    expect(dhcp(conflict).map((p) => p.message.type)).toEqual(['decline', 'discover']);
  });

  it('another host probing the same address at the same time is a conflict (RFC 5227 §2.1.1); our own probes are not', () => {
    const client = new DhcpClient({ mac: MAC, random: () => 0.5 });
    let step = client.start(T0);
    step = client.receive({ ...OFFER, xid: lastXid(step) }, SERVER_MAC, T0);
    step = client.receive({ ...ACK, xid: lastXid(step) }, SERVER_MAC, T0);
    const ours = step.send[0]!;
    expect(ours.kind === 'arp' && client.arp(ours.arp, T0).events).toEqual([]);
    const probe = {
      operation: 'request',
      senderMac: '02:00:00:00:00:77',
      senderIp: '0.0.0.0',
      targetMac: '00:00:00:00:00:00',
      targetIp: ACK.yiaddr,
    } as const;
    expect(client.arp(probe, T0 + 10).events.map((e) => e.kind)).toEqual(['declined']);
  });

  it('the ARP check ends 0.4 s after the ACK however late its timers fire, and the last wait keeps half its length', () => {
    const client = new DhcpClient({ mac: MAC, random: () => 0.5 });
    let step = client.start(T0);
    step = client.receive({ ...OFFER, xid: lastXid(step) }, SERVER_MAC, T0);
    step = client.receive({ ...ACK, xid: lastXid(step) }, SERVER_MAC, T0);
    expect(client.checking?.address).toBe(ACK.yiaddr);
    expect(step.wakeAt).toBe(T0 + Timing.probeIntervalMs);
    step = client.timer(T0 + 130); // 30 ms late
    expect(step.wakeAt).toBe(T0 + 2 * Timing.probeIntervalMs);
    step = client.timer(T0 + 210);
    expect(step.wakeAt).toBe(T0 + 2 * Timing.probeIntervalMs + Timing.probeFinalWaitMs);
    step = client.timer(T0 + 400);
    expect(step.events.map((e) => e.kind)).toEqual(['bound']);
    expect(client.checking).toBeUndefined();
    // A loop stalled past the whole check still waits after its last probe.
    const late = new DhcpClient({ mac: MAC, random: () => 0.5 });
    step = late.start(T0);
    step = late.receive({ ...OFFER, xid: lastXid(step) }, SERVER_MAC, T0);
    late.receive({ ...ACK, xid: lastXid(step) }, SERVER_MAC, T0);
    late.timer(T0 + 900);
    expect(late.timer(T0 + 901).wakeAt).toBe(T0 + 901 + Timing.probeFinalWaitMs / 2);
  });

  it('release during the ARP check gives back the address the server already ACKed', () => {
    const client = new DhcpClient({ mac: MAC, random: () => 0.5 });
    let step = client.start(T0);
    step = client.receive({ ...OFFER, xid: lastXid(step) }, SERVER_MAC, T0);
    client.receive({ ...ACK, xid: lastXid(step) }, SERVER_MAC, T0);
    const released = client.release(T0 + 50);
    expect(dhcp(released)[0]).toMatchObject({ destinationIp: '10.77.0.1', destinationMac: SERVER_MAC });
    expect(dhcp(released)[0]!.message).toMatchObject({ type: 'release', ciaddr: ACK.yiaddr, serverId: '10.77.0.1' });
    expect(released.wakeAt).toBeUndefined();
    expect(client.timer(T0 + 10_000).send).toEqual([]);
  });
});

describe('DhcpClient under arbitrary input', () => {
  it('never throws and, until released, always has a wake-up (it cannot get stuck)', () => {
    const serverFrames = ['acquire', 'renew', 'nak', 'decline', 'renew-new-address'].flatMap((s) =>
      loadRecording(s)
        .frames.filter((f) => f.from === 'lan')
        .map((f) => parseFrame(Buffer.from(f.hex, 'hex'))),
    );
    const action = fc.oneof(
      fc.record({ kind: fc.constant('timer' as const), advance: fc.nat(200_000) }),
      fc.record({ kind: fc.constant('frame' as const), index: fc.nat(serverFrames.length - 1), sameXid: fc.boolean() }),
      fc.record({ kind: fc.constant('renew' as const) }),
      fc.record({ kind: fc.constant('release' as const) }),
    );
    fc.assert(
      fc.property(fc.array(action, { maxLength: 60 }), fc.boolean(), (actions, resumeFirst) => {
        const client = new DhcpClient({ mac: MAC, random: () => 0.5 });
        let now = T0;
        let step = resumeFirst ? client.resume(boundClient().client.lease!, now) : client.start(now);
        let xid = dhcp(step).at(-1)?.message.xid ?? 0;
        for (const a of actions) {
          if (a.kind === 'timer') step = client.timer((now = Math.max(now, step.wakeAt ?? now) + a.advance));
          else if (a.kind === 'renew') step = client.renew(now);
          else if (a.kind === 'release') step = client.release(now);
          else {
            const parsed = serverFrames[a.index]!;
            if (parsed.kind === 'arp') step = client.arp(parsed.arp, now);
            else {
              const message = decodeMessage(parsed.datagram.payload);
              step = client.receive(
                { ...message, chaddr: MAC, xid: a.sameXid ? xid : xid + 1 } as DhcpMessage,
                SERVER_MAC,
                now,
              );
            }
          }
          xid = dhcp(step).at(-1)?.message.xid ?? xid;
          if (client.state !== 'released') expect(step.wakeAt).toBeGreaterThanOrEqual(0);
          else expect(step.wakeAt).toBeUndefined();
        }
      }),
      { numRuns: 300 },
    );
  });
});
