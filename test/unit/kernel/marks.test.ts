import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { instanceGroup } from '../../../src/kernel/marks';
import { stateGroup } from '../../../src/state/instance';
import { driverName } from '../../../src/inspect/driver-name';

describe('instance marks', () => {
  it('give each instance id its own device group, stable, non-zero, in the range ip(8) accepts', () => {
    const ids = ['a', 'b', '0123456789abcdef0123456789abcdef', 'tsmacvlan'];
    const groups = ids.map(instanceGroup);
    expect(new Set(groups).size).toBe(ids.length);
    for (const g of groups) (expect(g).toBeGreaterThan(0), expect(g).toBeLessThanOrEqual(0x7fffffff));
    expect(instanceGroup('a')).toBe(instanceGroup('a'));
  });

  it('come from an id the plugin keeps in its state dir; readers never create one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mark-'));
    try {
      expect(stateGroup(dir)).toBeUndefined();
      const group = stateGroup(dir, true);
      expect(readFileSync(join(dir, 'instance'), 'utf8')).toMatch(/^[0-9a-f]{32}\n$/);
      expect(stateGroup(dir)).toBe(group);
      expect(stateGroup(dir, true)).toBe(group);
      const other = mkdtempSync(join(tmpdir(), 'mark-'));
      expect(stateGroup(other, true)).not.toBe(group); // two states, two instances
      rmSync(other, { recursive: true });
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('take the driver name from the socket, as Docker does', () => {
    expect(driverName('/run/docker/plugins/tsmacvlan-test.sock')).toBe('tsmacvlan-test');
    expect(driverName('tsmacvlan.sock')).toBe('tsmacvlan');
  });
});
