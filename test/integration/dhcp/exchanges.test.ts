// The DHCP client state machine against Debian's dnsmasq, frame by frame over the real packet socket: each
// exchange the unit tests replay from test/fixtures/dhcp/ (TSMV_DHCP_RECORD=1 rewrites them from this run).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFrame } from '../../../src/dhcp/frame';
import { decodeMessage } from '../../../src/dhcp/message';
import type { Lease } from '../../../src/dhcp/lease';
import { PacketSocket } from '../../../src/kernel/packet-socket';
import { CLASSLESS_ROUTE, DhcpLab, inNs, SUBNET } from '../../helpers/dhcp-lab';
import { ClientHarness, type Recording } from '../../helpers/dhcp-harness';
import { assertPrivateNetns } from '../../helpers/net';

const MAC1 = '02:7d:00:00:00:01';
const MAC2 = '02:7d:00:00:00:02';
const MAC3 = '02:7d:00:00:00:03';

const dhcpOnly = (recording: Recording) => dhcpTypes(recording).filter((type) => type !== 'arp');

function dhcpTypes(recording: Recording): string[] {
  return recording.frames.flatMap(({ hex }) => {
    const parsed = parseFrame(Buffer.from(hex, 'hex'));
    return parsed.kind === 'udp' ? [decodeMessage(parsed.datagram.payload).type] : ['arp'];
  });
}

describe('DHCP exchanges with dnsmasq', () => {
  let lab: DhcpLab;
  let socket: PacketSocket;
  const harnesses: ClientHarness[] = [];
  let lease: Lease;
  let containerNs: string;

  beforeAll(async () => {
    assertPrivateNetns();
    lab = await DhcpLab.create();
    await lab.startServer();
    containerNs = lab.container('c1', MAC1);
    socket = new PacketSocket(
      (received) => harnesses.forEach((h) => h.onFrame(received)),
      (error) => {
        throw error;
      },
    );
  });
  afterAll(async () => {
    socket?.close();
    await lab?.close();
  });

  it('DISCOVER, OFFER, REQUEST, ACK, then three ARP probes: bound with the router and classless routes', async () => {
    const h = new ClientHarness(socket, lab.parentIndex, MAC1);
    harnesses.push(h);
    h.carry(h.client.start(h.now()));
    const bound = await h.until('bound');
    lease = (bound as { lease: Lease }).lease;
    expect(lease).toMatchObject({ mac: MAC1, prefixLength: 24, serverId: SUBNET.router, routers: [SUBNET.router] });
    expect(lease.classlessRoutes).toEqual([CLASSLESS_ROUTE]);
    expect(lease.leaseSeconds).toBe(120);
    expect(lab.serverLeases()).toContainEqual(expect.objectContaining({ mac: MAC1, address: lease.address }));
    expect(dhcpTypes(h.record('acquire'))).toEqual(['discover', 'offer', 'request', 'ack', 'arp', 'arp', 'arp']);
  });

  it('renews by unicast to the server; the server extends the lease', async () => {
    const h = harnesses[0]!;
    // The container answers ARP for its address, so the server can unicast the ACK to it.
    inNs(containerNs, 'ip', 'addr', 'add', `${lease.address}/24`, 'dev', `${lab.prefix}mc1`);
    const acksBefore = lab.serverLog().split('DHCPACK').length;
    h.carry(h.client.renew(h.now()));
    const renewed = (await h.until('renewed')) as { lease: Lease };
    expect(renewed.lease.address).toBe(lease.address);
    const recording = h.record('renew');
    const request = parseFrame(Buffer.from(recording.frames[0]!.hex, 'hex'));
    expect(request.kind === 'udp' && request.datagram.destinationIp).toBe(SUBNET.router);
    expect(dhcpOnly(recording)).toEqual(['request', 'ack']);
    expect(lab.serverLog().split('DHCPACK').length).toBe(acksBefore + 1);
  });

  it('rebinds by broadcast at T2 when the renewal went unanswered', async () => {
    const h = harnesses[0]!;
    h.skewMs = h.client.lease!.rebindAt - Date.now();
    const renewed = (await h.until('renewed')) as { lease: Lease };
    expect(renewed.lease.address).toBe(lease.address);
    const recording = h.record('rebind');
    const request = parseFrame(Buffer.from(recording.frames[0]!.hex, 'hex'));
    expect(request.kind === 'udp' && request.datagram.destinationIp).toBe('255.255.255.255');
    expect(dhcpOnly(recording)).toEqual(['request', 'ack']);
    h.skewMs = 0;
  });

  // dnsmasq answers a renewal for an address it no longer gives this MAC with a NAK (never an ACK for another
  // address): the client loses the lease and the next DISCOVER gets the new one.
  it('a renewal after the server moved the reservation: NAK, then the new address is bound', async () => {
    const h = harnesses[0]!;
    const reserved = lease.address === '10.77.0.111' ? '10.77.0.112' : '10.77.0.111';
    await lab.reserve(MAC1, reserved);
    h.carry(h.client.renew(h.now()));
    expect(await h.until('lost')).toMatchObject({ reason: 'nak', lease: { address: lease.address } });
    const bound = (await h.until('bound')) as { lease: Lease };
    expect(bound.lease.address).toBe(reserved);
    lease = bound.lease;
    expect(lab.serverLeases()).toContainEqual(expect.objectContaining({ mac: MAC1, address: reserved }));
    const types = dhcpTypes(h.record('renew-new-address'));
    expect(types).toEqual(['request', 'nak', 'discover', 'offer', 'request', 'ack', 'arp', 'arp', 'arp']);
  });

  it('a NAK (renewing an address the server does not give) loses the lease and starts over', async () => {
    const h = new ClientHarness(socket, lab.parentIndex, MAC3);
    harnesses.push(h);
    const now = h.now();
    const stale = { ...lease, mac: MAC3, address: '10.77.0.50', obtainedAt: now - 60_000, renewAt: now + 60_000 };
    h.carry(h.client.resume({ ...stale, rebindAt: now + 100_000, expiresAt: now + 120_000 }, now));
    h.carry(h.client.renew(h.now()));
    const lost = await h.until('lost');
    expect(lost).toMatchObject({ reason: 'nak', lease: { address: '10.77.0.50' } });
    const bound = (await h.until('bound')) as { lease: Lease };
    expect(bound.lease.address).not.toBe('10.77.0.50');
    expect(dhcpOnly(h.record('nak'))).toEqual(['request', 'nak', 'discover', 'offer', 'request', 'ack']);
  });

  it('an offered address a squatter answers ARP for is declined, and another one is bound', async () => {
    const squatted = '10.77.0.116';
    lab.squatter(squatted);
    await lab.reserve(MAC2, squatted);
    const h = new ClientHarness(socket, lab.parentIndex, MAC2);
    harnesses.push(h);
    h.carry(h.client.start(h.now()));
    const declined = await h.until('declined');
    expect(declined).toMatchObject({ address: squatted });
    const bound = (await h.until('bound')) as { lease: Lease };
    expect(bound.lease.address).not.toBe(squatted);
    expect(lab.serverLog()).toMatch(new RegExp(`DHCPDECLINE\\(br0\\) ${squatted.replace(/\./g, '\\.')} ${MAC2}`));
    const types = dhcpTypes(h.record('decline'));
    expect(types.slice(0, 6)).toEqual(['discover', 'offer', 'request', 'ack', 'arp', 'arp']);
    expect(types).toContain('decline');
  });

  it('release removes the lease from the server', async () => {
    const held = harnesses.flatMap((h) => (h.client.lease ? [h.client.lease] : []));
    for (const h of harnesses) h.carry(h.client.release(h.now()));
    const released = harnesses[0]!.record('release');
    expect(dhcpOnly(released)).toEqual(['release']);
    expect(await lab.released(held)).toEqual({ unlogged: [], kept: [] });
    expect(lab.serverLeases()).toEqual([]);
  });
});
