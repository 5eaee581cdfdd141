import { describe, expect, it } from 'vitest';
import { endpointLinkName, endpointMac } from '../../../src/driver/endpoint-naming';
import { internalParentName } from '../../../src/driver/parents';

describe('link names', () => {
  it('are at most 15 characters, recognisable by prefix, and distinct per kind', () => {
    const id = 'b6113b3e2f04f168562608ec59639c387e4bf7dc38932f535f131b42bdc9977a';
    expect(endpointLinkName(id)).toBe('tsmveb6113b3e2f');
    expect(internalParentName(id)).toBe('tsmvib6113b3e2f');
    expect(endpointLinkName('r1h5l6sb2s6hzi2t4ol1exg6u')).toHaveLength(15); // swarm ids are base36
  });
});

describe('endpointMac', () => {
  it('is 02:42 + the IPv4 address, so the same address keeps the same MAC', () => {
    expect(endpointMac('10.79.0.77/24', 'x')).toBe('02:42:0a:4f:00:4d');
    expect(endpointMac('192.168.255.1/16', 'y')).toBe('02:42:c0:a8:ff:01');
  });
  it('without IPv4 is derived from the endpoint id: locally administered, unicast, stable', () => {
    const mac = endpointMac(undefined, 'abc');
    expect(mac).toMatch(/^02(:[0-9a-f]{2}){5}$/);
    expect(endpointMac(undefined, 'abc')).toBe(mac);
    expect(endpointMac(undefined, 'abd')).not.toBe(mac);
  });
});
