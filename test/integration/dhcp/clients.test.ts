// DhcpClients, the service the driver will use, over the host's one packet socket against Debian's dnsmasq:
// many leases at once, an explicit renewal the server sees, a squatter's address declined, release, no server.
import { execFileSync } from 'node:child_process';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DhcpClients, type LeaseChange, NoDhcpAnswer, openDhcpClients } from '../../../src/dhcp/clients';
import { parseFrame } from '../../../src/dhcp/frame';
import type { Lease } from '../../../src/dhcp/lease';
import { decodeMessage } from '../../../src/dhcp/message';
import { PacketSocket } from '../../../src/kernel/packet-socket';
import { DhcpLab, inNs, SUBNET } from '../../helpers/dhcp-lab';
import { isIpv4OrArp } from '../../helpers/dhcp-harness';
import { assertPrivateNetns, ip } from '../../helpers/net';

const mac = (i: number) => `02:7e:00:00:01:${i.toString(16).padStart(2, '0')}`;
const PARALLEL = 20;
const fdb = (link: string) => execFileSync('bridge', ['fdb', 'show', 'dev', link], { encoding: 'utf8' });

describe('DhcpClients with dnsmasq', () => {
  let lab: DhcpLab;
  let socket: PacketSocket;
  let clients: DhcpClients;
  const changes: LeaseChange[] = [];
  /** Per MAC: when its first DISCOVER went out and when its ACK came in (the socket sees both). */
  const firstDiscover = new Map<string, number>();
  const ackAt = new Map<string, number>();
  let lonely: string;
  let acquired: Lease[] = [];
  /** Time spent in the service handling received frames (its share of a lease; the rest is the server and wire). */
  let ownMs = 0;
  let closeReopened = () => undefined as void;

  beforeAll(async () => {
    assertPrivateNetns();
    lab = await DhcpLab.create();
    await lab.startServer();
    // The socket does not see its own frames: DISCOVERs are timed as they are sent, ACKs as they arrive.
    const note = (frame: Buffer) => {
      if (!isIpv4OrArp(frame)) return;
      const parsed = parseFrame(frame);
      if (parsed.kind !== 'udp') return;
      const message = decodeMessage(parsed.datagram.payload);
      const at = performance.now();
      if (message.type === 'discover' && !firstDiscover.has(message.chaddr)) firstDiscover.set(message.chaddr, at);
      if (message.type === 'ack' && !ackAt.has(message.chaddr)) ackAt.set(message.chaddr, at);
    };
    socket = new PacketSocket(
      (received) => {
        note(received.frame);
        const before = performance.now();
        clients.receive(received);
        ownMs += performance.now() - before;
      },
      (error) => {
        throw error;
      },
    );
    const link = {
      send: (ifindex: number, frame: Buffer) => {
        note(frame);
        socket.send(ifindex, frame);
      },
      addUnicast: (ifindex: number, mac: string) => socket.addUnicast(ifindex, mac),
      dropUnicast: (ifindex: number, mac: string) => socket.dropUnicast(ifindex, mac),
    };
    clients = new DhcpClients({ link, log: pino({ level: 'silent' }) });
    clients.on('lease', (change) => changes.push(change));
    lonely = `${lab.prefix}n`;
    ip('link', 'add', lonely, 'type', 'veth', 'peer', 'name', `${lonely}p`);
    ip('link', 'set', lonely, 'up');
    ip('link', 'set', `${lonely}p`, 'up');
  });
  afterAll(async () => {
    clients?.stop();
    closeReopened();
    socket?.close();
    try {
      ip('link', 'del', lonely);
    } catch {
      // not created
    }
    await lab?.close();
  });

  it('one lease alone: bound, DISCOVER to ACK timed', async () => {
    const started = performance.now();
    const lease = await clients.acquire(lab.parentIndex, mac(70), 10_000);
    // While its client runs, the kernel lets the endpoint's MAC in on the parent (its unicast filter).
    expect(fdb(lab.parent)).toContain(mac(70));
    const elapsed = performance.now() - started;
    expect(lab.serverLeases()).toContainEqual(expect.objectContaining({ mac: mac(70), address: lease.address }));
    const discoverToAck = ackAt.get(mac(70))! - firstDiscover.get(mac(70))!;
    console.log(`1 lease: DISCOVER→ACK ${discoverToAck.toFixed(1)} ms, bound after ${elapsed.toFixed(0)} ms`);
    clients.release(mac(70));
    expect(fdb(lab.parent)).not.toContain(mac(70));
  });

  it(`${PARALLEL} leases at once: distinct addresses from the range, each on the server for its MAC`, async () => {
    const started = performance.now();
    ownMs = 0;
    const leases = await Promise.all(
      Array.from({ length: PARALLEL }, (_, i) => clients.acquire(lab.parentIndex, mac(i), 10_000)),
    );
    const elapsed = performance.now() - started;
    expect(new Set(leases.map((l) => l.address)).size).toBe(PARALLEL);
    acquired = leases;
    const onServer = lab.serverLeases();
    for (const lease of leases) {
      expect(lease.routers).toEqual([SUBNET.router]);
      expect(onServer).toContainEqual(expect.objectContaining({ mac: lease.mac, address: lease.address }));
    }
    const discoverToAck = leases.map((l) => ackAt.get(l.mac)! - firstDiscover.get(l.mac)!).sort((a, b) => a - b);
    console.log(
      `${PARALLEL} leases in ${elapsed.toFixed(0)} ms (ARP check included); DISCOVER→ACK median ` +
        `${discoverToAck[PARALLEL >> 1]!.toFixed(1)} ms, max ${discoverToAck.at(-1)!.toFixed(1)} ms; ` +
        `the service's own handling ${((ownMs / PARALLEL) * 1000).toFixed(0)} µs per lease`,
    );
  });

  it('an explicit renewal goes to the server by unicast and the server extends the lease', async () => {
    const lease = clients.lease(mac(0))!;
    // The container answers ARP for its address: the server unicasts the ACK to it.
    const ns = lab.container('r', lease.mac);
    inNs(ns, 'ip', 'addr', 'add', `${lease.address}/24`, 'dev', `${lab.prefix}mr`);
    const acks = () => lab.serverLog().split(`DHCPACK(br0) ${lease.address} ${lease.mac}`).length;
    const before = acks();
    const renewed = new Promise<Lease>((resolve) =>
      clients.on('lease', (c) => c.mac === lease.mac && c.event.kind === 'renewed' && resolve(c.event.lease)),
    );
    clients.renew(lease.mac);
    const after = await renewed;
    expect(after.address).toBe(lease.address);
    expect(after.obtainedAt).toBeGreaterThan(lease.obtainedAt);
    expect(acks()).toBe(before + 1);
  });

  it('after a restart (a new service, the lease kept): renewals resume and the server sees them', async () => {
    const kept = clients.lease(mac(0))!;
    clients.stop();
    const reopened = openDhcpClients(pino({ level: 'silent' }));
    closeReopened = reopened.close;
    clients = reopened.clients;
    clients.on('lease', (change) => changes.push(change));
    clients.resume(lab.parentIndex, kept);
    const acks = () => lab.serverLog().split(`DHCPACK(br0) ${kept.address} ${kept.mac}`).length;
    const before = acks();
    const renewed = new Promise<Lease>((resolve) =>
      clients.on('lease', (c) => c.mac === kept.mac && c.event.kind === 'renewed' && resolve(c.event.lease)),
    );
    clients.renew(kept.mac);
    expect((await renewed).address).toBe(kept.address);
    expect(acks()).toBe(before + 1);
    // The other leases are resumed too, so that release below finds them.
    for (const lease of acquired.slice(1)) clients.resume(lab.parentIndex, lease);
  });

  it("a squatter's address is declined (the server logs the DECLINE) and another one is leased", async () => {
    const squatted = '10.77.0.99';
    await lab.reserve(mac(50), squatted);
    lab.squatter(squatted);
    const lease = await clients.acquire(lab.parentIndex, mac(50), 10_000);
    expect(lease.address).not.toBe(squatted);
    expect(changes).toContainEqual(
      expect.objectContaining({
        mac: mac(50),
        event: expect.objectContaining({ kind: 'declined', address: squatted }),
      }),
    );
    expect(lab.serverLog()).toContain(`DHCPDECLINE(br0) ${squatted} ${mac(50)}`);
  });

  it('release sends DHCPRELEASE: the server forgets every lease', async () => {
    const held = [...Array.from({ length: PARALLEL }, (_, i) => mac(i)), mac(50)].map((m) => clients.lease(m)!);
    for (const lease of held) clients.release(lease.mac);
    expect(await lab.released(held)).toEqual({ unlogged: [], kept: [] });
    expect(lab.serverLeases()).toEqual([]);
    expect(clients.lease(mac(0))).toBeUndefined();
  });

  it('no server on the parent: acquire fails within its timeout, saying so', async () => {
    const index = (JSON.parse(ip('-j', 'link', 'show', lonely)) as { ifindex: number }[])[0]!.ifindex;
    const attempt = clients.acquire(index, mac(60), 1500);
    await expect(attempt).rejects.toThrow(NoDhcpAnswer);
    await expect(attempt).rejects.toThrow(
      `no DHCP server answered for ${mac(60)} on interface ${index} within 1500 ms`,
    );
    expect(clients.lease(mac(60))).toBeUndefined();
  });
});
