import { describe, expect, it } from 'vitest';
import { formatIp, parseCidr, parseIp, usableBounds } from '../../../src/ip/address';

function cidr(text: string) {
  const r = parseCidr(text);
  if (!r.ok) throw new Error(r.why);
  return r.cidr;
}

describe('parseIp', () => {
  it('parses IPv4 strictly', () => {
    expect(parseIp('10.79.0.77')).toEqual({ v6: false, value: 0x0a4f004dn });
    expect(parseIp('0.0.0.0')).toEqual({ v6: false, value: 0n });
    expect(parseIp('255.255.255.255')).toEqual({ v6: false, value: 0xffffffffn });
    for (const bad of [
      '',
      '10.79.0',
      '10.79.0.256',
      '010.79.0.1',
      '10.79.0.1 ',
      ' 10.79.0.1',
      '10.79.0.-1',
      '10.79.0.1/24',
      '1e1.0.0.1',
      '10..0.1',
    ]) {
      expect(parseIp(bad), bad).toBeUndefined();
    }
  });

  it('parses IPv6 forms and refuses malformed ones', () => {
    expect(parseIp('fd00:79::1')).toEqual({ v6: true, value: (0xfd00n << 112n) | (0x79n << 96n) | 1n });
    expect(parseIp('::')).toEqual({ v6: true, value: 0n });
    expect(parseIp('::1')?.value).toBe(1n);
    expect(parseIp('1::')?.value).toBe(1n << 112n);
    expect(parseIp('FD00:0079:0000:0000:0000:0000:0000:0001')?.value).toBe(parseIp('fd00:79::1')?.value);
    expect(parseIp('::ffff:10.79.0.1')?.value).toBe((0xffffn << 32n) | 0x0a4f0001n);
    expect(parseIp('1:2:3:4:5:6:7::')?.value).toBe(parseIp('1:2:3:4:5:6:7:0')?.value);
    for (const bad of [
      'fd00::1::2',
      ':::',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7',
      '12345::',
      'fd00::1%eth0',
      'fd00::g',
      '1.2.3.4::',
      '::1.2.3',
      'fd00::/64',
      ':1::',
      '1:2:3:4:5:6:7:8::',
    ]) {
      expect(parseIp(bad), bad).toBeUndefined();
    }
  });

  it('formats canonically (RFC 5952)', () => {
    const f = (t: string) => formatIp(true, parseIp(t)!.value);
    expect(f('FD00:0079:0000:0000:0000:0000:0000:0001')).toBe('fd00:79::1');
    expect(f('::')).toBe('::');
    expect(f('1:0:0:2:0:0:0:3')).toBe('1:0:0:2::3'); // the longest run
    expect(f('1:0:0:2:0:0:3:4')).toBe('1::2:0:0:3:4'); // the first of equal runs
    expect(f('1:0:2:3:4:5:6:7')).toBe('1:0:2:3:4:5:6:7'); // a single zero group stays
    expect(formatIp(false, 0x0a4f004dn)).toBe('10.79.0.77');
  });
});

describe('parseCidr and usable bounds', () => {
  it('refuses host bits with a suggestion, and bad lengths', () => {
    expect(parseCidr('10.79.0.5/24')).toEqual({ ok: false, why: 'it has host bits set; did you mean 10.79.0.0/24?' });
    expect(parseCidr('10.79.0.0/33').ok).toBe(false);
    expect(parseCidr('10.79.0.0/024').ok).toBe(false);
    expect(parseCidr('10.79.0.0').ok).toBe(false);
    expect(parseCidr('fd00:79::/129').ok).toBe(false);
    expect(cidr('FD00:79:0::/64').text).toBe('fd00:79::/64');
  });

  it.each([
    ['10.0.0.0/24', '10.0.0.1', '10.0.0.254'],
    ['10.0.0.0/30', '10.0.0.1', '10.0.0.2'],
    ['10.0.0.0/31', '10.0.0.0', '10.0.0.1'],
    ['10.0.0.7/32', '10.0.0.7', '10.0.0.7'],
    ['fd00::/64', 'fd00::1', 'fd00::ffff:ffff:ffff:ffff'],
    ['fd00::/126', 'fd00::1', 'fd00::3'],
    ['fd00::/127', 'fd00::', 'fd00::1'],
    ['fd00::5/128', 'fd00::5', 'fd00::5'],
  ])('%s: usable %s to %s', (text, lo, hi) => {
    const c = cidr(text);
    const bounds = usableBounds(c);
    expect(formatIp(c.v6, bounds.lo)).toBe(lo);
    expect(formatIp(c.v6, bounds.hi)).toBe(hi);
  });
});
