// The cluster table's part in probe before use: the picker lists the candidates its next takes would try without
// moving, and a device claim (kind `device`, with the MAC that answered) is one exclusive claim that reads back,
// says who answered, and counts apart; an older version reads it as held by someone unknown.
import { describe, expect, it } from 'vitest';
import { type Occupancy, type Owners, Picker } from '../../../src/cluster/candidates';
import { decodeClaims, describeHolder, encodeClaims, type Claim } from '../../../src/cluster/keys';
import { SubnetView } from '../../../src/cluster/view';
import { parseCidr } from '../../../src/ip/address';

function occupancyOf(taken: Set<bigint>): Occupancy {
  return {
    taken: (v) => taken.has(v),
    sorted: (lo, hi) => [...taken].filter((v) => v >= lo && v <= hi).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
    count: () => taken.size,
  };
}

const AB: Owners = { version: 0, ids: () => ['a', 'b'] };
const DEVICE: Claim = { owner: 'a', kind: 'device', ref: 'pool', at: 't1', mac: '02:5a:00:00:00:0a' };

describe('Picker.upcoming', () => {
  it('lists what successive picks give when each is taken, and leaves the walk where it was', () => {
    for (const start of [0, 3, 7]) {
      const picker = new Picker();
      const taken = new Set<bigint>([0n, 4n]);
      for (let i = 0; i < start; i++) taken.add(picker.pick('lane', 0n, 23n, AB, 'a', occupancyOf(taken))!);
      const upcoming = picker.upcoming('lane', 0n, 23n, AB, 'a', occupancyOf(taken), 6);
      const picks: bigint[] = [];
      for (let i = 0; i < 6; i++) {
        const v = picker.pick('lane', 0n, 23n, AB, 'a', occupancyOf(taken))!;
        taken.add(v);
        picks.push(v);
      }
      expect(upcoming).toEqual(picks);
    }
  });
});

describe('device claims', () => {
  it('encode with their MAC, decode, and say who answered', () => {
    const value = encodeClaims([DEVICE]);
    expect(JSON.parse(value)).toEqual({ claims: [DEVICE] });
    expect(decodeClaims(value)).toEqual([DEVICE]);
    expect(describeHolder([DEVICE])).toBe(
      'a device on the LAN with MAC 02:5a:00:00:00:0a answered for it (probed by instance a)',
    );
    // Exclusive like a container's; a device claim without its MAC, or a MAC on another kind, is unreadable.
    expect(decodeClaims(encodeClaims([DEVICE, { ...DEVICE, at: 't2' }]))).toBeUndefined();
    expect(decodeClaims(JSON.stringify({ claims: [{ ...DEVICE, mac: undefined }] }))).toBeUndefined();
    expect(decodeClaims(JSON.stringify({ claims: [{ ...DEVICE, kind: 'container' }] }))).toBeUndefined();
  });

  it('count apart in a subnet summary, which lists them with their MACs', () => {
    const parsed = parseCidr('10.9.0.0/24');
    if (!parsed.ok) throw new Error(parsed.why);
    const view = new SubnetView(parsed.cidr, '/p');
    view.load([{ key: `${view.prefix}10.9.0.5`, value: encodeClaims([DEVICE]), modRevision: 2n }], 2n);
    const summary = view.summary(parsed.cidr.base, parsed.cidr.last);
    expect(summary.owners).toEqual({ a: { container: 0, gateway: 0, aux: 0, device: 1 } });
    expect(summary.devices).toEqual([{ address: '10.9.0.5', mac: DEVICE.mac, owner: 'a' }]);
  });
});
