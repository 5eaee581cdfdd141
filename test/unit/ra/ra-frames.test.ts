import { describe, expect, it } from 'vitest';
import { MalformedFrame } from '../../../src/kernel/link-frames';
import { parseNeighbourMessage } from '../../../src/kernel/nd-frames';
import { buildRouterSolicitation, parseRouterAdvert } from '../../../src/kernel/ra-frames';
import { eui64, slaacAddress } from '../../../src/ra/slaac';
import { buildRouterAdvert } from '../../helpers/ra-frames';

const ROUTER = (0xfe80n << 112n) | 0x1n;
const PREFIX = 0xfd77_0000_0000_0001n << 64n;

describe('router discovery frames', () => {
  it('an advertisement reads back its router, flags and prefixes with their lifetimes', () => {
    const frame = buildRouterAdvert({
      routerMac: '02:aa:00:00:00:01',
      router: ROUTER,
      managed: true,
      prefixes: [
        { prefix: PREFIX, length: 64, validSeconds: 600, preferredSeconds: 300 },
        { prefix: PREFIX, length: 64, autonomous: false, validSeconds: 0, preferredSeconds: 0 },
      ],
    });
    const advert = parseRouterAdvert(frame);
    expect(advert).toMatchObject({ router: ROUTER, routerMac: '02:aa:00:00:00:01', managed: true, other: false });
    expect(advert.prefixes).toEqual([
      { prefix: PREFIX, length: 64, onLink: true, autonomous: true, validSeconds: 600, preferredSeconds: 300 },
      { prefix: PREFIX, length: 64, onLink: true, autonomous: false, validSeconds: 0, preferredSeconds: 0 },
    ]);
  });

  it('refuses an advertisement that crossed a router or comes from outside fe80::/10, and other ICMPv6', () => {
    const good = buildRouterAdvert({ routerMac: '02:aa:00:00:00:01', router: ROUTER, prefixes: [] });
    const hop = Buffer.from(good);
    hop[14 + 7] = 64;
    expect(() => parseRouterAdvert(hop)).toThrow(/crossed a router/);
    const global = buildRouterAdvert({ routerMac: '02:aa:00:00:00:01', router: PREFIX | 1n, prefixes: [] });
    expect(() => parseRouterAdvert(global)).toThrow(MalformedFrame);
    expect(() => parseRouterAdvert(buildRouterSolicitation('02:00:00:00:00:09'))).toThrow(MalformedFrame);
    expect(() => parseRouterAdvert(good.subarray(0, 60))).toThrow(MalformedFrame);
  });

  it('a solicitation goes from :: to all routers, type 133 and not a neighbour message', () => {
    const frame = buildRouterSolicitation('02:00:00:00:00:09');
    expect(frame.subarray(0, 6).toString('hex')).toBe('333300000002');
    expect(frame[14 + 40]).toBe(133);
    expect(frame.subarray(14 + 8, 14 + 24).every((b) => b === 0)).toBe(true);
    expect(() => parseNeighbourMessage(frame)).toThrow(MalformedFrame);
  });

  it('SLAAC forms the modified EUI-64 address of the MAC in the /64', () => {
    expect(eui64('02:42:0a:00:00:05').toString(16)).toBe('420afffe000005'); // 00:42:0a:ff:fe:00:00:05
    expect(slaacAddress(PREFIX | 0xdeadn, '00:11:22:33:44:55')).toBe(PREFIX | 0x0211_22ff_fe33_4455n);
  });
});
