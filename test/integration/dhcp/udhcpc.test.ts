// Frames of another DHCP client (busybox udhcpc in a container namespace, on a macvlan of our parent), as the host's
// packet socket sees them on the parent in both directions: the codec reads all of them, and its lease is the
// server's. Also recorded as a fixture (TSMV_DHCP_RECORD=1) for the unit tests.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFrame } from '../../../src/dhcp/frame';
import { decodeMessage } from '../../../src/dhcp/message';
import { PacketSocket, type ReceivedFrame } from '../../../src/kernel/packet-socket';
import { DhcpLab, requireTool } from '../../helpers/dhcp-lab';
import { isIpv4OrArp, type Recording } from '../../helpers/dhcp-harness';
import { assertPrivateNetns } from '../../helpers/net';

const BUSYBOX = '/bin/busybox';
const MAC = '02:7d:00:00:00:b1';

describe('busybox udhcpc seen from the parent', () => {
  let lab: DhcpLab;
  let socket: PacketSocket;
  const seen: ReceivedFrame[] = [];

  beforeAll(async () => {
    assertPrivateNetns();
    requireTool(BUSYBOX, 'busybox-static');
    lab = await DhcpLab.create();
    await lab.startServer();
    socket = new PacketSocket(
      (received) => received.ifindex === lab.parentIndex && seen.push(received),
      (error) => {
        throw error;
      },
    );
  });
  afterAll(async () => {
    socket?.close();
    await lab?.close();
  });

  it("udhcpc's DISCOVER and REQUEST (outgoing through the macvlan) and dnsmasq's OFFER and ACK all decode", async () => {
    const ns = lab.container('u', MAC);
    // -q: quit once bound, -n: fail rather than retry forever, -s /bin/true: configure nothing. -T 3: a busy machine
    // may still make it send a message again; a retransmission is normal DHCP and is accepted below.
    const udhcpc = ['netns', 'exec', ns, BUSYBOX, 'udhcpc', '-f', '-q', '-n', '-t', '5', '-T', '3', '-s', '/bin/true'];
    await promisify(execFile)('ip', [...udhcpc, '-i', `${lab.prefix}mu`], { timeout: 60_000 });
    const dhcp = seen.flatMap((r) => {
      if (!isIpv4OrArp(r.frame)) return [];
      const parsed = parseFrame(r.frame);
      if (parsed.kind !== 'udp') return [];
      const message = decodeMessage(parsed.datagram.payload);
      return message.chaddr === MAC ? [{ r, message }] : [];
    });
    const types = dhcp.map(({ r, message }) => [message.type, r.outgoing]);
    // The client's messages go out, the server's come in; the exchange starts with a DISCOVER, and the REQUEST the
    // client bound with is answered by an ACK of the address it asked for.
    for (const [type, outgoing] of types)
      expect([type, outgoing]).toEqual([type, type === 'discover' || type === 'request']);
    expect(new Set(types.map(([type]) => type))).toEqual(new Set(['discover', 'offer', 'request', 'ack']));
    expect(types[0]).toEqual(['discover', true]);
    const last = (type: string) => dhcp.map((d): string => d.message.type).lastIndexOf(type);
    expect(last('request')).toBeLessThan(last('ack'));
    const ack = dhcp[last('ack')]!.message;
    expect(dhcp[last('request')]!.message.requestedAddress).toBe(ack.yiaddr);
    expect(lab.serverLeases()).toContainEqual(expect.objectContaining({ mac: MAC, address: ack.yiaddr }));
    if (process.env.TSMV_DHCP_RECORD) {
      const frames = dhcp.map(({ r }) => ({ from: r.outgoing ? 'client' : 'lan', hex: r.frame.toString('hex') }));
      const recording: Recording = { scenario: 'udhcpc', mac: MAC, frames } as Recording;
      writeFileSync(path.join(__dirname, '../../fixtures/dhcp/udhcpc.json'), JSON.stringify(recording, null, 2) + '\n');
    }
  });
});
