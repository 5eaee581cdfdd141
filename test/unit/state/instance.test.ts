import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stateGroup } from '../../../src/state/instance';

describe('instance marks', () => {
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
});
