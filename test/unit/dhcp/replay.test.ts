// The client state machine against exchanges recorded from Debian's dnsmasq (test/integration/dhcp/exchanges.test.ts
// records them): fed the server's frames, the client sends what it sent on the wire, and reports the same leases.
import { describe, expect, it } from 'vitest';
import { DhcpClient } from '../../../src/dhcp/client';
import type { Lease } from '../../../src/dhcp/lease';
import { loadRecording, Replay } from '../../helpers/dhcp-replay';

const newClient = (mac: string) => new Replay(new DhcpClient({ mac, random: () => 0.5 }), mac);

function kinds(replay: Replay): string[] {
  return replay.events.splice(0).map((e) => e.kind);
}

describe('replaying dnsmasq exchanges', () => {
  it('one client through acquire, unicast renew, T2 rebind, a moved reservation and release', () => {
    const acquire = loadRecording('acquire');
    const r = newClient(acquire.mac);
    r.take(r.client.start(r.now));
    let played = r.play(acquire);
    expect(played.replayed).toEqual(played.recorded);
    expect(kinds(r)).toEqual(['bound']);
    const lease = r.client.lease!;
    expect(lease).toMatchObject({ leaseSeconds: 120, prefixLength: 24, routers: ['10.77.0.1'] });
    // dnsmasq's T1 and T2 for a 2-minute lease, counted from when the REQUEST was sent.
    expect([lease.renewAt - lease.obtainedAt, lease.rebindAt - lease.obtainedAt]).toEqual([60_000, 105_000]);

    r.take(r.client.renew(r.now));
    played = r.play(loadRecording('renew'));
    expect(played.replayed).toEqual(played.recorded);
    expect(kinds(r)).toEqual(['renewed']);

    r.now = r.client.lease!.rebindAt;
    played = r.play(loadRecording('rebind'));
    expect(played.replayed).toEqual(played.recorded);
    expect(kinds(r)).toEqual(['renewed']);
    expect(r.client.state).toBe('bound');

    r.take(r.client.renew(r.now));
    played = r.play(loadRecording('renew-new-address'));
    expect(played.replayed).toEqual(played.recorded);
    const [lost, bound] = r.events.splice(0) as [{ kind: string; reason: string }, { kind: string; lease: Lease }];
    expect([lost.kind, lost.reason, bound.kind]).toEqual(['lost', 'nak', 'bound']);
    expect(bound.lease.address).not.toBe(lease.address);

    r.take(r.client.release(r.now));
    played = r.play(loadRecording('release'));
    expect(played.replayed).toEqual(played.recorded);
    expect(kinds(r)).toEqual(['released']);
    expect(r.client.state).toBe('released');
  });

  it('a NAK to a resumed lease the server does not know: lost, then a new lease', () => {
    const nak = loadRecording('nak');
    const r = newClient(nak.mac);
    const first = loadRecording('acquire');
    // The resumed lease: the unicast REQUEST of the recording says which address and server.
    const ack = { serverId: '10.77.0.1', address: '10.77.0.50' };
    const serverMac = first.frames[1]!.hex.slice(12, 24).replace(/(..)(?!$)/g, '$1:');
    const lease: Lease = {
      mac: nak.mac,
      ...ack,
      prefixLength: 24,
      serverMac,
      routers: [],
      dnsServers: [],
      classlessRoutes: [],
      leaseSeconds: 120,
      obtainedAt: r.now - 60_000,
      renewAt: r.now + 60_000,
      rebindAt: r.now + 100_000,
      expiresAt: r.now + 120_000,
    };
    r.take(r.client.resume(lease, r.now));
    r.take(r.client.renew(r.now));
    const played = r.play(nak);
    expect(played.replayed).toEqual(played.recorded);
    expect(kinds(r)).toEqual(['lost', 'bound']);
  });

  it('an ARP reply from a squatter during the check: DECLINE, then another address', () => {
    const decline = loadRecording('decline');
    const r = newClient(decline.mac);
    r.take(r.client.start(r.now));
    const played = r.play(decline);
    expect(played.replayed).toEqual(played.recorded);
    const events = r.events.splice(0);
    expect(events.map((e) => e.kind)).toEqual(['declined', 'bound']);
    expect(events[0]).toMatchObject({ address: '10.77.0.116' });
  });
});
