import { describe, expect, it } from 'vitest';
import { driverName } from '../../../src/inspect/driver-name';

describe('instance marks', () => {
  it('take the driver name from the socket, as Docker does', () => {
    expect(driverName('/run/docker/plugins/tsmacvlan-test.sock')).toBe('tsmacvlan-test');
    expect(driverName('tsmacvlan.sock')).toBe('tsmacvlan');
  });
});
