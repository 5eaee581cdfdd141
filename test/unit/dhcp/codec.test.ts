// The frame and message codec: real dnsmasq frames decode to what the server logged, what we encode decodes
// back unchanged with valid checksums, and malformed or truncated input is refused with an error, never a crash.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildArpFrame,
  buildUdpFrame,
  internetChecksum,
  MalformedFrame,
  parseFrame,
  type UdpDatagram,
} from '../../../src/dhcp/frame';
import { type DhcpMessage, decodeMessage, encodeMessage, MalformedMessage } from '../../../src/dhcp/message';
import { loadRecording } from '../../helpers/dhcp-replay';

const scenarios = ['acquire', 'renew', 'rebind', 'renew-new-address', 'nak', 'decline', 'release', 'udhcpc'];
const allFrames = scenarios.flatMap((s) => loadRecording(s).frames.map((f) => Buffer.from(f.hex, 'hex')));

function dhcpOf(frame: Buffer): { datagram: UdpDatagram; message: DhcpMessage } {
  const parsed = parseFrame(frame);
  if (parsed.kind !== 'udp') throw new Error('not a UDP frame');
  return { datagram: parsed.datagram, message: decodeMessage(parsed.datagram.payload) };
}

/** Refused input must be one of the codec's own errors. */
function parseOrRefuse(frame: Buffer): 'parsed' | 'refused' {
  try {
    const parsed = parseFrame(frame);
    if (parsed.kind === 'udp') decodeMessage(parsed.datagram.payload);
    return 'parsed';
  } catch (error) {
    if (error instanceof MalformedFrame || error instanceof MalformedMessage) return 'refused';
    throw error;
  }
}

const ACK = Buffer.from(loadRecording('acquire').frames[3]!.hex, 'hex');

describe('decoding dnsmasq frames', () => {
  it('an ACK holds the lease, T1, T2, mask, router and the classless route dnsmasq was given', () => {
    const { datagram, message } = dhcpOf(ACK);
    expect(datagram).toMatchObject({ sourceIp: '10.77.0.1', sourcePort: 67, destinationPort: 68 });
    expect(message).toMatchObject({
      op: 'reply',
      type: 'ack',
      serverId: '10.77.0.1',
      leaseSeconds: 120,
      renewalSeconds: 60,
      rebindingSeconds: 105,
      subnetMask: '255.255.255.0',
      routers: ['10.77.0.1'],
      classlessRoutes: [{ destination: '10.99.0.0/16', gateway: '10.77.0.1' }],
    });
  });

  it('a NAK and an ARP reply from a squatter', () => {
    const nak = loadRecording('nak').frames.map((f) => Buffer.from(f.hex, 'hex'))[1]!;
    expect(dhcpOf(nak).message).toMatchObject({ type: 'nak', serverId: '10.77.0.1', yiaddr: '0.0.0.0' });
    const reply = loadRecording('decline').frames.find(
      (f) => f.from === 'lan' && parseFrame(Buffer.from(f.hex, 'hex')).kind === 'arp',
    )!;
    const parsed = parseFrame(Buffer.from(reply.hex, 'hex'));
    expect(parsed.kind === 'arp' && parsed.arp).toMatchObject({
      operation: 'reply',
      senderIp: '10.77.0.116',
      targetIp: '0.0.0.0',
    });
  });

  it("another client's frames: busybox udhcpc's DISCOVER and REQUEST, and dnsmasq's unicast answers to its MAC", () => {
    const udhcpc = loadRecording('udhcpc').frames.map((f) => dhcpOf(Buffer.from(f.hex, 'hex')));
    expect(udhcpc.map(({ message }) => message.type)).toEqual(['discover', 'offer', 'request', 'ack']);
    const [discover, offer, request] = udhcpc;
    expect(discover!.message).toMatchObject({ op: 'request', clientId: '01:02:7d:00:00:00:b1', broadcast: false });
    expect(discover!.message.parameterRequestList).toEqual([1, 3, 6, 12, 15, 28, 42]);
    expect(offer!.datagram).toMatchObject({
      destinationIp: offer!.message.yiaddr,
      destinationMac: '02:7d:00:00:00:b1',
    });
    expect(request!.message).toMatchObject({ requestedAddress: offer!.message.yiaddr, serverId: '10.77.0.1' });
  });

  it('every recorded frame parses', () => {
    for (const frame of allFrames) expect(parseOrRefuse(frame)).toBe('parsed');
  });
});

describe('encoding', () => {
  it('re-encoding a decoded dnsmasq message decodes to the same message', () => {
    for (const frame of allFrames) {
      const parsed = parseFrame(frame);
      if (parsed.kind !== 'udp') continue;
      const message = decodeMessage(parsed.datagram.payload);
      expect(decodeMessage(encodeMessage(message))).toEqual(message);
    }
  });

  it('a UDP frame has a valid IPv4 header checksum and UDP checksum (pseudo header included)', () => {
    const payload = encodeMessage(dhcpOf(ACK).message);
    const frame = buildUdpFrame({ ...dhcpOf(ACK).datagram, payload });
    expect(internetChecksum(frame.subarray(14, 34))).toBe(0);
    const udp = frame.subarray(34);
    const pseudo = Buffer.concat([frame.subarray(26, 34), Buffer.from([0, 17]), udp.subarray(4, 6)]);
    expect(internetChecksum(Buffer.concat([pseudo, udp]))).toBe(0);
    expect(dhcpOf(frame).datagram.payload).toEqual(payload);
  });

  it("dnsmasq's frames, as seen on a veth, carry a not yet computed UDP checksum (offload): they are accepted", () => {
    const udp = ACK.subarray(34);
    const pseudo = Buffer.concat([ACK.subarray(26, 34), Buffer.from([0, 17]), udp.subarray(4, 6)]);
    expect(internetChecksum(Buffer.concat([pseudo, udp]))).not.toBe(0);
    expect(dhcpOf(ACK).message.type).toBe('ack');
  });

  it('messages are padded to the 300-byte BOOTP minimum', () => {
    const { message } = dhcpOf(ACK);
    expect(encodeMessage({ ...message, classlessRoutes: undefined, routers: undefined }).length).toBe(300);
  });

  it('arbitrary field values survive encode and decode', () => {
    const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
    const mac = fc
      .uint8Array({ minLength: 6, maxLength: 6 })
      .map((b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':'));
    const route = fc.tuple(ipv4, fc.integer({ min: 0, max: 32 }), ipv4).map(([network, width, gateway]) => {
      const masked = network.split('.').map((o, i) => {
        const bits = Math.max(0, Math.min(8, width - 8 * i));
        return Number(o) & (0xff << (8 - bits)) & 0xff;
      });
      return { destination: `${masked.join('.')}/${width}`, gateway };
    });
    const message = fc.record({
      op: fc.constantFrom('request' as const, 'reply' as const),
      type: fc.constantFrom('discover' as const, 'offer' as const, 'request' as const, 'ack' as const, 'nak' as const),
      xid: fc.nat(0xffffffff),
      secs: fc.nat(0xffff),
      broadcast: fc.boolean(),
      ciaddr: ipv4,
      yiaddr: ipv4,
      siaddr: ipv4,
      giaddr: ipv4,
      chaddr: mac,
      serverId: ipv4,
      leaseSeconds: fc.nat(0xffffffff),
      routers: fc.array(ipv4, { minLength: 1, maxLength: 4 }),
      classlessRoutes: fc.array(route, { minLength: 1, maxLength: 4 }),
      // Any identifier of 2 bytes or more: type 1 + MAC, RFC 4361's type 255 + IAID + DUID, ...
      clientId: fc
        .uint8Array({ minLength: 2, maxLength: 64 })
        .map((bytes) => [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':')),
      hostname: fc.stringMatching(/^[a-z0-9-]{1,40}$/),
    });
    fc.assert(
      fc.property(message, (m) => {
        expect(decodeMessage(encodeMessage(m))).toEqual(m);
      }),
    );
  });
});

describe('malformed input is refused, never a crash', () => {
  it('every truncation of every recorded frame', () => {
    let refused = 0;
    for (const frame of allFrames) {
      for (let length = 0; length < frame.length; length++) {
        if (parseOrRefuse(frame.subarray(0, length)) === 'refused') refused++;
      }
    }
    expect(refused).toBeGreaterThan(1000);
  });

  it('random bytes, and recorded frames with random bytes overwritten', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => void parseOrRefuse(Buffer.from(bytes))));
    const mutation = fc.tuple(
      fc.constantFrom(...allFrames),
      fc.array(fc.tuple(fc.nat(599), fc.nat(255)), { minLength: 1, maxLength: 8 }),
    );
    fc.assert(
      fc.property(mutation, ([original, edits]) => {
        const frame = Buffer.from(original);
        for (const [at, value] of edits) frame[at % frame.length] = value;
        parseOrRefuse(frame);
      }),
      { numRuns: 3000 },
    );
  });

  it('named defects: option overload, no end option, no message type, a bad IPv4 checksum, a bad ARP header', () => {
    const payload = dhcpOf(ACK).datagram.payload;
    const options = payload.subarray(240);
    const withOptions = (bytes: number[]) => Buffer.concat([payload.subarray(0, 240), Buffer.from(bytes)]);
    expect(() => decodeMessage(withOptions([53, 1, 5, 52, 1, 3, 255]))).toThrow(/overload/);
    expect(() => decodeMessage(withOptions([53, 1, 5]))).toThrow(/no end option/);
    expect(() => decodeMessage(withOptions([255]))).toThrow(/message type/);
    expect(() => decodeMessage(withOptions([53, 1, 5, 54, 3, 1, 2, 3, 255]))).toThrow(/option 54/);
    expect(() => decodeMessage(withOptions([53, 1, 5, 121, 5, 33, 1, 2, 3, 4, 255]))).toThrow(/121/);
    expect(options.length).toBeGreaterThan(0);
    const badChecksum = Buffer.from(ACK);
    badChecksum[24]! ^= 0xff;
    expect(() => parseFrame(badChecksum)).toThrow(/checksum/);
    const arp = buildArpFrame({
      operation: 'reply',
      senderMac: '02:00:00:00:00:01',
      senderIp: '10.0.0.1',
      targetMac: '02:00:00:00:00:02',
      targetIp: '10.0.0.2',
    });
    arp[18] = 8; // hardware address length
    expect(() => parseFrame(arp)).toThrow(MalformedFrame);
  });
});
