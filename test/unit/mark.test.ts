import { describe, expect, it } from 'vitest';
import { driverName, instanceGroup } from '../../src/mark';

describe('instance marks', () => {
  it('give each driver name its own device group, stable, non-zero, in the range ip(8) accepts', () => {
    const names = ['tsmacvlan', 'tsmacvlan-test', 'tsmacvlan:latest', 'x'];
    const groups = names.map(instanceGroup);
    expect(new Set(groups).size).toBe(names.length);
    for (const g of groups) expect(g).toBeGreaterThan(0), expect(g).toBeLessThanOrEqual(0x7fffffff);
    expect(instanceGroup('tsmacvlan')).toBe(instanceGroup('tsmacvlan'));
  });
  it('take the driver name from the socket, as Docker does', () => {
    expect(driverName('/run/docker/plugins/tsmacvlan-test.sock')).toBe('tsmacvlan-test');
    expect(driverName('tsmacvlan.sock')).toBe('tsmacvlan');
  });
});
