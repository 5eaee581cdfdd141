// The address probes on fake timers with a link that keeps what is sent: RFC 5227 ARP probes and DAD-style neighbour
// solicitations, well-formed; silence for the whole probe means free, an answer from another MAC means held by it;
// the host's own frames and our own MAC never count; one probe per address; a send that fails rejects; the wait is
// due against the check's start, so late timers do not lengthen it.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseIp } from '../../../src/ip/address';
import {
  buildArpFrame,
  internetChecksum,
  macBytes,
  parseArp,
  ETHERTYPE_IPV6,
  ethernetHeader,
} from '../../../src/kernel/link-frames';
import { ipv6Bytes, parseNeighbourMessage, solicitedNode } from '../../../src/kernel/nd-frames';
import { AddressProbes, ProbeTiming } from '../../../src/probe/address-probes';

const OURS = '02:00:00:00:00:01';
const DEVICE = '02:5a:00:00:00:0a';
const IF = 7;
const v4 = (text: string) => parseIp(text)!.value;
const v6 = (text: string) => parseIp(text)!.value;
const WHOLE = (ProbeTiming.probes - 1) * ProbeTiming.intervalMs + ProbeTiming.finalWaitMs;

/** A neighbour advertisement for `target` from `mac`, with its target link-layer address option. */
function advertisement(target: bigint, mac: string, option = true): Buffer {
  const icmp = Buffer.alloc(option ? 32 : 24);
  icmp[0] = 136;
  ipv6Bytes(target).copy(icmp, 8);
  if (option) {
    icmp[24] = 2;
    icmp[25] = 1;
    macBytes(mac).copy(icmp, 26);
  }
  const ip = Buffer.alloc(40);
  ip.writeUInt32BE(0x6000_0000, 0);
  ip.writeUInt16BE(icmp.length, 4);
  ip[6] = 58;
  ip[7] = 255;
  ipv6Bytes(target).copy(ip, 8);
  ipv6Bytes((0xff02n << 112n) | 1n).copy(ip, 24);
  return Buffer.concat([ethernetHeader('33:33:00:00:00:01', mac, ETHERTYPE_IPV6), ip, icmp]);
}

describe('AddressProbes', () => {
  let sent: Buffer[];
  let groups: string[];
  let failing: boolean;
  let probes: AddressProbes;

  beforeEach(() => {
    vi.useFakeTimers();
    sent = [];
    groups = [];
    failing = false;
    probes = new AddressProbes({
      send: (_ifindex, frame) => {
        if (failing) throw new Error('sending a frame: Network is down');
        sent.push(frame);
      },
      addMulticast: (ifindex, mac) => void groups.push(`+${ifindex} ${mac}`),
      dropMulticast: (ifindex, mac) => void groups.push(`-${ifindex} ${mac}`),
    });
  });
  afterEach(() => {
    probes.close();
    vi.useRealTimers();
  });

  const target = (address: string, ipv6 = false) => ({
    ifindex: IF,
    sourceMac: OURS,
    v6: ipv6,
    address: ipv6 ? v6(address) : v4(address),
  });

  it('sends 3 RFC 5227 probes 100 ms apart and answers free after the last wait', async () => {
    const outcome = probes.probe(target('10.0.0.5'));
    let settled: unknown;
    void outcome.then((answer) => (settled = answer));
    await vi.advanceTimersByTimeAsync(WHOLE - 1);
    expect(settled).toBeUndefined();
    expect(sent.map((f) => parseArp(f))).toEqual(
      Array(3).fill({
        operation: 'request',
        senderMac: OURS,
        senderIp: '0.0.0.0',
        targetMac: '00:00:00:00:00:00',
        targetIp: '10.0.0.5',
      }),
    );
    expect(sent.every((f) => f.subarray(0, 6).equals(Buffer.alloc(6, 0xff)))).toBe(true);
    await vi.advanceTimersByTimeAsync(1);
    expect(settled).toEqual({ held: false });
  });

  it('ends the whole wait after its start by the clock however late its timers fire; the last wait keeps half', async () => {
    const start = Date.now();
    const outcome = probes.probe(target('fd00::5', true));
    let settled: unknown;
    void outcome.then((answer) => (settled = answer));
    vi.setSystemTime(start + 30); // the clock moves on while no timer runs: the first fires 30 ms late
    await vi.advanceTimersByTimeAsync(WHOLE - 30 - 1);
    expect(sent.length).toBe(3);
    expect(settled).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(settled).toEqual({ held: false });
    expect(Date.now() - start).toBe(WHOLE);

    // A last probe that went out very late is still followed by half the last wait.
    const late = probes.probe(target('fd00::6', true));
    let after: unknown;
    void late.then((answer) => (after = answer));
    vi.setSystemTime(Date.now() + WHOLE); // the first timer fires after the whole wait has passed: the rest go at once
    await vi.advanceTimersByTimeAsync(ProbeTiming.intervalMs + 1); // a timer of 0 ms fires after 1, as node's do
    expect(sent.length).toBe(6);
    await vi.advanceTimersByTimeAsync(ProbeTiming.finalWaitMs / 2 - 1);
    expect(after).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(after).toEqual({ held: false });
  });

  it('answers held by the MAC of whoever sends ARP from the address; ignores our own MAC, outgoing frames, others', async () => {
    const outcome = probes.probe(target('10.0.0.5'));
    const reply = (senderMac: string, senderIp: string) =>
      buildArpFrame({ operation: 'reply', senderMac, senderIp, targetMac: OURS, targetIp: '0.0.0.0' });
    probes.receive({ ifindex: IF, outgoing: false, frame: reply(OURS, '10.0.0.5') });
    probes.receive({ ifindex: IF, outgoing: true, frame: reply(DEVICE, '10.0.0.5') });
    probes.receive({ ifindex: IF + 1, outgoing: false, frame: reply(DEVICE, '10.0.0.5') });
    probes.receive({ ifindex: IF, outgoing: false, frame: reply(DEVICE, '10.0.0.6') });
    probes.receive({ ifindex: IF, outgoing: false, frame: Buffer.from('not a frame at all') });
    // Another host's own probe of the address claims nothing: two hosts checking one candidate are not a conflict.
    const otherProbe = buildArpFrame({
      operation: 'request',
      senderMac: DEVICE,
      senderIp: '0.0.0.0',
      targetMac: '00:00:00:00:00:00',
      targetIp: '10.0.0.5',
    });
    probes.receive({ ifindex: IF, outgoing: false, frame: otherProbe });
    await vi.advanceTimersByTimeAsync(150);
    probes.receive({ ifindex: IF, outgoing: false, frame: reply(DEVICE, '10.0.0.5') });
    await expect(outcome).resolves.toEqual({ held: true, mac: DEVICE });
    expect(sent.length).toBe(2); // stopped probing once answered
  });

  it('probes one address once however many ask, and again once done', async () => {
    const [a, b] = [probes.probe(target('10.0.0.5')), probes.probe(target('10.0.0.5'))];
    expect(a).toBe(b);
    await vi.advanceTimersByTimeAsync(WHOLE);
    expect(sent.length).toBe(3);
    probes.probe(target('10.0.0.5')).catch(() => undefined); // stopped by close()
    expect(sent.length).toBe(4);
  });

  it('rejects when a probe cannot be sent: nothing is known of the address', async () => {
    failing = true;
    await expect(probes.probe(target('10.0.0.5'))).rejects.toThrow(
      /cannot send a probe on interface 7: sending a frame: Network is down/,
    );
    failing = false;
    const later = probes.probe(target('10.0.0.5'));
    failing = true;
    const rejected = expect(later).rejects.toThrow(/Network is down/);
    await vi.advanceTimersByTimeAsync(ProbeTiming.intervalMs);
    await rejected;
  });

  it('IPv6: DAD-style solicitations to the solicited-node group, all-nodes joined meanwhile; an advertisement holds it', async () => {
    const address = v6('fd00:78::3');
    const outcome = probes.probe(target('fd00:78::3', true));
    expect(groups).toEqual([`+${IF} 33:33:00:00:00:01`]);
    const frame = sent[0]!;
    const { group, mac } = solicitedNode(address);
    expect(mac).toBe('33:33:ff:00:00:03');
    expect(frame.subarray(0, 6)).toEqual(macBytes(mac));
    expect(frame.subarray(14 + 24, 14 + 40)).toEqual(ipv6Bytes(group));
    expect(frame.subarray(14 + 8, 14 + 24)).toEqual(Buffer.alloc(16)); // from the unspecified address
    const pseudo = Buffer.concat([frame.subarray(22, 54), Buffer.from([0, 0, 0, 24, 0, 0, 0, 58])]);
    expect(internetChecksum(Buffer.concat([pseudo, frame.subarray(54)]))).toBe(0); // a valid ICMPv6 checksum
    expect(parseNeighbourMessage(frame)).toMatchObject({ type: 'solicitation', target: address, source: 0n });
    probes.receive({ ifindex: IF, outgoing: false, frame: advertisement(v6('fd00:78::4'), DEVICE) });
    probes.receive({ ifindex: IF, outgoing: false, frame: advertisement(address, DEVICE) });
    await expect(outcome).resolves.toEqual({ held: true, mac: DEVICE });
    expect(groups).toEqual([`+${IF} 33:33:00:00:00:01`, `-${IF} 33:33:00:00:00:01`]);
    // Without the link-layer option, the frame's source MAC names the holder.
    const again = probes.probe(target('fd00:78::3', true));
    probes.receive({ ifindex: IF, outgoing: false, frame: advertisement(address, DEVICE, false) });
    await expect(again).resolves.toEqual({ held: true, mac: DEVICE });
  });
});
