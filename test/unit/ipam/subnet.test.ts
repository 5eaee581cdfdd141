import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseCidr, parseIp } from '../../../src/ip/address';
import { Subnet } from '../../../src/ipam/subnet';
import type { Pool } from '../../../src/ipam/subnet-model';
import { PluginError } from '../../../src/errors';
import { ExhaustedError } from '../../../src/ipam/dynamic-range';

function cidr(text: string) {
  const r = parseCidr(text);
  if (!r.ok) throw new Error(r.why);
  return r.cidr;
}

function ip(text: string): bigint {
  const r = parseIp(text);
  if (!r) throw new Error(text);
  return r.value;
}

function setup(subnetText: string, range?: string): { subnet: Subnet; pool: Pool } {
  const subnet = new Subnet(cidr(subnetText));
  const { pool } = subnet.acquirePool({
    id: `p-${subnetText}-${range ?? ''}`,
    ...(range && { range: cidr(range) }),
    options: {},
  });
  return { subnet, pool };
}

/** Takes dynamic addresses until exhaustion (or `max`), as text. */
function drain(subnet: Subnet, pool: Pool, max = 100_000): string[] {
  const out: string[] = [];
  for (let i = 0; i < max; i++) {
    try {
      out.push(subnet.text(subnet.takeDynamic(pool).value));
    } catch (err) {
      expect(err).toBeInstanceOf(PluginError);
      expect((err as Error).message).toContain('exhausted');
      return out;
    }
  }
  return out;
}

function replay(subnet: Subnet): Subnet {
  const copy = new Subnet(subnet.cidr);
  for (const line of subnet.snapshot()) copy.apply(JSON.parse(line));
  return copy;
}

describe('dynamic allocation', () => {
  it('hands out the range in order and never the broadcast address', () => {
    const { subnet, pool } = setup('10.79.0.0/24', '10.79.0.128/25');
    const got = drain(subnet, pool);
    expect(got.length).toBe(127);
    expect(got[0]).toBe('10.79.0.128');
    expect(got.at(-1)).toBe('10.79.0.254');
    expect(got).not.toContain('10.79.0.255');
  });

  it('says what is exhausted and how to fix it', () => {
    const { subnet, pool } = setup('10.79.0.0/24', '10.79.0.128/25');
    drain(subnet, pool);
    expect(() => subnet.takeDynamic(pool)).toThrow(
      'no free address left in range 10.79.0.128/25 of subnet 10.79.0.0/24 (127 addresses, all in use): the range is exhausted; widen --ip-range or release addresses',
    );
    const whole = setup('10.80.0.0/30');
    expect(drain(whole.subnet, whole.pool)).toEqual(['10.80.0.1', '10.80.0.2']);
    expect(() => whole.subnet.takeDynamic(whole.pool)).toThrow(
      /subnet 10\.80\.0\.0\/30 \(2 addresses, all in use\): the subnet is exhausted; use a larger --subnet/,
    );
  });

  it.each([
    ['10.0.0.0/30', ['10.0.0.1', '10.0.0.2']],
    ['10.0.0.0/31', ['10.0.0.0', '10.0.0.1']],
    ['10.0.0.9/32', ['10.0.0.9']],
    ['fd00::/126', ['fd00::1', 'fd00::2', 'fd00::3']],
    ['fd00::/127', ['fd00::', 'fd00::1']],
    ['fd00::9/128', ['fd00::9']],
  ])('%s allows exactly %j', (text, expected) => {
    const { subnet, pool } = setup(text);
    expect(drain(subnet, pool)).toEqual(expected);
  });

  it('refuses network, broadcast and anycast addresses as static addresses, with what is allowed', () => {
    const { subnet, pool } = setup('10.0.0.0/30');
    expect(() => subnet.take(ip('10.0.0.0'), 'static', pool)).toThrow(
      'address 10.0.0.0 is the network address of subnet 10.0.0.0/30 and cannot be assigned (usable addresses are 10.0.0.1 to 10.0.0.2)',
    );
    expect(() => subnet.take(ip('10.0.0.3'), 'static', pool)).toThrow(/10\.0\.0\.3 is the broadcast address/);
    expect(() => subnet.take(ip('10.0.0.4'), 'static', pool)).toThrow(/10\.0\.0\.4 is not in subnet 10\.0\.0\.0\/30/);
    const v6 = setup('fd00::/64');
    expect(() => v6.subnet.take(ip('fd00::'), 'static', v6.pool)).toThrow(/subnet-router anycast address/);
    const one = setup('10.0.0.9/32');
    expect(() => one.subnet.take(ip('10.0.0.8'), 'static', one.pool)).toThrow(/the only usable address is 10\.0\.0\.9/);
    expect(subnet.taken.size).toBe(0);
  });

  it('puts released addresses at the back of the line', () => {
    const { subnet, pool } = setup('10.0.0.0/29'); // .1 to .6
    expect(drain(subnet, pool, 3)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    subnet.free(ip('10.0.0.2'), pool);
    // Never-used addresses first.
    expect(drain(subnet, pool, 3)).toEqual(['10.0.0.4', '10.0.0.5', '10.0.0.6']);
    subnet.free(ip('10.0.0.5'), pool);
    subnet.free(ip('10.0.0.1'), pool);
    // Then in release order: .2 (first released) before .5 before .1.
    expect(drain(subnet, pool)).toEqual(['10.0.0.2', '10.0.0.5', '10.0.0.1']);
    // The address just released is not the next one while another is free.
    subnet.free(ip('10.0.0.3'), pool);
    subnet.free(ip('10.0.0.6'), pool);
    expect(subnet.text(subnet.takeDynamic(pool).value)).toBe('10.0.0.3');
  });

  it('skips addresses taken meanwhile by static requests', () => {
    const { subnet, pool } = setup('10.0.0.0/29');
    subnet.take(ip('10.0.0.2'), 'static', pool);
    expect(drain(subnet, pool, 1)).toEqual(['10.0.0.1']);
    subnet.free(ip('10.0.0.1'), pool);
    subnet.take(ip('10.0.0.1'), 'static', pool); // released, then taken statically: its FIFO entry is stale
    expect(drain(subnet, pool)).toEqual(['10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
  });

  it('allocates in a /64 without enumerating it', () => {
    const { subnet, pool } = setup('fd00:79::/64');
    const first = drain(subnet, pool, 3);
    expect(first).toEqual(['fd00:79::1', 'fd00:79::2', 'fd00:79::3']);
    subnet.take(ip('fd00:79::ffff:ffff:ffff:ffff'), 'static', pool);
    subnet.free(ip('fd00:79::2'), pool);
    expect(subnet.text(subnet.takeDynamic(pool).value)).toBe('fd00:79::4');
    const big = setup('fd00::/48', 'fd00:0:0:8000::/49');
    expect(big.subnet.text(big.subnet.takeDynamic(big.pool).value)).toBe('fd00:0:0:8000::');
  });
});

describe('reservations and sharing a subnet', () => {
  it('refuses a static address in use, saying by what', () => {
    const { subnet, pool } = setup('10.79.0.0/24', '10.79.0.128/25');
    subnet.take(ip('10.79.0.1'), 'gateway', pool);
    subnet.take(ip('10.79.0.250'), 'aux', pool);
    subnet.take(ip('10.79.0.77'), 'static', pool);
    expect(() => subnet.take(ip('10.79.0.77'), 'static', pool)).toThrow(
      /address 10\.79\.0\.77 is already in use in subnet 10\.79\.0\.0\/24: it is assigned to a container of pool p-10\.79\.0\.0\/24-10\.79\.0\.128\/25; choose another address/,
    );
    expect(() => subnet.take(ip('10.79.0.1'), 'static', pool)).toThrow(/it is the gateway of pool/);
    expect(() => subnet.take(ip('10.79.0.250'), 'static', pool)).toThrow(/it is reserved \(aux address\)/);
    expect(() => subnet.take(ip('10.79.0.250'), 'gateway', pool)).toThrow(/choose another --gateway/);
    // The aux address inside the range is never handed out dynamically.
    expect(drain(subnet, pool)).not.toContain('10.79.0.250');
    expect(pool.allocated).toBe(3 + 126);
  });

  it('keeps two networks on one subnet apart, sharing only the gateway', () => {
    const subnet = new Subnet(cidr('10.0.0.0/28')); // .1 to .14
    const a = subnet.acquirePool({ id: 'a', options: {} }).pool;
    const b = subnet.acquirePool({ id: 'b', range: cidr('10.0.0.8/29'), options: {} }).pool;
    expect(a.lane).not.toBe(b.lane);
    subnet.take(ip('10.0.0.1'), 'gateway', a);
    subnet.take(ip('10.0.0.1'), 'gateway', b); // the LAN's router serves both
    subnet.take(ip('10.0.0.9'), 'static', a);
    const fromB = drain(subnet, b);
    const fromA = drain(subnet, a);
    expect(fromB).toEqual(['10.0.0.8', '10.0.0.10', '10.0.0.11', '10.0.0.12', '10.0.0.13', '10.0.0.14']);
    expect(fromA).toEqual(['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6', '10.0.0.7']);
    // An address released by B is found by A, whose cursor has passed it.
    subnet.free(ip('10.0.0.12'), b);
    expect(subnet.text(subnet.takeDynamic(a).value)).toBe('10.0.0.12');
    // A release from the wrong pool changes nothing.
    expect(subnet.free(ip('10.0.0.12'), b)).toBeUndefined();
    expect(subnet.kindOf(ip('10.0.0.12'))).toBe('dynamic');
    // The gateway stays while one network still uses it.
    subnet.free(ip('10.0.0.1'), a);
    expect(subnet.kindOf(ip('10.0.0.1'))).toBe('gateway');
    subnet.free(ip('10.0.0.1'), b);
    expect(subnet.kindOf(ip('10.0.0.1'))).toBeUndefined();
  });

  it('counts pool references; the last release frees what the pool held', () => {
    const subnet = new Subnet(cidr('10.0.0.0/29'));
    const first = subnet.acquirePool({ id: 'x', options: { a: '1' } });
    const second = subnet.acquirePool({ id: 'x', options: { a: '1' } });
    expect(second.pool).toBe(first.pool);
    expect(first.pool.refs).toBe(2);
    expect(() => subnet.acquirePool({ id: 'x', options: { a: '2' } })).toThrow(/other --ipam-opt values/);
    subnet.take(ip('10.0.0.1'), 'gateway', first.pool);
    subnet.takeDynamic(first.pool);
    expect(subnet.releasePool(first.pool).dropped).toBe(false);
    expect(subnet.taken.size).toBe(2);
    expect(subnet.releasePool(first.pool).dropped).toBe(true);
    expect(subnet.taken.size).toBe(0);
    expect(subnet.empty).toBe(true);
    expect(subnet.lanes.size).toBe(0);
  });
});

describe('journal replay', () => {
  it('rebuilds the same state, cursor and release order from a snapshot', () => {
    const subnet = new Subnet(cidr('10.0.0.0/28'));
    const a = subnet.acquirePool({ id: 'a', options: { k: 'v' } }).pool;
    subnet.acquirePool({ id: 'a', options: { k: 'v' } });
    subnet.take(ip('10.0.0.1'), 'gateway', a);
    subnet.take(ip('10.0.0.14'), 'aux', a);
    drain(subnet, a);
    subnet.free(ip('10.0.0.5'), a);
    subnet.free(ip('10.0.0.3'), a);
    const copy = replay(subnet);
    expect(copy.snapshot()).toEqual(subnet.snapshot());
    const pool = copy.pools.get('a')!;
    expect(pool.refs).toBe(2);
    expect(pool.options).toEqual({ k: 'v' });
    expect(drain(copy, pool)).toEqual(['10.0.0.5', '10.0.0.3']);
  });

  it('keeps a cursor in the middle of the lane through repeated snapshots', () => {
    const { subnet, pool } = setup('10.0.0.0/24');
    drain(subnet, pool, 10); // .1 to .10
    subnet.free(ip('10.0.0.3'), pool);
    subnet.take(ip('10.0.0.200'), 'static', pool);
    let copy = subnet;
    for (let i = 0; i < 3; i++) copy = replay(copy);
    expect(copy.snapshot()).toEqual(subnet.snapshot());
    expect(copy.pools.get(pool.id)!.lane.cursor).toBe(ip('10.0.0.11'));
    expect(drain(copy, copy.pools.get(pool.id)!, 2)).toEqual(['10.0.0.11', '10.0.0.12']);
  });

  it('replays change lines to the same state as live operations', () => {
    const live = new Subnet(cidr('10.0.0.0/29'));
    const lines = [live.header(1)];
    const a = live.acquirePool({ id: 'a', options: {} });
    lines.push(a.line);
    for (let i = 0; i < 6; i++) lines.push(live.takeDynamic(a.pool).line);
    lines.push(live.free(ip('10.0.0.4'), a.pool)!, live.free(ip('10.0.0.2'), a.pool)!);
    lines.push(live.takeDynamic(a.pool).line); // .4 from the FIFO
    lines.push(live.take(ip('10.0.0.2'), 'static', a.pool));
    lines.push(live.free(ip('10.0.0.2'), a.pool)!);
    const copy = new Subnet(cidr('10.0.0.0/29'));
    for (const line of lines) copy.apply(JSON.parse(line));
    expect(copy.snapshot()).toEqual(live.snapshot());
    expect(copy.text(copy.takeDynamic(copy.pools.get('a')!).value)).toBe(live.text(live.takeDynamic(a.pool).value));
  });

  it('says in its snapshot what is not answered yet, so a replay rolls back exactly that', () => {
    const live = new Subnet(cidr('10.0.0.0/24'));
    const a = live.acquirePool({ id: 'a', options: {} });
    live.answeredAcquire(a.pool);
    live.acquirePool({ id: 'a', options: {} }); // a second reference, never answered
    live.take(ip('10.0.0.1'), 'gateway', a.pool);
    live.answeredTake(ip('10.0.0.1'), a.pool);
    live.take(ip('10.0.0.1'), 'gateway', a.pool);
    live.undoTake(ip('10.0.0.1'), a.pool); // its write failed: the answered one must stay answered
    live.take(ip('10.0.0.7'), 'static', a.pool);
    live.answeredTake(ip('10.0.0.7'), a.pool);
    const unanswered = live.takeDynamic(a.pool).value; // .2
    const copy = new Subnet(cidr('10.0.0.0/24'));
    for (const line of live.snapshot()) copy.apply(JSON.parse(line));
    expect(copy.snapshot()).toEqual(live.snapshot());
    expect(copy.rollBackUnanswered()).toEqual([`address 10.0.0.2 of pool a`, '1 reference(s) to pool a']);
    expect(copy.kindOf(unanswered)).toBeUndefined();
    expect(copy.kindOf(ip('10.0.0.1'))).toBe('gateway');
    expect(copy.kindOf(ip('10.0.0.7'))).toBe('static');
    expect(copy.pools.get('a')!.refs).toBe(1);
    expect(copy.rollBackUnanswered()).toEqual([]);
  });

  it('journals an exhausted search that moved the cursor, so a replay queues later releases the same way', () => {
    const live = new Subnet(cidr('10.0.0.0/28'));
    const lines = [live.header(1)];
    const b = live.acquirePool({ id: 'b', range: cidr('10.0.0.8/30'), options: {} });
    lines.push(b.line);
    lines.push(live.take(ip('10.0.0.10'), 'static', b.pool), live.take(ip('10.0.0.11'), 'static', b.pool));
    lines.push(live.takeDynamic(b.pool).line, live.takeDynamic(b.pool).line); // .8, .9
    let err: ExhaustedError | undefined;
    try {
      live.takeDynamic(b.pool); // walks the cursor over .10 and .11
    } catch (e) {
      err = e as ExhaustedError;
    }
    expect(err?.line).toBe('{"t":"exhausted","p":1}');
    lines.push(err!.line!);
    let again: unknown;
    try {
      live.takeDynamic(b.pool);
    } catch (e) {
      again = e;
    }
    expect(again).toBeInstanceOf(ExhaustedError);
    expect((again as ExhaustedError).line).toBeUndefined(); // nothing moved this time: nothing to journal
    lines.push(live.free(ip('10.0.0.10'), b.pool)!);
    const copy = new Subnet(cidr('10.0.0.0/28'));
    for (const line of lines) copy.apply(JSON.parse(line));
    expect(copy.snapshot()).toEqual(live.snapshot());
    expect(copy.text(copy.takeDynamic(copy.pools.get('b')!).value)).toBe('10.0.0.10');
  });

  it('rejects records that do not fit', () => {
    const subnet = new Subnet(cidr('10.0.0.0/29'));
    expect(() => subnet.apply({ t: 'd', a: '10.0.0.1', p: 1 })).toThrow(/pool number 1 is not defined/);
    subnet.apply({ t: 'acquire', p: 1, id: 'a', range: null, options: {} });
    expect(() => subnet.apply({ t: 'd', a: '10.0.1.1', p: 1 })).toThrow(/not in subnet/);
    expect(() => subnet.apply({ t: 'zz' })).toThrow(/unknown record type/);
    subnet.apply({ t: 'd', a: '10.0.0.1', p: 1 });
    expect(() => subnet.apply({ t: 's', a: '10.0.0.1', p: 1 })).toThrow(/taken twice/);
  });
});

describe('random operations against a model', () => {
  it('never hands out a taken address, is exhausted exactly when the lane is full, and replays to the same state', () => {
    // /28: .1 to .14; pool a has the whole subnet, pool b the range .8/30 (.8 to .11).
    const op = fc.oneof(
      { weight: 3, arbitrary: fc.record({ t: fc.constant('dyn' as const), pool: fc.constantFrom('a', 'b') }) },
      fc.record({
        t: fc.constantFrom('static' as const, 'aux' as const, 'gateway' as const),
        pool: fc.constantFrom('a', 'b'),
        host: fc.integer({ min: 0, max: 15 }),
      }),
      fc.record({
        t: fc.constant('free' as const),
        pool: fc.constantFrom('a', 'b'),
        host: fc.integer({ min: 0, max: 15 }),
      }),
      fc.record({ t: fc.constant('restart' as const), fromSnapshot: fc.boolean() }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const base = ip('10.0.0.0');
        let subnet = new Subnet(cidr('10.0.0.0/28'));
        let journal = [subnet.header(1)];
        const acquire = (id: string, range?: string) => {
          const r = subnet.acquirePool({ id, ...(range && { range: cidr(range) }), options: {} });
          journal.push(r.line);
        };
        acquire('a');
        acquire('b', '10.0.0.8/30');
        // The model: host number -> holders ('a:static', 'b:gateway', ...).
        const model = new Map<number, string[]>();
        const inLane = (pool: string, host: number) =>
          host >= 1 && host <= 14 && (pool === 'a' || (host >= 8 && host <= 11));
        for (const o of ops) {
          const pool = subnet.pools.get(o.t === 'restart' ? 'a' : o.pool)!;
          if (o.t === 'restart') {
            const lines = o.fromSnapshot ? subnet.snapshot() : journal;
            const copy = new Subnet(subnet.cidr);
            for (const line of lines) copy.apply(JSON.parse(line));
            expect(copy.snapshot()).toEqual(subnet.snapshot());
            subnet = copy;
            journal = copy.snapshot();
          } else if (o.t === 'dyn') {
            const free = Array.from({ length: 16 }, (_, h) => h).filter((h) => inLane(o.pool, h) && !model.has(h));
            if (free.length === 0) {
              const err = (() => {
                try {
                  subnet.takeDynamic(pool);
                } catch (e) {
                  return e as ExhaustedError;
                }
                return undefined;
              })();
              expect(err).toBeInstanceOf(ExhaustedError);
              if (err?.line) journal.push(err.line);
            } else {
              const { value, line } = subnet.takeDynamic(pool);
              const host = Number(value - base);
              expect(free).toContain(host);
              model.set(host, [`${o.pool}:dynamic`]);
              journal.push(line);
            }
          } else if (o.t === 'free') {
            const holders = model.get(o.host) ?? [];
            const mine = holders.findIndex((h) => h.startsWith(`${o.pool}:`));
            const line = subnet.free(base + BigInt(o.host), pool);
            expect(line !== undefined).toBe(mine >= 0);
            if (line) {
              journal.push(line);
              holders.splice(mine, 1);
              if (holders.length === 0) model.delete(o.host);
            }
          } else {
            const holders = model.get(o.host) ?? [];
            const allowed =
              o.host >= 1 &&
              o.host <= 14 &&
              (holders.length === 0 || (o.t === 'gateway' && holders.every((h) => h.endsWith(':gateway'))));
            if (!allowed) {
              expect(() => subnet.take(base + BigInt(o.host), o.t, pool)).toThrow(PluginError);
            } else {
              journal.push(subnet.take(base + BigInt(o.host), o.t, pool));
              model.set(o.host, [...holders, `${o.pool}:${o.t}`]);
            }
          }
          expect([...subnet.taken.keys()].map((v) => Number(v - base)).sort((x, y) => x - y)).toEqual(
            [...model.keys()].sort((x, y) => x - y),
          );
          // Each lane's fill counts the addresses in use inside it.
          for (const lane of subnet.lanes.values())
            expect(lane.inUse).toBe([...subnet.taken.keys()].filter((v) => v >= lane.lo && v <= lane.hi).length);
        }
        const replayed = new Subnet(subnet.cidr);
        for (const line of journal) replayed.apply(JSON.parse(line));
        expect(replayed.snapshot()).toEqual(subnet.snapshot());
      }),
      { numRuns: 1000 },
    );
  }, 30_000);
});
