// The soak's checker (test/chaos/checker.ts) can fail: crafted tcpdump text with two MACs on one IP at once is a
// duplicate, an address that moves from one container to the next is not; a "full" refusal while Docker's view had
// room is inaccurate.
import { describe, expect, it } from 'vitest';
import {
  dockerDuplicates,
  hungRequests,
  judgeRefusals,
  type FaultRecord,
  parseWire,
  type RunRecord,
  wireDuplicates,
} from '../chaos/checker';

const A = '0a:01:00:00:00:01';
const B = '0a:02:00:00:00:07';
const inRange = (ip: string) => ip.startsWith('10.201.0.1');
const arp = (t: string, mac: string, ip: string) =>
  `${t} ${mac} > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 10.201.0.250 tell ${ip}, length 28`;

describe('the wire checker', () => {
  it('reads ARP senders, ARP replies and IPv4 sources from tcpdump -e -n -tt', () => {
    const text = [
      arp('1700000000.100000', A, '10.201.0.130'),
      `1700000000.200000 ${B} > ${A}, ethertype ARP (0x0806), length 42: Reply 10.201.0.131 is-at ${B}, length 28`,
      `1700000000.300000 ${A} > ${B}, ethertype IPv4 (0x0800), length 98: 10.201.0.130 > 10.201.0.131: ICMP echo request, id 5, seq 1, length 64`,
      `1700000000.400000 ${A} > ${B}, ethertype IPv4 (0x0800), length 74: 10.201.0.130.43210 > 10.201.0.2.2379: Flags [S], length 0`,
      `1700000000.500000 ${A} > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 10.201.0.130 tell 0.0.0.0, length 28`,
      'tcpdump: listening on br0, link-type EN10MB (Ethernet), snapshot length 262144 bytes',
    ].join('\n');
    expect(parseWire(text)).toEqual([
      { t: 1700000000.1, mac: A, ip: '10.201.0.130' },
      { t: 1700000000.2, mac: B, ip: '10.201.0.131' },
      { t: 1700000000.3, mac: A, ip: '10.201.0.130' },
      { t: 1700000000.4, mac: A, ip: '10.201.0.130' },
    ]);
  });

  it('fails on two MACs claiming one IP at one moment (A, B, A)', () => {
    const text = [
      arp('100.0', A, '10.201.0.140'),
      arp('101.0', B, '10.201.0.140'),
      arp('101.5', A, '10.201.0.140'),
    ].join('\n');
    expect(wireDuplicates(parseWire(text), inRange)).toEqual([
      { ip: '10.201.0.140', first: A, second: B, from: 101, to: 101.5 },
    ]);
  });

  it('passes an address that moves from one container to the next, and ignores addresses out of scope', () => {
    const moved = [arp('100.0', A, '10.201.0.140'), arp('101.0', A, '10.201.0.140'), arp('103.0', B, '10.201.0.140')];
    const gateway = [arp('100.0', A, '10.201.0.1'), arp('101.0', B, '10.201.0.1'), arp('102.0', A, '10.201.0.1')];
    expect(wireDuplicates(parseWire([...moved, ...gateway].join('\n')), (ip) => ip !== '10.201.0.1')).toEqual([]);
  });
});

describe('the history checker', () => {
  const run = (name: string, host: number, asked: number, answered: number, more: Partial<RunRecord>): RunRecord => ({
    name,
    host,
    asked,
    answered,
    ok: true,
    ...more,
  });

  it('calls a "full" refusal inaccurate when Docker could not have held the whole range', () => {
    const held = [run('a', 0, 0, 10, { ip: '10.201.0.128' }), run('b', 1, 0, 10, { ip: '10.201.0.129' })];
    const refused = run('c', 2, 20, 30, { ok: false, error: 'no free address in 10.201.0.128/31 across the cluster' });
    expect(judgeRefusals([...held, refused], [], 2, 100)).toEqual([{ run: refused, class: 'full', accurate: true }]);
    held[1].removed = 15;
    expect(judgeRefusals([...held, refused], [], 2, 100)[0]).toMatchObject({ accurate: false });
  });

  it('counts an address a crash on its host lets the plugins hold after the removal, for the graces and no longer', () => {
    const graces = { endpointMs: 20_000, releaseMs: 31_000 };
    const held = [run('a', 0, 0, 10, { ip: '10.201.0.128' })];
    // h2's container went while its engine was down: Docker may never have told the plugin (forgotten steps).
    const gone = run('b', 1, 0, 10, { ip: '10.201.0.129', removed: 15_000 });
    const crash = { kind: 'dockerd-restart', host: 1, started: 12_000, healed: 20_000 };
    const refusedAt = (t: number) =>
      run('c', 2, t, t + 500, { ok: false, error: 'no free address in 10.201.0.128/31 across the cluster' });
    const judge = (t: number, faults: FaultRecord[]) =>
      judgeRefusals([...held, gone, refusedAt(t)], faults, 2, 200_000, graces)[0];
    expect(judge(30_000, [crash])).toMatchObject({ accurate: true });
    expect(judge(30_000, [])).toMatchObject({ accurate: false }); // no fault: Docker's view alone
    expect(judge(72_000, [crash])).toMatchObject({ accurate: false }); // past heal + both graces (71 s)
    expect(judge(30_000, [{ ...crash, host: 2 }])).toMatchObject({ accurate: false }); // another host's crash
    // etcd out of reach: the release waits in the queue until etcd answers, then the aftermath.
    const outage = { kind: 'etcd-stop-majority', started: 14_000, healed: 16_000 };
    expect(judge(30_000, [outage])).toMatchObject({ accurate: true });
    expect(judge(32_000, [outage])).toMatchObject({ accurate: false });
  });

  it('accepts an etcd refusal only during (or just after) a fault of etcd', () => {
    const refused = run('c', 0, 20_000, 21_000, {
      ok: false,
      error: 'quorum lost ... No address is handed out without etcd',
    });
    expect(judgeRefusals([refused], [], 32, 60_000)[0]).toMatchObject({ accurate: false });
    const fault = { kind: 'etcd-stop-majority', started: 10_000, healed: 12_000 };
    expect(judgeRefusals([refused], [fault], 32, 60_000)[0]).toMatchObject({ accurate: true });
  });

  it('finds one address given to two containers that were up at once, but not after a dockerd death', () => {
    const a = run('a', 0, 0, 10, { ip: '10.201.0.130', removeAsked: 100 });
    const b = run('b', 1, 50, 60, { ip: '10.201.0.130', removeAsked: 200 });
    expect(dockerDuplicates([a, b], new Map())).toEqual(['10.201.0.130: a (h1) and b (h2)']);
    expect(dockerDuplicates([a, b], new Map([[0, [40]]]))).toEqual([]);
  });

  it('calls a request hung past its deadline, counted from the last fault that held it up', () => {
    const op = { host: 1, what: 'docker run x', asked: 0, answered: 50_000 };
    expect(hungRequests([op], [], 30_000)).toHaveLength(1);
    const plugin = { kind: 'plugin-kill', host: 1, started: 1_000, healed: 40_000 };
    expect(hungRequests([op], [plugin], 30_000)).toEqual([]);
    expect(hungRequests([op], [{ ...plugin, host: 0 }], 30_000)).toHaveLength(1);
  });
});
