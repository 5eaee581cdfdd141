// DhcpClients on fake timers with a link that keeps what is sent: the recorded server answers bind a lease; the
// timer follows the client's wake-ups (also past setTimeout's 24.8-day limit); a timeout rejects and goes quiet.
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DhcpClients, type LeaseChange, NoDhcpAnswer, SharedLease } from '../../../src/dhcp/clients';
import { buildArpFrame, buildUdpFrame, parseFrame, type UdpDatagram } from '../../../src/dhcp/frame';
import { decodeMessage, type DhcpMessage, encodeMessage } from '../../../src/dhcp/message';
import { loadRecording } from '../../helpers/dhcp-replay';

const acquire = loadRecording('acquire');
const MAC = acquire.mac;
const PARENT = 7;
const lanFrames = acquire.frames.filter((f) => f.from === 'lan').map((f) => Buffer.from(f.hex, 'hex'));

function withXid(frame: Buffer, xid: number, leaseSeconds?: number): Buffer {
  const copy = Buffer.from(frame);
  copy.writeUInt32BE(xid, 46);
  if (leaseSeconds !== undefined) {
    // Options start at 14 + 20 + 8 + 240; rewrite 51, 58 and 59 in place.
    for (let i = 282; copy[i] !== 255; i += 2 + copy[i + 1]!) {
      if (copy[i] === 51) copy.writeUInt32BE(leaseSeconds, i + 2);
      if (copy[i] === 58 || copy[i] === 59)
        copy.writeUInt32BE(Math.floor(leaseSeconds * (copy[i] === 58 ? 0.5 : 0.875)), i + 2);
    }
  }
  return copy;
}

/** A recorded server answer, re-encoded with some of its message's fields changed. */
function answer(frame: Buffer, change: Partial<DhcpMessage>): Buffer {
  const { datagram } = parseFrame(frame) as { datagram: UdpDatagram };
  return buildUdpFrame({ ...datagram, payload: encodeMessage({ ...decodeMessage(datagram.payload), ...change }) });
}

/** The ACK turned into a NAK: option 53 (the message type) set to 6. */
function asNak(ack: Buffer): Buffer {
  const copy = Buffer.from(ack);
  for (let i = 282; copy[i] !== 255; i += 2 + copy[i + 1]!) if (copy[i] === 53) copy[i + 2] = 6;
  return copy;
}

describe('DhcpClients', () => {
  let sent: Buffer[];
  let memberships: string[];
  let clients: DhcpClients;
  const lastXid = () => {
    const parsed = parseFrame(sent.filter((f) => parseFrame(f).kind === 'udp').at(-1)!);
    return parsed.kind === 'udp' ? decodeMessage(parsed.datagram.payload).xid : 0;
  };
  const types = () =>
    sent.map((f) => {
      const parsed = parseFrame(f);
      return parsed.kind === 'udp' ? decodeMessage(parsed.datagram.payload).type : 'arp';
    });

  beforeEach(() => {
    vi.useFakeTimers({ now: 1_800_000_000_000 });
    sent = [];
    memberships = [];
    const link = {
      send: (_i: number, f: Buffer) => void sent.push(f),
      addUnicast: (i: number, mac: string) => void memberships.push(`+${i} ${mac}`),
      dropUnicast: (i: number, mac: string) => void memberships.push(`-${i} ${mac}`),
    };
    clients = new DhcpClients({ link, log: pino({ level: 'silent' }) });
  });
  afterEach(() => {
    clients.stop();
    vi.useRealTimers();
  });

  async function bind(leaseSeconds?: number) {
    const lease = clients.acquire(PARENT, MAC, 10_000);
    clients.receive({ ifindex: PARENT, outgoing: false, frame: withXid(lanFrames[0]!, lastXid(), leaseSeconds) });
    clients.receive({ ifindex: PARENT, outgoing: false, frame: withXid(lanFrames[1]!, lastXid(), leaseSeconds) });
    await vi.advanceTimersByTimeAsync(1000);
    return lease;
  }

  it('binds from the recorded answers; frames on another interface are not ours', async () => {
    const pending = clients.acquire(PARENT, MAC, 10_000);
    clients.receive({ ifindex: PARENT + 1, outgoing: false, frame: withXid(lanFrames[0]!, lastXid()) });
    expect(types()).toEqual(['discover']);
    clients.receive({ ifindex: PARENT, outgoing: false, frame: withXid(lanFrames[0]!, lastXid()) });
    clients.receive({ ifindex: PARENT, outgoing: false, frame: withXid(lanFrames[1]!, lastXid()) });
    await vi.advanceTimersByTimeAsync(1000);
    expect((await pending).address).toBe(
      decodeMessage((parseFrame(lanFrames[1]!) as { datagram: { payload: Buffer } }).datagram.payload).yiaddr,
    );
    expect(types()).toEqual(['discover', 'request', 'arp', 'arp', 'arp']);
  });

  it('binds without the unicast membership where the kernel has none (ENOPROTOOPT); another error fails the acquire', async () => {
    const refuse = (code: string) => () => {
      throw Object.assign(new Error(`adding a unicast MAC to an interface: ${code}`), { code });
    };
    const lost: Buffer[] = [];
    const link = {
      send: (_i: number, f: Buffer) => void lost.push(f),
      addUnicast: refuse('ENODEV'),
      dropUnicast: () => {},
    };
    const other = new DhcpClients({ link, log: pino({ level: 'silent' }) });
    await expect(other.acquire(PARENT, MAC, 10_000)).rejects.toThrow(/on interface 7: .*ENODEV/);
    expect(lost).toEqual([]); // nothing sent for it
    other.stop();
    const warnings: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line).msg) });
    clients.stop();
    clients = new DhcpClients({
      link: { ...link, send: (_i, f) => void sent.push(f), addUnicast: refuse('ENOPROTOOPT') },
      log,
    });
    expect((await bind()).address).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(warnings).toEqual([
      "could not add the endpoint's MAC to the parent's unicast filter: replies to it arrive only if the parent passes them",
    ]);
  });

  it('tells the caller of the granted lease as its ARP check begins, once, before it binds', async () => {
    const checked: string[] = [];
    const pending = clients.acquire(PARENT, MAC, 10_000, undefined, (lease) => checked.push(lease.address));
    clients.receive({ ifindex: PARENT, outgoing: false, frame: withXid(lanFrames[0]!, lastXid()) });
    expect(checked).toEqual([]);
    clients.receive({ ifindex: PARENT, outgoing: false, frame: withXid(lanFrames[1]!, lastXid()) });
    expect(checked.length).toBe(1);
    await vi.advanceTimersByTimeAsync(399);
    expect(clients.lease(MAC)).toBeUndefined(); // still checking
    await vi.advanceTimersByTimeAsync(1);
    expect((await pending).address).toBe(checked[0]);
    expect(checked.length).toBe(1);
  });

  it('renews at T1 even while ARP traffic on the LAN keeps arriving', async () => {
    const lease = await bind();
    const chatter = buildArpFrame({
      operation: 'request',
      senderMac: '02:00:00:00:00:09',
      senderIp: '10.77.0.9',
      targetMac: '00:00:00:00:00:00',
      targetIp: '10.77.0.1',
    });
    sent = [];
    for (let t = 0; t < 60; t++) {
      clients.receive({ ifindex: PARENT, outgoing: false, frame: chatter });
      await vi.advanceTimersByTimeAsync(1000);
    }
    expect(Date.now()).toBeGreaterThanOrEqual(lease.renewAt);
    expect(types()).toEqual(['request']);
  });

  it('a wait longer than setTimeout allows is re-armed, not fired early', async () => {
    const lease = await bind(0xfffffff0); // ~136 years: T1 is ~68 years away
    sent = [];
    await vi.advanceTimersByTimeAsync(2 ** 31 + 1000);
    expect(sent).toEqual([]);
    expect(clients.lease(MAC)).toEqual(lease);
    expect(vi.getTimerCount()).toBe(1);
  });

  it('no answer: rejects with NoDhcpAnswer at the timeout, then sends nothing more', async () => {
    const pending = clients.acquire(PARENT, MAC, 3000);
    const failed = expect(pending).rejects.toThrow(NoDhcpAnswer);
    await vi.advanceTimersByTimeAsync(3000);
    await failed;
    const count = sent.length;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(sent.length).toBe(count);
    expect(types().length).toBeGreaterThanOrEqual(2); // retransmitted after 1 s and 2 s more
    expect(new Set(types())).toEqual(new Set(['discover']));
    expect(vi.getTimerCount()).toBe(0);
    expect(clients.counts.failures).toEqual({ nak: 0, timeout: 1, declined: 0, changed: 0 });
  });

  it('counts renewals granted and leases lost, and knows which phase each client is in', async () => {
    expect(clients.phases()).toEqual({ acquiring: 0, bound: 0, renewing: 0, rebinding: 0 });
    const pending = clients.acquire(PARENT, MAC, 10_000);
    expect(clients.phases()).toMatchObject({ acquiring: 1 });
    clients.receive({ ifindex: PARENT, outgoing: false, frame: withXid(lanFrames[0]!, lastXid()) });
    clients.receive({ ifindex: PARENT, outgoing: false, frame: withXid(lanFrames[1]!, lastXid()) });
    await vi.advanceTimersByTimeAsync(1000);
    const lease = await pending;
    expect(clients.phases()).toEqual({ acquiring: 0, bound: 1, renewing: 0, rebinding: 0 });
    await vi.advanceTimersByTimeAsync(lease.renewAt - Date.now());
    expect(clients.phases()).toMatchObject({ renewing: 1 });
    clients.receive({ ifindex: PARENT, outgoing: false, frame: withXid(lanFrames[1]!, lastXid()) });
    expect(clients.counts).toEqual({ renewals: 1, failures: { nak: 0, timeout: 0, declined: 0, changed: 0 } });
    // The next renewal is refused: the lease is lost to a NAK, and the client starts over.
    await vi.advanceTimersByTimeAsync(clients.lease(MAC)!.renewAt - Date.now());
    clients.receive({ ifindex: PARENT, outgoing: false, frame: asNak(withXid(lanFrames[1]!, lastXid())) });
    expect(clients.counts).toEqual({ renewals: 1, failures: { nak: 1, timeout: 0, declined: 0, changed: 0 } });
    expect(clients.phases()).toMatchObject({ acquiring: 1 });
  });

  it('release while acquiring rejects the acquire; a second acquire for one MAC is refused', async () => {
    const pending = clients.acquire(PARENT, MAC, 10_000);
    await expect(clients.acquire(PARENT, MAC, 10_000)).rejects.toThrow(/already running/);
    clients.release(MAC);
    await expect(pending).rejects.toThrow(/released before it got a lease/);
    expect(memberships).toEqual([`+${PARENT} ${MAC}`, `-${PARENT} ${MAC}`]);
  });

  describe('clients that share one MAC (the endpoints of an ipvlan network), told apart by client identifier', () => {
    const ids = ['ff:00:00:00:01:00:04:aa', 'ff:00:00:00:02:00:04:bb'];
    const sentBy = (clientId: string) =>
      sent
        .map((f) => parseFrame(f))
        .flatMap((p) => (p.kind === 'udp' ? [decodeMessage(p.datagram.payload)] : []))
        .filter((m) => m.clientId === clientId);
    const offer = lanFrames[0]!;
    const ack = lanFrames[1]!;

    it('each asks with its own identifier, by broadcast, and binds its own answer (echoed identifier or not)', async () => {
      const first = clients.acquire(PARENT, { mac: MAC, clientId: ids[0]! }, 10_000);
      const xidFirst = lastXid();
      const second = clients.acquire(PARENT, { mac: MAC, clientId: ids[1]! }, 10_000);
      const xidSecond = lastXid();
      expect(sentBy(ids[0]!)).toMatchObject([{ type: 'discover', chaddr: MAC, broadcast: true }]);
      expect(sentBy(ids[1]!)).toMatchObject([{ type: 'discover', chaddr: MAC, broadcast: true }]);
      // dnsmasq 2.90 echoes no identifier: the transaction id says whose an answer is.
      const receive = (frame: Buffer) => clients.receive({ ifindex: PARENT, outgoing: false, frame });
      receive(answer(offer, { xid: xidSecond, yiaddr: '10.77.0.102' }));
      receive(answer(offer, { xid: xidFirst, yiaddr: '10.77.0.101' }));
      expect(sentBy(ids[0]!).at(-1)).toMatchObject({
        type: 'request',
        requestedAddress: '10.77.0.101',
        broadcast: true,
      });
      expect(sentBy(ids[1]!).at(-1)).toMatchObject({ type: 'request', requestedAddress: '10.77.0.102' });
      // A server that echoes it (RFC 6842): the identifier says, whatever the transaction id.
      receive(answer(ack, { xid: xidFirst, yiaddr: '10.77.0.102', clientId: ids[1]! })); // not the first's
      receive(answer(ack, { xid: xidSecond, yiaddr: '10.77.0.102', clientId: ids[1]! }));
      receive(answer(ack, { xid: xidFirst, yiaddr: '10.77.0.101' }));
      await vi.advanceTimersByTimeAsync(1000);
      expect(await first).toMatchObject({ address: '10.77.0.101', mac: MAC, clientId: ids[0] });
      expect(await second).toMatchObject({ address: '10.77.0.102', mac: MAC, clientId: ids[1] });
      expect(clients.lease(ids[0]!)?.address).toBe('10.77.0.101');
      clients.release(ids[1]!);
      expect(sentBy(ids[1]!).at(-1)).toMatchObject({ type: 'release', ciaddr: '10.77.0.102' });
      expect(clients.lease(ids[0]!)?.address).toBe('10.77.0.101');
    });

    it("a server that keys on chaddr alone gives the second the first one's address: refused, with no release", async () => {
      const changes: LeaseChange[] = [];
      clients.on('lease', (change) => changes.push(change));
      const receive = (frame: Buffer) => clients.receive({ ifindex: PARENT, outgoing: false, frame });
      const first = clients.acquire(PARENT, { mac: MAC, clientId: ids[0]! }, 10_000);
      receive(answer(offer, { xid: lastXid() }));
      receive(answer(ack, { xid: lastXid() }));
      await vi.advanceTimersByTimeAsync(1000);
      const held = await first;
      const second = clients.acquire(PARENT, { mac: MAC, clientId: ids[1]! }, 10_000);
      const refused = expect(second).rejects.toThrow(SharedLease);
      receive(answer(offer, { xid: lastXid() }));
      receive(answer(ack, { xid: lastXid() }));
      await vi.advanceTimersByTimeAsync(1000);
      await refused;
      await expect(second).rejects.toThrow(
        `the DHCP server ${held.serverId} leased ${held.address}, which ${ids[0]} holds already`,
      );
      expect(sentBy(ids[1]!).map((m) => m.type)).not.toContain('release');
      expect(clients.lease(ids[1]!)).toBeUndefined();
      expect(clients.lease(ids[0]!)).toEqual(held);
      expect(changes.map((c) => [c.clientId, c.event.kind])).toEqual([[ids[0], 'bound']]);
      // The second may ask again (it was forgotten), and the first renews as before.
      expect(memberships.filter((m) => m.startsWith('-'))).toEqual([`-${PARENT} ${MAC}`]);
    });
  });
});
