import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Occupancy, type Owners, Picker, firstFree, segmentsFor } from '../../../src/cluster/candidates';

/** Occupancy over a plain set. */
function occupancyOf(taken: Set<bigint>): Occupancy {
  return {
    taken: (v) => taken.has(v),
    sorted: (lo, hi) => [...taken].filter((v) => v >= lo && v <= hi).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
    count: () => taken.size,
  };
}

const AB: Owners = { version: 0, ids: () => ['a', 'b'] };

describe('segments', () => {
  it('split the range by rank of id: own slot upward, then the others downward from the slot below', () => {
    const owners = ['b', 'a', 'c'];
    expect(segmentsFor(owners, 'a', 0n, 299n)).toEqual([
      { from: 0n, to: 99n },
      { from: 299n, to: 200n },
      { from: 199n, to: 100n },
    ]);
    expect(segmentsFor(owners, 'b', 0n, 299n)).toEqual([
      { from: 100n, to: 199n },
      { from: 99n, to: 0n },
      { from: 299n, to: 200n },
    ]);
    // A newcomer counts itself; more hosts than addresses leaves some slots empty.
    expect(segmentsFor([], 'x', 10n, 19n)).toEqual([{ from: 10n, to: 19n }]);
    expect(segmentsFor(['a', 'b', 'c', 'd'], 'a', 0n, 1n)).toEqual([
      { from: 1n, to: 1n },
      { from: 0n, to: 0n },
    ]);
  });
});

describe('firstFree', () => {
  it('finds the first hole from a point, wrapping, and nothing in a full range', () => {
    expect(firstFree([5n, 6n, 7n], 0n, 9n, 5n)).toBe(8n);
    expect(firstFree([8n, 9n], 0n, 9n, 8n)).toBe(0n);
    expect(firstFree([0n, 1n, 2n], 0n, 2n, 1n)).toBeUndefined();
    expect(firstFree([], 0n, 9n, 42n)).toBe(0n);
  });
});

describe('Picker', () => {
  it('fills its own slot upward from its start, then overflows downward from the top of another', () => {
    const picker = new Picker();
    const taken = new Set<bigint>([0n]); // the gateway
    const picks: bigint[] = [];
    for (let i = 0; i < 6; i++) {
      const v = picker.pick('lane', 0n, 11n, AB, 'a', occupancyOf(taken))!;
      taken.add(v);
      picks.push(v);
    }
    expect(picks).toEqual([1n, 2n, 3n, 4n, 5n, 11n]);
  });

  it("skips what others hold in its own slot, but ends a run in another's where it meets that host's address", () => {
    const picker = new Picker();
    // b's takes from before a and b saw each other, in what is now a's slot (0-9); without skipping them, a would
    // leave its slot at the first and overflow into b's while most of its own is free.
    const taken = new Set<bigint>([1n, 7n]);
    const occupancy = occupancyOf(taken);
    const pick = () => {
      const value = picker.pick('l', 0n, 19n, AB, 'a', occupancy)!;
      taken.add(value);
      return value;
    };
    expect(Array.from({ length: 8 }, pick)).toEqual([0n, 2n, 3n, 4n, 5n, 6n, 8n, 9n]);
    taken.add(18n); // b's run in its slot (10-19), grown up to 18
    expect(pick()).toBe(19n); // overflow into b's slot from its top
    const anywhere = pick(); // b's run ends that segment: every segment left, so anything free
    expect(anywhere >= 10n && anywhere <= 17n).toBe(true);
  });

  it('leaves its segment where it lost a race, even its own', () => {
    const picker = new Picker();
    const taken = new Set<bigint>();
    const occupancy = occupancyOf(taken);
    expect(picker.pick('l', 0n, 99n, AB, 'a', occupancy)).toBe(0n);
    taken.add(0n);
    picker.lost('l', 0n, 99n, occupancy); // another host is taking here
    expect(picker.pick('l', 0n, 99n, AB, 'a', occupancy)).toBe(99n); // b's slot, from its top
  });

  it('splits the range anew when a host joins: it leaves the slot now given to the newcomer', () => {
    const picker = new Picker();
    const taken = new Set<bigint>();
    const occupancy = occupancyOf(taken);
    // a and b: a's slot is 0-49. Then c appears (version 1): a's slot is 0-32, and c's is 66-99 ('c' ranks last).
    for (let i = 0; i < 40; i++) taken.add(picker.pick('l', 0n, 99n, AB, 'a', occupancy)!);
    const abc: Owners = { version: 1, ids: () => ['a', 'b', 'c'] };
    const next = picker.pick('l', 0n, 99n, abc, 'a', occupancy)!;
    // 0-32 is full: a overflows from the top of the slot below its own (c's, 66-99), never into 40-49, now b's.
    expect(next).toBe(99n);
    // The same version again: the walk goes on where it stands.
    taken.add(next);
    expect(picker.pick('l', 0n, 99n, abc, 'a', occupancy)).toBe(98n);
  });

  it('hands out every address of the range exactly once, whatever else holds some (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }),
        fc.array(fc.integer({ min: 0, max: 59 }), { maxLength: 40 }),
        fc.array(fc.constantFrom('a', 'b', 'c', 'd'), { minLength: 1, maxLength: 4 }),
        fc.array(fc.boolean(), { maxLength: 80 }),
        (size, held, owners, losses) => {
          const hi = BigInt(size - 1);
          const taken = new Set(held.map(BigInt).filter((v) => v <= hi));
          const free = size - taken.size;
          const picker = new Picker();
          const got = new Set<bigint>();
          for (let i = 0; i <= size; i++) {
            const v = picker.pick('l', 0n, hi, { version: 0, ids: () => owners }, owners[0], occupancyOf(taken));
            if (v === undefined) break;
            expect(taken.has(v)).toBe(false);
            taken.add(v);
            got.add(v);
            if (losses[i]) picker.lost('l', 0n, hi, occupancyOf(taken));
          }
          expect(got.size).toBe(free);
          expect(
            picker.pick('l', 0n, hi, { version: 0, ids: () => owners }, owners[0], occupancyOf(taken)),
          ).toBeUndefined();
        },
      ),
    );
  });
});
