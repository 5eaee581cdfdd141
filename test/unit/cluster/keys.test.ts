import { describe, expect, it } from 'vitest';
import {
  addressKey,
  addressOfKey,
  addressesPrefix,
  decodeClaims,
  describeHolder,
  encodeClaims,
  normalPrefix,
  subnetOfKey,
} from '../../../src/cluster/keys';
import { parseCidr, parseIp } from '../../../src/ip/address';

const v4 = (() => {
  const r = parseCidr('10.0.4.0/22');
  if (!r.ok) throw new Error(r.why);
  return r.cidr;
})();
const v6 = (() => {
  const r = parseCidr('fd00:1::/64');
  if (!r.ok) throw new Error(r.why);
  return r.cidr;
})();
const ip = (text: string) => parseIp(text)!.value;

describe('cluster key layout', () => {
  it('puts one key per address under the subnet, / written as _', () => {
    expect(addressKey('/tsmacvlan', v4, ip('10.0.5.7'))).toBe('/tsmacvlan/v1/subnets/10.0.4.0_22/addresses/10.0.5.7');
    expect(addressKey('/p', v6, ip('fd00:1::1f'))).toBe('/p/v1/subnets/fd00:1::_64/addresses/fd00:1::1f');
  });

  it('reads addresses and subnets back from keys, and nothing from keys that are not its own', () => {
    const prefix = addressesPrefix('/p', v4);
    expect(addressOfKey(prefix, v4, `${prefix}10.0.5.7`)).toBe(ip('10.0.5.7'));
    expect(addressOfKey(prefix, v4, `${prefix}fd00::1`)).toBeUndefined();
    expect(addressOfKey(prefix, v4, `${prefix}junk`)).toBeUndefined();
    expect(addressOfKey(prefix, v4, '/other/10.0.5.7')).toBeUndefined();
    expect(subnetOfKey('/p', '/p/v1/subnets/10.0.4.0_22/addresses/10.0.5.7')).toBe('10.0.4.0/22');
    expect(subnetOfKey('/p', '/p/v1/subnets/fd00:1::_64/addresses/fd00:1::1')).toBe('fd00:1::/64');
  });

  it('normalises prefixes and refuses ones that are not paths', () => {
    expect(normalPrefix('/tsmacvlan/')).toBe('/tsmacvlan');
    expect(() => normalPrefix('tsmacvlan')).toThrow(
      /etcd prefix 'tsmacvlan' is not valid: give a path such as \/tsmacvlan/,
    );
    expect(() => normalPrefix('/')).toThrow(/not valid/);
    expect(() => normalPrefix('/a b')).toThrow(/not valid/);
  });
});

describe('cluster claims', () => {
  const claim = { owner: 'hostA', kind: 'container' as const, ref: 'ep1', at: '0123' };

  it('round-trips, keeping only the known fields', () => {
    const text = encodeClaims([{ ...claim, extra: 1 } as typeof claim]);
    expect(text).toBe('{"claims":[{"owner":"hostA","kind":"container","ref":"ep1","at":"0123"}]}');
    expect(decodeClaims(text)).toEqual([claim]);
  });

  it('reads what it cannot trust as held by someone unknown (undefined), never as free', () => {
    for (const bad of [
      'not json',
      'null',
      '{}',
      '{"claims":[]}',
      '{"claims":[{"owner":"a","kind":"router","ref":"r","at":"1"}]}',
      '{"claims":[{"owner":"a","kind":"container","ref":"r"}]}',
      // A container's address is never shared.
      encodeClaims([claim, { ...claim, owner: 'hostB' }]),
    ]) {
      expect(decodeClaims(bad), bad).toBeUndefined();
    }
    const shared = [
      { owner: 'hostA', kind: 'gateway' as const, ref: 'pool', at: '1' },
      { owner: 'hostB', kind: 'aux' as const, ref: 'pool', at: '2' },
    ];
    expect(decodeClaims(encodeClaims(shared))).toEqual(shared);
  });

  it('describes holders for error messages', () => {
    expect(describeHolder([claim])).toBe('held by ep1 on instance hostA');
    expect(
      describeHolder([
        { owner: 'hostA', kind: 'gateway', ref: 'p', at: '1' },
        { owner: 'hostB', kind: 'gateway', ref: 'p', at: '2' },
        { owner: 'hostB', kind: 'aux', ref: 'p', at: '3' },
      ]),
    ).toBe('reserved as gateway and aux by instance hostA, hostB');
    expect(describeHolder(undefined)).toBe('held by a record this version of tsmacvlan cannot read');
  });
});
