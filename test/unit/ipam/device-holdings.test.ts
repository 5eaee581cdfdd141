// The subnet model's part in probe before use: peek lists exactly what successive takes give, device holdings are
// kept from takes, replay to the same state from the journal and from a snapshot, give way to a name given by the
// user, go with their pool, and are not counted as allocations.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseCidr, parseIp } from '../../../src/ip/address';
import { Subnet } from '../../../src/ipam/subnet';

const cidr = (text: string) => {
  const parsed = parseCidr(text);
  if (!parsed.ok) throw new Error(parsed.why);
  return parsed.cidr;
};
const ip = (text: string) => parseIp(text)!.value;
const MAC = '02:5a:00:00:00:0a';

function replayed(lines: string[], subnet: Subnet): Subnet {
  const copy = new Subnet(subnet.cidr);
  for (const line of lines.flatMap((l) => l.split('\n'))) copy.apply(JSON.parse(line));
  return copy;
}

describe('DynamicRange.peek', () => {
  it('lists the addresses successive takes give, in order, through the cursor and the released queue', () => {
    const op = fc.oneof(
      fc.record({ t: fc.constant('dyn' as const) }),
      fc.record({ t: fc.constant('free' as const), host: fc.integer({ min: 1, max: 14 }) }),
      fc.record({ t: fc.constant('static' as const), host: fc.integer({ min: 1, max: 14 }) }),
      fc.record({ t: fc.constant('device' as const), host: fc.integer({ min: 1, max: 14 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), fc.integer({ min: 1, max: 20 }), (ops, n) => {
        const subnet = new Subnet(cidr('10.0.0.0/28'));
        const { pool } = subnet.acquirePool({ id: 'a', options: {} });
        const base = ip('10.0.0.0');
        for (const o of ops) {
          const value = o.t === 'dyn' ? 0n : base + BigInt(o.host);
          if (o.t === 'dyn' && pool.lane.peek(subnet.taken, 1).length) subnet.takeDynamic(pool);
          if (o.t === 'free') subnet.free(value, pool);
          if (o.t === 'static' && !subnet.taken.has(value)) subnet.take(value, 'static', pool);
          if (o.t === 'device' && !subnet.taken.has(value)) subnet.holdForDevice(value, pool, MAC, 1);
        }
        const peeked = pool.lane.peek(subnet.taken, n);
        const taken: bigint[] = [];
        for (let i = 0; i < n && pool.lane.peek(subnet.taken, 1).length; i++)
          taken.push(subnet.takeDynamic(pool).value);
        expect(peeked).toEqual(taken);
      }),
      { numRuns: 500 },
    );
  });
});

describe('device holdings', () => {
  it('are passed over by takes, replay from the journal and from a snapshot, and do not count as allocated', () => {
    const subnet = new Subnet(cidr('10.0.0.0/29'));
    const lines = [subnet.header(1)];
    const { pool, line } = subnet.acquirePool({ id: 'a', options: {} });
    lines.push(line);
    lines.push(subnet.holdForDevice(ip('10.0.0.2'), pool, MAC, 1_800_000_000_000));
    expect(() => subnet.holdForDevice(ip('10.0.0.2'), pool, MAC, 1)).toThrow(/taken/);
    const takes = [1, 2, 3].map(() => subnet.takeDynamic(pool));
    lines.push(...takes.map((t) => t.line));
    expect(takes.map((t) => subnet.text(t.value))).toEqual(['10.0.0.1', '10.0.0.3', '10.0.0.4']);
    expect(pool.allocated).toBe(3);
    expect(subnet.kindOf(ip('10.0.0.2'))).toBe('device');
    expect(subnet.describe(subnet.taken.get(ip('10.0.0.2'))!)).toBe(
      `a device on the LAN with MAC ${MAC} answered for it (probed by pool a)`,
    );
    for (const copy of [replayed(lines, subnet), replayed(subnet.snapshot(), subnet)]) {
      expect(copy.snapshot()).toEqual(subnet.snapshot());
      expect([...copy.devices]).toEqual([ip('10.0.0.2')]);
    }
    // Freed (a later probe found it silent): released addresses queue behind never-used ones.
    lines.push(subnet.free(ip('10.0.0.2'), pool)!);
    expect(subnet.devices.size).toBe(0);
    expect(pool.lane.peek(subnet.taken, 3).map((v) => subnet.text(v))).toEqual(['10.0.0.5', '10.0.0.6', '10.0.0.2']);
    expect(replayed(lines, subnet).snapshot()).toEqual(subnet.snapshot());
  });

  it('give way to an address given by name (aux, --ip, gateway), in journal lines that replay', () => {
    const subnet = new Subnet(cidr('10.0.0.0/29'));
    const lines = [subnet.header(1)];
    const { pool, line } = subnet.acquirePool({ id: 'a', options: {} });
    lines.push(line);
    for (const host of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) lines.push(subnet.holdForDevice(ip(host), pool, MAC, 1));
    lines.push(subnet.take(ip('10.0.0.1'), 'gateway', pool));
    lines.push(subnet.take(ip('10.0.0.2'), 'aux', pool));
    lines.push(subnet.take(ip('10.0.0.3'), 'static', pool));
    expect(subnet.devices.size).toBe(0);
    expect(pool.allocated).toBe(3);
    expect(replayed(lines, subnet).snapshot()).toEqual(subnet.snapshot());
  });

  it('go with the pool whose probe found them', () => {
    const subnet = new Subnet(cidr('10.0.0.0/29'));
    const { pool } = subnet.acquirePool({ id: 'a', options: {} });
    const { pool: other } = subnet.acquirePool({ id: 'b', options: {} });
    subnet.holdForDevice(ip('10.0.0.2'), pool, MAC, 1);
    subnet.holdForDevice(ip('10.0.0.3'), other, MAC, 1);
    subnet.releasePool(pool);
    expect([...subnet.devices]).toEqual([ip('10.0.0.3')]);
  });

  it('a record with a bad MAC or over a taken address is refused at replay', () => {
    const subnet = new Subnet(cidr('10.0.0.0/29'));
    subnet.apply({ t: 'acquire', p: 1, id: 'a', range: null, options: {} });
    expect(() => subnet.apply({ t: 'v', a: '10.0.0.2', p: 1, mac: 'zz', since: 1 })).toThrow(/not a MAC/);
    subnet.apply({ t: 's', a: '10.0.0.2', p: 1 });
    expect(() => subnet.apply({ t: 'v', a: '10.0.0.2', p: 1, mac: MAC, since: 1 })).toThrow(/taken twice/);
  });
});
