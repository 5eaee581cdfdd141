// RouterAdverts over a PacketTap whose socket is a stand-in (the real one is in test/integration/dhcp/slaac.test.ts):
// a solicitation when a parent is first watched, the SLAAC prefix once an advert brings it, and each way a prefix is
// lost (withdrawn, deprecated, expired) reported once, on a clock the test moves.
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { PacketSocket, ReceivedFrame } from '../../../src/kernel/packet-socket';
import { PacketTap } from '../../../src/kernel/packet-tap';
import { type PrefixBack, type PrefixLoss, RouterAdverts } from '../../../src/ra/router-adverts';
import { buildRouterAdvert } from '../../helpers/ra-frames';

const ROUTER = (0xfe80n << 112n) | 0x1n;
const PREFIX = 0xfd77_0000_0000_0002n << 64n;
const TEXT = 'fd77:0:0:2::/64';

function rig() {
  const sent: Buffer[] = [];
  let deliver!: (received: ReceivedFrame) => void;
  const tap = new PacketTap(
    (error) => {
      throw error;
    },
    (onFrame) => {
      deliver = onFrame;
      const fake = { send: (_i: number, frame: Buffer) => sent.push(frame), close() {} };
      const noop = () => undefined;
      return {
        ...fake,
        addUnicast: noop,
        dropUnicast: noop,
        addMulticast: noop,
        dropMulticast: noop,
      } as never as PacketSocket;
    },
  );
  let clock = 1_000_000;
  const adverts = new RouterAdverts(tap, pino({ level: 'silent' }), () => clock);
  const losses: PrefixLoss[] = [];
  adverts.onPrefixLoss((loss) => losses.push(loss));
  const backs: PrefixBack[] = [];
  adverts.onPrefixBack((back) => backs.push(back));
  const advertise = (validSeconds: number, preferredSeconds: number, ifindex = 7) =>
    deliver({
      ifindex,
      outgoing: false,
      frame: buildRouterAdvert({
        routerMac: '02:aa:00:00:00:01',
        router: ROUTER,
        prefixes: [{ prefix: PREFIX, length: 64, validSeconds, preferredSeconds }],
      }),
    });
  return { adverts, sent, losses, backs, advertise, tick: (ms: number) => (clock += ms) };
}

describe('RouterAdverts', () => {
  it('solicits when a parent is first watched, and answers the SLAAC prefix an advert brings', async () => {
    const { adverts, sent, advertise } = rig();
    adverts.watch('eth1', 7, '02:00:00:00:00:07');
    expect(sent).toHaveLength(1);
    expect(sent[0]![54]).toBe(133); // a router solicitation
    const waiting = adverts.slaacPrefix('eth1', 5000);
    advertise(600, 300, 8); // another interface's router: not this parent's
    advertise(600, 300);
    const { router, prefix } = await waiting;
    expect(router).toMatchObject({ router: 'fe80::1', routerMac: '02:aa:00:00:00:01', managed: false });
    expect(prefix).toMatchObject({ text: TEXT, length: 64, autonomous: true, condition: 'valid' });
    adverts.close();
  });

  it('reports a withdrawn, then an expired prefix once each, and never offers it for SLAAC again', async () => {
    const { adverts, losses, advertise, tick } = rig();
    adverts.watch('eth1', 7, '02:00:00:00:00:07');
    advertise(600, 300);
    advertise(0, 0);
    advertise(0, 0);
    expect(losses).toEqual([{ parent: 'eth1', prefix: TEXT, condition: 'withdrawn' }]);
    await expect(adverts.slaacPrefix('eth1', 0)).rejects.toThrow(/no router advertised a SLAAC prefix on eth1/);
    advertise(20, 10); // offered again, then left to run out
    tick(11_000);
    expect(adverts.routers('eth1')?.prefixes.get(TEXT)?.condition).toBe('deprecated');
    tick(10_000);
    adverts.routers('eth1');
    expect(losses.map((l) => l.condition)).toEqual(['withdrawn', 'deprecated', 'expired']);
    adverts.close();
  });

  it('tells a prefix first heard (lost or valid: the state may hold it from before a restart), and one valid again', () => {
    const { adverts, losses, backs, advertise } = rig();
    adverts.watch('eth1', 7, '02:00:00:00:00:07');
    advertise(0, 0);
    advertise(0, 0);
    expect(losses).toEqual([{ parent: 'eth1', prefix: TEXT, condition: 'withdrawn' }]);
    expect(backs).toEqual([]);
    advertise(600, 300);
    advertise(600, 300);
    expect(backs).toEqual([{ parent: 'eth1', prefix: TEXT }]);
    adverts.close();
    const fresh = rig();
    fresh.adverts.watch('eth1', 7, '02:00:00:00:00:07');
    fresh.advertise(600, 300);
    expect(fresh.backs).toEqual([{ parent: 'eth1', prefix: TEXT }]);
    expect(fresh.losses).toEqual([]);
    fresh.adverts.close();
  });

  it('a router that answers with a deprecated prefix only is not solicited again at each answer', async () => {
    const { adverts, sent, advertise, tick } = rig();
    adverts.watch('eth1', 7, '02:00:00:00:00:07');
    const waiting = adverts.slaacPrefix('eth1', 2000);
    for (let i = 0; i < 20; i++) {
      advertise(600, 0); // valid, not preferred: no new address may be formed in it
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(sent.length).toBeLessThanOrEqual(2);
    expect(adverts.routers('eth1')?.prefixes.get(TEXT)?.condition).toBe('deprecated');
    tick(3000);
    advertise(600, 0);
    await expect(waiting).rejects.toThrow(/no router advertised a SLAAC prefix/);
    adverts.close();
  });
});
