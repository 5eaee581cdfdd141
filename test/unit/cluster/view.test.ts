import { describe, expect, it } from 'vitest';
import { addressKey, encodeClaims } from '../../../src/cluster/keys';
import { SubnetView } from '../../../src/cluster/view';
import { parseCidr } from '../../../src/ip/address';

const subnet = (() => {
  const r = parseCidr('10.9.0.0/24');
  if (!r.ok) throw new Error(r.why);
  return r.cidr;
})();
const key = (n: number) => addressKey('/p', subnet, subnet.base + BigInt(n));
const value = (owner: string, kind: 'container' | 'gateway' = 'container', at = `${owner}-${kind}`) =>
  encodeClaims([{ owner, kind, ref: 'r', at }]);

describe('subnet view', () => {
  it('applies events by revision: an older put or delete never undoes a newer one', () => {
    const view = new SubnetView(subnet, '/p');
    view.load([{ key: key(5), value: value('a'), modRevision: 10n }], 10n);
    view.put({ key: key(5), value: value('b'), modRevision: 9n });
    expect(view.held.get(subnet.base + 5n)?.claims?.[0].owner).toBe('a');
    view.delete(key(5), 12n);
    expect(view.held.has(subnet.base + 5n)).toBe(false);
    // The put of revision 11 arrives after the delete of 12 (this host's own write raced the watch): ignored.
    view.put({ key: key(5), value: value('c'), modRevision: 11n });
    expect(view.held.has(subnet.base + 5n)).toBe(false);
    view.put({ key: key(5), value: value('d'), modRevision: 13n });
    expect(view.held.get(subnet.base + 5n)?.claims?.[0].owner).toBe('d');
  });

  it('ignores keys that are not addresses of its subnet, and keeps unreadable values as held', () => {
    const view = new SubnetView(subnet, '/p');
    expect(view.put({ key: '/p/v1/subnets/10.9.0.0_24/addresses/junk', value: '{}', modRevision: 2n })).toBeUndefined();
    expect(view.put({ key: '/q/whatever', value: '{}', modRevision: 3n })).toBeUndefined();
    expect(view.put({ key: key(7), value: 'garbage', modRevision: 4n })).toBe(subnet.base + 7n);
    expect(view.occupancy(new Set()).taken(subnet.base + 7n)).toBe(true);
    expect(view.summary(subnet.base, subnet.last).owners['?']).toEqual({ container: 1, gateway: 0, aux: 0 });
  });

  it('finds claims by token, lists owners, and counts who holds what and what is free', () => {
    const view = new SubnetView(subnet, '/p');
    const gateway = encodeClaims([
      { owner: 'a', kind: 'gateway', ref: 'pool', at: 'g1' },
      { owner: 'b', kind: 'gateway', ref: 'pool', at: 'g2' },
    ]);
    view.load(
      [
        { key: key(1), value: gateway, modRevision: 2n },
        { key: key(2), value: value('a', 'container', 't1'), modRevision: 3n },
        { key: key(3), value: value('b', 'container', 't2'), modRevision: 4n },
      ],
      4n,
    );
    expect(view.findToken('g2')?.address).toBe(subnet.base + 1n);
    expect(view.findToken('t2')?.claim.owner).toBe('b');
    expect(view.findToken('nope')).toBeUndefined();
    expect([...view.owners()].sort()).toEqual(['a', 'b']);
    const summary = view.summary(subnet.base + 1n, subnet.base + 10n);
    expect(summary).toEqual({
      subnet: '10.9.0.0/24',
      size: 10n,
      used: 3,
      free: 7n,
      owners: { a: { container: 1, gateway: 1, aux: 0 }, b: { container: 1, gateway: 1, aux: 0 } },
    });
    expect(view.holdings(subnet.base + 2n, subnet.base + 3n)).toEqual([
      { address: '10.9.0.2', claims: [{ owner: 'a', kind: 'container', ref: 'r', at: 't1' }] },
      { address: '10.9.0.3', claims: [{ owner: 'b', kind: 'container', ref: 'r', at: 't2' }] },
    ]);
    const busy = new Set([subnet.base + 4n]);
    expect(view.occupancy(busy).sorted(subnet.base, subnet.base + 9n)).toEqual(
      [1n, 2n, 3n, 4n].map((n) => subnet.base + n),
    );
    expect(view.occupancy(busy).count()).toBe(4);
  });

  it('knows its owners as claims come and go, and versions the set only when it changes', () => {
    const view = new SubnetView(subnet, '/p');
    const both = encodeClaims([
      { owner: 'a', kind: 'gateway', ref: 'r', at: 'a-g' },
      { owner: 'b', kind: 'gateway', ref: 'r', at: 'b-g' },
    ]);
    view.put({ key: key(1), value: value('a', 'gateway'), modRevision: 2n });
    expect([...view.owners()]).toEqual(['a']);
    const first = view.ownersVersion;
    view.put({ key: key(1), value: both, modRevision: 3n }); // b joins the shared gateway
    expect([...view.owners()].sort()).toEqual(['a', 'b']);
    const joined = view.ownersVersion;
    expect(joined).not.toBe(first);
    view.put({ key: key(2), value: value('b'), modRevision: 4n });
    view.put({ key: key(1), value: both, modRevision: 5n }); // rewritten, same owners
    expect(view.ownersVersion).toBe(joined);
    view.delete(key(2), 6n);
    view.put({ key: key(1), value: value('a', 'gateway'), modRevision: 7n }); // b's last claim goes
    expect([...view.owners()]).toEqual(['a']);
    expect(view.ownersVersion).not.toBe(joined);
  });

  it("keeps a range's fill counted as keys come and go, as a fresh count of the same keys says", () => {
    const view = new SubnetView(subnet, '/p');
    view.load([{ key: key(1), value: value('me'), modRevision: 1n }], 1n);
    const [lo, hi] = [subnet.base + 1n, subnet.base + 10n];
    expect(view.fill(lo, hi, 'me')).toEqual({ held: 1, mine: 1 });
    view.put({ key: key(2), value: value('other'), modRevision: 2n });
    view.put({ key: key(20), value: value('me'), modRevision: 3n }); // outside the range
    // A shared gateway: another host's claim, then mine joins it, then theirs leaves.
    const both = encodeClaims([
      { owner: 'other', kind: 'gateway', ref: 'r', at: 'o' },
      { owner: 'me', kind: 'gateway', ref: 'r', at: 'm' },
    ]);
    view.put({ key: key(3), value: value('other', 'gateway'), modRevision: 4n });
    view.put({ key: key(3), value: both, modRevision: 5n });
    expect(view.fill(lo, hi, 'me')).toEqual({ held: 3, mine: 2 });
    view.put({ key: key(3), value: value('other', 'gateway'), modRevision: 6n });
    view.delete(key(1), 7n);
    view.delete(key(1), 8n); // again: nothing changes
    expect(view.fill(lo, hi, 'me')).toEqual({ held: 2, mine: 0 });
    const fresh = new SubnetView(subnet, '/p');
    fresh.load(
      [...view.held].map(([address, h]) => ({
        key: key(Number(address - subnet.base)),
        value: h.value,
        modRevision: h.modRevision,
      })),
      9n,
    );
    expect(fresh.fill(lo, hi, 'me')).toEqual(view.fill(lo, hi, 'me'));
    expect(view.fill(lo, hi, 'other')).toEqual({ held: 2, mine: 2 });
  });
});
