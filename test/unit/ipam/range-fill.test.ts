// How full each range is: the figure behind the metrics' allocated and capacity gauges and status's range table.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addressKey, encodeClaims } from '../../../src/cluster/keys';
import { SubnetView } from '../../../src/cluster/view';
import { IpamService } from '../../../src/ipam/service';
import { parseCidr } from '../../../src/ip/address';
import { fillClusterRows, rangeCells, type RangeRow } from '../../../src/inspect/range-rows';

const GW = { RequestAddressType: 'com.docker.network.gateway' };
let dir: string;
let ipam: IpamService;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsmv-fill-'));
  ipam = new IpamService(dir, pino({ level: 'silent' }));
});
afterEach(async () => {
  await ipam.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('range fill of local pools', () => {
  it('counts every address in use inside each range, whoever holds it, once per range', async () => {
    // Two ranges of one subnet, and a second network sharing the first range (other --ipam-opt: another pool).
    const a = (await ipam.requestPool({ pool: '10.5.0.0/24', subPool: '10.5.0.0/28' })).poolId;
    const b = (
      await ipam.requestPool({ pool: '10.5.0.0/24', subPool: '10.5.0.0/28', options: { 'com.docker.network.x': '1' } })
    ).poolId;
    const c = (await ipam.requestPool({ pool: '10.5.0.0/24', subPool: '10.5.0.128/25' })).poolId;
    await ipam.requestAddress(a, '10.5.0.1', GW); // a gateway inside the first range takes one of its addresses
    await ipam.requestAddress(a, undefined, {});
    await ipam.requestAddress(b, undefined, {});
    await ipam.requestAddress(c, '10.5.0.200', {}); // --ip in c's range
    await ipam.requestAddress(c, '10.5.0.100', {}); // --ip outside every range
    expect(ipam.rangeFills()).toEqual([
      { subnet: '10.5.0.0/24', range: '10.5.0.0/28', scope: 'host', allocated: 3, capacity: 15n },
      { subnet: '10.5.0.0/24', range: '10.5.0.128/25', scope: 'host', allocated: 1, capacity: 127n },
    ]);
  });

  it('a pool without --ip-range fills the whole subnet; a released address is free again', async () => {
    const pool = (await ipam.requestPool({ pool: '10.6.0.0/29' })).poolId;
    const address = await ipam.requestAddress(pool, undefined, {});
    expect(ipam.rangeFills()).toEqual([
      { subnet: '10.6.0.0/29', range: '10.6.0.0/29', scope: 'host', allocated: 1, capacity: 6n },
    ]);
    await ipam.releaseAddress(pool, address);
    expect(ipam.rangeFills()[0].allocated).toBe(0);
  });
});

describe('range rows of status', () => {
  const cidr = (text: string) => {
    const parsed = parseCidr(text);
    if (!parsed.ok) throw new Error(parsed.why);
    return parsed.cidr;
  };

  it("fill cluster-wide rows from etcd's view: this host's claims and every host's, in the range only", () => {
    const subnet = cidr('10.7.0.0/24');
    const view = new SubnetView(subnet, '/p');
    const claim = (n: number, owner: string) => ({
      key: addressKey('/p', subnet, subnet.base + BigInt(n)),
      value: encodeClaims([{ owner, kind: 'container', ref: 'r', at: `${owner}${n}` }]),
      modRevision: BigInt(n),
    });
    view.load([claim(1, 'me'), claim(2, 'other'), claim(3, 'me'), claim(200, 'me')], 300n);
    const row = (scope: 'host' | 'cluster'): RangeRow => ({
      subnet: '10.7.0.0/24',
      range: '10.7.0.0/25',
      scope,
      allocated: null,
      capacity: '127',
    });
    const local: RangeRow = { ...row('host'), subnet: '10.8.0.0/24', range: '10.8.0.0/24', allocated: 4 };
    const filled = fillClusterRows([row('host'), row('cluster'), local], [view], 'me');
    expect(filled.map((r) => r.allocated)).toEqual([2, 3, 4]);
    expect(rangeCells(filled)).toEqual([
      ['10.7.0.0/24', '10.7.0.0/25', 'host', '2', '127', '1.6%'],
      ['10.7.0.0/24', '10.7.0.0/25', 'cluster', '3', '127', '2.4%'],
      ['10.8.0.0/24', '10.8.0.0/24', 'host', '4', '127', '3.1%'],
    ]);
    expect(rangeCells([row('cluster')])).toEqual([
      ['10.7.0.0/24', '10.7.0.0/25', 'cluster', '- (give --etcd)', '127', '-'],
    ]);
  });
});
