// The DHCPv6 client's state machine on a fake clock, with server messages built by the codec (the integration test
// runs it against dnsmasq): the four-message exchange, the check before the address is taken, DECLINE, RENEW at T1
// naming the server, REBIND at T2 naming none, expiry, RELEASE; and the codec and framing round trips.
import { describe, expect, it } from 'vitest';
import { Dhcp6Client, type Step6 } from '../../../src/dhcp6/client';
import { ALL_SERVERS, buildUdp6Frame, linkLocalOf, parseUdp6Frame } from '../../../src/dhcp6/frame';
import { type Dhcp6Message, decodeMessage, duidLl, encodeMessage, STATUS } from '../../../src/dhcp6/message';
import { parseIp } from '../../../src/ip/address';

const MAC = '02:7e:00:00:08:01';
const DUID = duidLl(MAC);
const SERVER = '00:01:00:01:32:a9:a9:ec:4e:f2:e1:85:01:8f';
const ADDRESS = 'fd78:0:0:1::8c';
const T0 = 1_800_000_000_000;

const answer = (type: 'advertise' | 'reply', to: Step6, over: Partial<Dhcp6Message> = {}): Dhcp6Message =>
  decodeMessage(
    encodeMessage({
      type,
      xid: to.send.at(-1)!.xid,
      clientId: DUID,
      serverId: SERVER,
      ia: {
        iaid: 1,
        t1: 60,
        t2: 105,
        addresses: [{ address: parseIp(ADDRESS)!.value, preferredSeconds: 120, validSeconds: 120 }],
      },
      ...over,
    }),
  );

function checking(): { client: Dhcp6Client; step: Step6 } {
  const client = new Dhcp6Client({ mac: MAC, duid: DUID, iaid: 1, random: () => 0.5 });
  let step = client.start(T0);
  expect(step.send.map((m) => m.type)).toEqual(['solicit']);
  step = client.receive(answer('advertise', step), T0 + 5);
  expect(step.send[0]).toMatchObject({ type: 'request', serverId: SERVER, clientId: DUID });
  step = client.receive(answer('reply', step), T0 + 10);
  expect(step.events).toEqual([{ kind: 'checking', lease: expect.objectContaining({ address: ADDRESS }) }]);
  return { client, step };
}

describe('the DHCPv6 client', () => {
  it('binds after the check, with T1 and T2 from the IA_NA counted from the REQUEST', () => {
    const { client } = checking();
    const step = client.checked(T0 + 500);
    expect(step.events).toEqual([{ kind: 'bound', lease: expect.objectContaining({ address: ADDRESS }) }]);
    expect(client.lease).toMatchObject({
      renewAt: T0 + 5 + 60_000,
      rebindAt: T0 + 5 + 105_000,
      expiresAt: T0 + 5 + 120_000,
    });
    expect(step.wakeAt).toBe(T0 + 5 + 60_000);
  });

  it('a held address is declined to its server, and the client solicits again', () => {
    const { client } = checking();
    const step = client.checked(T0 + 500, '0a:00:00:00:00:01');
    expect(step.send.map((m) => [m.type, m.serverId])).toEqual([
      ['decline', SERVER],
      ['solicit', undefined],
    ]);
    expect(step.events).toEqual([{ kind: 'declined', address: ADDRESS, heldBy: '0a:00:00:00:00:01' }]);
    expect(client.state).toBe('soliciting');
  });

  it('renews at T1 naming the server, rebinds at T2 naming none, and loses the lease at expiry', () => {
    const { client } = checking();
    const lease = (
      client.checked(T0 + 500).events[0] as { lease: { renewAt: number; rebindAt: number; expiresAt: number } }
    ).lease;
    let step = client.timer(lease.renewAt);
    expect(step.send[0]).toMatchObject({ type: 'renew', serverId: SERVER });
    expect(step.send[0]!.ia!.addresses[0]!.address).toBe(parseIp(ADDRESS)!.value);
    step = client.timer(lease.rebindAt);
    expect(step.send[0]!.type).toBe('rebind');
    expect(step.send[0]!.serverId).toBeUndefined();
    step = client.timer(lease.expiresAt);
    expect(step.events).toEqual([
      { kind: 'lost', lease: expect.objectContaining({ address: ADDRESS }), reason: 'expired' },
    ]);
    expect(step.send.map((m) => m.type)).toEqual(['solicit']);
  });

  it('a REPLY to a RENEW renews; one saying NoBinding loses the lease', () => {
    const { client } = checking();
    const lease = client.checked(T0 + 500).events[0]!;
    const renewAt = (lease as { lease: { renewAt: number } }).lease.renewAt;
    let step = client.timer(renewAt);
    step = client.receive(answer('reply', step), renewAt + 10);
    expect(step.events[0]).toMatchObject({ kind: 'renewed', lease: { renewAt: renewAt + 60_000 } });
    step = client.timer(renewAt + 60_000);
    const noBinding = answer('reply', step, { ia: { iaid: 1, t1: 0, t2: 0, addresses: [], status: STATUS.noBinding } });
    expect(client.receive(noBinding, renewAt + 60_010).events[0]).toMatchObject({ kind: 'lost', reason: 'noBinding' });
  });

  it('RELEASE names the server and the address, once', () => {
    const { client } = checking();
    client.checked(T0 + 500);
    const step = client.release(T0 + 1000);
    expect(step.send).toHaveLength(1);
    expect(step.send[0]).toMatchObject({ type: 'release', serverId: SERVER, clientId: DUID });
    expect(client.release(T0 + 2000).send).toHaveLength(0);
  });

  it('ignores messages of other transactions or clients, and an ADVERTISE with no address', () => {
    const client = new Dhcp6Client({ mac: MAC, duid: DUID, iaid: 1, random: () => 0.5 });
    const step = client.start(T0);
    expect(client.receive({ ...answer('advertise', step), xid: 1 }, T0).send).toEqual([]);
    expect(client.receive({ ...answer('advertise', step), clientId: duidLl('02:00:00:00:00:09') }, T0).send).toEqual(
      [],
    );
    const none = answer('advertise', step, { status: STATUS.noAddrsAvail, ia: undefined });
    expect(client.receive(none, T0).send).toEqual([]);
    expect(client.state).toBe('soliciting');
  });
});

describe('DHCPv6 framing', () => {
  it('a message round-trips through the codec and an Ethernet + IPv6 + UDP frame with a valid checksum', () => {
    const message: Dhcp6Message = {
      type: 'solicit',
      xid: 0xabcdef,
      clientId: DUID,
      ia: { iaid: 1, t1: 0, t2: 0, addresses: [] },
      elapsed: 0,
      requested: [23],
    };
    const frame = buildUdp6Frame({
      sourceMac: MAC,
      destinationMac: '33:33:00:01:00:02',
      source: linkLocalOf(MAC),
      destination: ALL_SERVERS,
      sourcePort: 546,
      destinationPort: 547,
      payload: encodeMessage(message),
    });
    const parsed = parseUdp6Frame(frame);
    expect(parsed).toMatchObject({ sourcePort: 546, destinationPort: 547, destination: ALL_SERVERS });
    expect(parseIp('fe80::7e:ff:fe00:801')!.value).toBe(parsed.source);
    expect(decodeMessage(parsed.payload)).toEqual(message);
  });
});
