import { describe, expect, it } from 'vitest';
import { instanceGroup } from '../../../src/kernel/marks';

describe('instance marks', () => {
  it('give each instance id its own device group, stable, non-zero, in the range ip(8) accepts', () => {
    const ids = ['a', 'b', '0123456789abcdef0123456789abcdef', 'tsmacvlan'];
    const groups = ids.map(instanceGroup);
    expect(new Set(groups).size).toBe(ids.length);
    for (const g of groups) (expect(g).toBeGreaterThan(0), expect(g).toBeLessThanOrEqual(0x7fffffff));
    expect(instanceGroup('a')).toBe(instanceGroup('a'));
  });
});
