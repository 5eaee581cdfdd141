import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IpamService } from '../../../src/ipam/service';

const log = pino({ level: 'silent' });
const GW = { RequestAddressType: 'com.docker.network.gateway' };
const MAC = { 'com.docker.network.endpoint.macaddress': '02:42:0a:00:00:01' };

let dir: string;
let services: IpamService[];

function open(): IpamService {
  const service = new IpamService(dir, log);
  services.push(service);
  return service;
}

/** What a kill -9 leaves: the files as they are, nothing flushed by close(). */
async function reopen(previous: IpamService): Promise<IpamService> {
  await previous.close();
  return open();
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsmacvlan-ipam-'));
  services = [];
});

afterEach(async () => {
  for (const service of services) await service.close();
  rmSync(dir, { recursive: true, force: true });
});

function journalFiles(): string[] {
  return readdirSync(join(dir, 'ipam')).sort();
}

describe('pools', () => {
  it('needs --subnet, a valid one of the right family', async () => {
    const ipam = open();
    await expect(ipam.requestPool({ pool: '' })).rejects.toThrow(/does not choose subnets.*Pass --subnet/);
    await expect(ipam.requestPool({ pool: '10.79.0.5/24' })).rejects.toThrow(
      '--subnet 10.79.0.5/24 is not valid: it has host bits set; did you mean 10.79.0.0/24?',
    );
    await expect(ipam.requestPool({ pool: 'fd00::/64', v6: false })).rejects.toThrow(
      /is an IPv6 subnet, but Docker asked for an IPv4 pool/,
    );
    await expect(ipam.requestPool({ pool: '10.79.0.0/24', v6: true })).rejects.toThrow(
      /is an IPv4 subnet, but Docker asked for an IPv6 pool/,
    );
    await expect(ipam.requestPool({ pool: '10.79.0.0/24', subPool: '10.80.0.0/25' })).rejects.toThrow(
      '--ip-range 10.80.0.0/25 is not inside --subnet 10.79.0.0/24; give a range within the subnet, e.g. 10.79.0.0/24 itself',
    );
    await expect(ipam.requestPool({ pool: '10.79.0.0/24', subPool: '10.79.0.0/23' })).rejects.toThrow(/is not inside/);
    await expect(ipam.requestPool({ pool: '10.79.0.0/24', subPool: 'fd00::/120' })).rejects.toThrow(
      /is IPv6 but --subnet 10\.79\.0\.0\/24 is IPv4/,
    );
    await expect(ipam.requestPool({ pool: '10.79.0.0/24', subPool: '10.79.0.255/32' })).rejects.toThrow(
      /holds no address .* that can be assigned/,
    );
    expect(ipam.listPools()).toEqual([]);
    expect(journalFiles()).toEqual([]);
  });

  it('gives stable, self-describing PoolIDs and counts references', async () => {
    const ipam = open();
    const a = await ipam.requestPool({ pool: '10.79.0.0/24', subPool: '10.79.0.128/25', options: {} });
    expect(a).toEqual({ poolId: 'tsmacvlan:10.79.0.0/24,range=10.79.0.128/25', pool: '10.79.0.0/24' });
    const again = await ipam.requestPool({ pool: '10.79.0.0/24', subPool: '10.79.0.128/25', options: null });
    expect(again.poolId).toBe(a.poolId);
    const withOpts = await ipam.requestPool({ pool: '10.79.0.0/24', options: { scope: 'host' } });
    expect(withOpts.poolId).toMatch(/^tsmacvlan:10\.79\.0\.0\/24,opts=[0-9a-f]{8}$/);
    expect(ipam.listPools()).toEqual([
      {
        poolId: a.poolId,
        pool: '10.79.0.0/24',
        subPool: '10.79.0.128/25',
        v6: false,
        options: {},
        allocated: 0,
        refs: 2,
      },
      { poolId: withOpts.poolId, pool: '10.79.0.0/24', v6: false, options: { scope: 'host' }, allocated: 0, refs: 1 },
    ]);
    await ipam.releasePool(a.poolId);
    expect(await ipam.requestAddress(a.poolId, '', MAC)).toBe('10.79.0.128/24'); // still there: one reference left
    await ipam.releasePool(a.poolId);
    await expect(ipam.requestAddress(a.poolId, '', MAC)).rejects.toThrow(/is not known to tsmacvlan's IPAM/);
    await ipam.releasePool(a.poolId); // idempotent
    await ipam.releasePool(withOpts.poolId);
    expect(ipam.listPools()).toEqual([]);
    expect(journalFiles()).toEqual([]); // nothing allocated, nothing on disk
  });

  it('refuses an --ipam-opt it does not know by name, changing nothing; tolerates Docker-namespaced keys', async () => {
    const ipam = open();
    await expect(ipam.requestPool({ pool: '10.79.0.0/24', options: { scope: 'host', sope: 'host' } })).rejects.toThrow(
      "unknown --ipam-opt 'sope'; tsmacvlan's IPAM accepts: scope",
    );
    expect(ipam.listPools()).toEqual([]);
    expect(journalFiles()).toEqual([]);
    const docker = await ipam.requestPool({ pool: '10.79.0.0/24', options: { 'com.docker.network.ipam.x': '1' } });
    expect(docker.pool).toBe('10.79.0.0/24');
  });

  it('refuses a subnet overlapping one in use, and allows it once that is released', async () => {
    const ipam = open();
    const { poolId } = await ipam.requestPool({ pool: '10.79.0.0/24' });
    await expect(ipam.requestPool({ pool: '10.79.0.0/16' })).rejects.toThrow(
      `--subnet 10.79.0.0/16 overlaps subnet 10.79.0.0/24, which is in use (pool ${poolId}); use exactly 10.79.0.0/24 (several networks may share it, each with its own --ip-range) or a subnet that does not overlap`,
    );
    await expect(ipam.requestPool({ pool: '10.79.0.128/25' })).rejects.toThrow(/overlaps subnet 10\.79\.0\.0\/24/);
    expect((await ipam.requestPool({ pool: '10.79.1.0/24' })).pool).toBe('10.79.1.0/24');
    await ipam.releasePool(poolId);
    expect((await ipam.requestPool({ pool: '10.79.0.0/25' })).pool).toBe('10.79.0.0/25');
  });
});

describe('addresses', () => {
  it('serves the network of the issue: gateway, aux, static outside the range, dynamic inside', async () => {
    const ipam = open();
    const v4 = (await ipam.requestPool({ pool: '10.79.0.0/24', subPool: '10.79.0.128/25', options: {} })).poolId;
    const v6 = (await ipam.requestPool({ pool: 'fd00:79::/64', subPool: '', options: {}, v6: true })).poolId;
    expect(await ipam.requestAddress(v4, '10.79.0.1', GW)).toBe('10.79.0.1/24');
    expect(await ipam.requestAddress(v4, '10.79.0.250', null)).toBe('10.79.0.250/24');
    expect(await ipam.requestAddress(v6, '', GW)).toBe('fd00:79::1/64');
    expect(await ipam.requestAddress(v4, '10.79.0.77', MAC)).toBe('10.79.0.77/24');
    expect(await ipam.requestAddress(v6, '', MAC)).toBe('fd00:79::2/64');
    expect(await ipam.requestAddress(v4, '', MAC)).toBe('10.79.0.128/24');
    await expect(ipam.requestAddress(v4, '10.79.0.77', MAC)).rejects.toThrow(
      /10\.79\.0\.77 is already in use.*assigned to a container/,
    );
    await expect(ipam.requestAddress(v4, '10.79.1.77', MAC)).rejects.toThrow(
      `address 10.79.1.77 is not in subnet 10.79.0.0/24 of pool ${v4}`,
    );
    const pools = Object.fromEntries(ipam.listPools().map((p) => [p.poolId, p.allocated]));
    expect(pools).toEqual({ [v4]: 4, [v6]: 2 });
  });

  it('chooses the first usable address as gateway, and refuses it when a container has it', async () => {
    const ipam = open();
    const a = (await ipam.requestPool({ pool: '10.0.0.0/31' })).poolId;
    expect(await ipam.requestAddress(a, '', GW)).toBe('10.0.0.0/31');
    const b = (await ipam.requestPool({ pool: '10.1.0.0/24' })).poolId;
    expect(await ipam.requestAddress(b, '', MAC)).toBe('10.1.0.1/24');
    await expect(ipam.requestAddress(b, '', GW)).rejects.toThrow(
      /no --gateway was given, and the first address of subnet 10\.1\.0\.0\/24 \(10\.1\.0\.1\), which would be the gateway, is in use: it is assigned to a container .*; pass --gateway/,
    );
  });

  it('keeps the gateway and aux of one network away from the containers of another on the same subnet', async () => {
    const ipam = open();
    const whole = (await ipam.requestPool({ pool: '10.0.0.0/29' })).poolId; // .1 to .6
    const upper = (await ipam.requestPool({ pool: '10.0.0.0/29', subPool: '10.0.0.4/30', options: { scope: 'host' } }))
      .poolId;
    expect(await ipam.requestAddress(whole, '10.0.0.1', GW)).toBe('10.0.0.1/29');
    expect(await ipam.requestAddress(upper, '10.0.0.1', GW)).toBe('10.0.0.1/29'); // one router for both
    expect(await ipam.requestAddress(upper, '10.0.0.5', null)).toBe('10.0.0.5/29'); // aux
    const dynamic = [];
    for (let i = 0; i < 4; i++) dynamic.push(await ipam.requestAddress(whole, '', MAC));
    expect(dynamic).toEqual(['10.0.0.2/29', '10.0.0.3/29', '10.0.0.4/29', '10.0.0.6/29']);
    await expect(ipam.requestAddress(upper, '', MAC)).rejects.toThrow(
      /range 10\.0\.0\.4\/30 of subnet 10\.0\.0\.0\/29 \(3 addresses, all in use\): the range is exhausted/,
    );
    await expect(ipam.requestAddress(upper, '10.0.0.3', MAC)).rejects.toThrow(/already in use/);
    await expect(ipam.requestAddress(whole, '10.0.0.5', GW)).rejects.toThrow(
      /reserved \(aux address\).*choose another --gateway/,
    );
  });

  it('refuses hostile input with a clear message and changes nothing', async () => {
    const ipam = open();
    const v4 = (await ipam.requestPool({ pool: '10.0.0.0/24' })).poolId;
    const v6 = (await ipam.requestPool({ pool: 'fd00::/64', v6: true })).poolId;
    await ipam.requestAddress(v4, '10.0.0.9', MAC);
    const before = readFileSync(join(dir, 'ipam', '10.0.0.0_24.jnl'), 'utf8');
    const cases: [string, string, RegExp][] = [
      [v4, 'fd00::5', /address fd00::5 is IPv6, but pool tsmacvlan:10\.0\.0\.0\/24 is IPv4/],
      [v6, '10.0.0.5', /address 10\.0\.0\.5 is IPv4, but pool tsmacvlan:fd00::\/64 is IPv6/],
      [v4, '10.0.0.300', /'10\.0\.0\.300' is not an IP address \(expected e\.g\. 10\.0\.0\.1\)/],
      [v4, '10.0.0.5/16', /does not have the prefix length of subnet 10\.0\.0\.0\/24/],
      [v4, 'fd00::%eth0', /is not an IP address/],
      [v4, '10.0.0.255', /broadcast address/],
      ['tsmacvlan:10.0.0.0/24;rm -rf', '', /was not made by tsmacvlan's IPAM/],
      ['p-10.79.0.0/24', '', /was not made by tsmacvlan's IPAM .*--ipam-driver tsmacvlan/],
      ['tsmacvlan:10.9.0.0/24', '', /is not known to tsmacvlan's IPAM/],
    ];
    for (const [poolId, address, message] of cases) {
      await expect(ipam.requestAddress(poolId, address, MAC), `${poolId} ${address}`).rejects.toThrow(message);
    }
    await expect(ipam.releaseAddress(v4, 'fd00::5')).rejects.toThrow(/is IPv6/);
    await expect(ipam.releaseAddress(v4, 'nonsense')).rejects.toThrow(/is not an IP address/);
    await expect(ipam.releaseAddress(v4, '10.1.0.1')).rejects.toThrow(/is not in subnet/);
    await expect(ipam.releasePool('../../etc/passwd')).rejects.toThrow(/was not made by tsmacvlan's IPAM/);
    // Releasing what the pool does not hold is not an error and changes nothing.
    await ipam.releaseAddress(v4, '10.0.0.10');
    await ipam.releaseAddress('tsmacvlan:10.9.0.0/24', '10.9.0.1');
    expect(readFileSync(join(dir, 'ipam', '10.0.0.0_24.jnl'), 'utf8')).toBe(before);
    expect(ipam.listPools().map((p) => p.allocated)).toEqual([1, 0]);
  });

  it('never hands one address to two of many parallel requests', async () => {
    const ipam = open();
    const pool = (await ipam.requestPool({ pool: '10.0.0.0/24' })).poolId;
    const results = await Promise.allSettled(Array.from({ length: 300 }, () => ipam.requestAddress(pool, '', MAC)));
    const granted = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const refused = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
    expect(granted.length).toBe(254);
    expect(new Set(granted).size).toBe(254);
    expect(refused.length).toBe(46);
    expect(refused.every((m) => m.includes('exhausted'))).toBe(true);
    // Parallel requests shared syncs (group commit), and every grant is on disk.
    const { syncs, lines } = ipam.stats();
    expect(lines).toBeGreaterThanOrEqual(254);
    expect(syncs).toBeGreaterThan(0);
    expect(syncs).toBeLessThan(100);
    const again = await reopen(ipam);
    expect(again.listPools()[0].allocated).toBe(254);
    await expect(again.requestAddress(pool, '', MAC)).rejects.toThrow(/exhausted/);
  });

  it('parallel releases and requests on a full range stay consistent', async () => {
    const ipam = open();
    const pool = (await ipam.requestPool({ pool: '10.0.0.0/28' })).poolId; // 14 addresses
    const all = await Promise.all(Array.from({ length: 14 }, () => ipam.requestAddress(pool, '', MAC)));
    const toRelease = all.slice(0, 7).map((a) => a.split('/')[0]);
    const [, got] = await Promise.all([
      Promise.all(toRelease.map((a) => ipam.releaseAddress(pool, a))),
      Promise.all(Array.from({ length: 7 }, () => ipam.requestAddress(pool, '', MAC))),
    ]);
    expect(new Set(got).size).toBe(7);
    expect(got.sort()).toEqual(all.slice(0, 7).sort());
    expect(ipam.listPools()[0].allocated).toBe(14);
  });
});

describe('persistence', () => {
  it('finds every pool and address after a restart, with the same next addresses', async () => {
    let ipam = open();
    const v4 = (await ipam.requestPool({ pool: '10.79.0.0/24', subPool: '10.79.0.128/25', options: { scope: 'host' } }))
      .poolId;
    await ipam.requestPool({ pool: '10.79.0.0/24', subPool: '10.79.0.128/25', options: { scope: 'host' } });
    const v6 = (await ipam.requestPool({ pool: 'fd00:79::/64', v6: true })).poolId;
    await ipam.requestAddress(v4, '10.79.0.1', GW);
    await ipam.requestAddress(v4, '10.79.0.250', null);
    await ipam.requestAddress(v4, '10.79.0.77', MAC);
    for (let i = 0; i < 5; i++) await ipam.requestAddress(v4, '', MAC); // .128 to .132
    await ipam.releaseAddress(v4, '10.79.0.130');
    await ipam.releaseAddress(v4, '10.79.0.129');
    await ipam.requestAddress(v6, '', GW);
    await ipam.requestAddress(v6, '', MAC);
    const pools = ipam.listPools();

    ipam = await reopen(ipam);
    expect(ipam.listPools()).toEqual(pools);
    await expect(ipam.requestAddress(v4, '10.79.0.77', MAC)).rejects.toThrow(/already in use/);
    await expect(ipam.requestAddress(v4, '10.79.0.250', MAC)).rejects.toThrow(/aux address/);
    expect(await ipam.requestAddress(v4, '', MAC)).toBe('10.79.0.133/24'); // the cursor survived
    expect(await ipam.requestAddress(v6, '', MAC)).toBe('fd00:79::3/64');
    expect(ipam.listPools().find((p) => p.poolId === v4)?.refs).toBe(2);
    expect(ipam.listPools().find((p) => p.poolId === v4)?.options).toEqual({ scope: 'host' });
  });

  it('continues where it was after several restarts', async () => {
    let ipam = open();
    const pool = (await ipam.requestPool({ pool: '10.0.0.0/24' })).poolId;
    const got: string[] = [];
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 3; i++) got.push(await ipam.requestAddress(pool, '', MAC));
      await ipam.releaseAddress(pool, got.at(-2)!.split('/')[0]);
      ipam = await reopen(ipam);
    }
    expect(got).toEqual(Array.from({ length: 12 }, (_, i) => `10.0.0.${i + 1}/24`));
    expect(ipam.listPools()[0].allocated).toBe(8);
  });

  it('keeps release order across a restart', async () => {
    let ipam = open();
    const pool = (await ipam.requestPool({ pool: '10.0.0.0/29' })).poolId;
    for (let i = 0; i < 6; i++) await ipam.requestAddress(pool, '', MAC);
    await ipam.releaseAddress(pool, '10.0.0.5');
    await ipam.releaseAddress(pool, '10.0.0.2');
    ipam = await reopen(ipam);
    expect(await ipam.requestAddress(pool, '', MAC)).toBe('10.0.0.5/29');
    expect(await ipam.requestAddress(pool, '', MAC)).toBe('10.0.0.2/29');
  });

  it('ignores a torn last line and refuses a corrupt line in the middle', async () => {
    let ipam = open();
    const pool = (await ipam.requestPool({ pool: '10.0.0.0/24' })).poolId;
    await ipam.requestAddress(pool, '', MAC);
    await ipam.requestAddress(pool, '', MAC);
    await ipam.close();
    const file = join(dir, 'ipam', '10.0.0.0_24.jnl');
    appendFileSync(file, '{"t":"d","a":"10.0.0.3","p":1}\n{"t":"ok","a":"10.0.0.3","p":1}\n{"t":"d","a":"10.0.');
    ipam = open();
    expect(ipam.listPools()[0].allocated).toBe(3); // the complete line counts, the torn one does not
    expect(readFileSync(file, 'utf8').endsWith('\n')).toBe(true); // compacted at load
    expect(await ipam.requestAddress(pool, '', MAC)).toBe('10.0.0.4/24');
    await ipam.close();
    appendFileSync(file, 'garbage\n{"t":"d","a":"10.0.0.9","p":1}\n');
    expect(() => new IpamService(dir, log)).toThrow(
      /IPAM state file .*10\.0\.0\.0_24\.jnl line \d+ is not valid JSON.*fix or remove the line/,
    );
  });

  it('rolls back at start what was saved but never answered (a crash came between the two), and keeps what was', async () => {
    let ipam = open();
    const pool = (await ipam.requestPool({ pool: '10.0.0.0/24' })).poolId;
    await ipam.requestAddress(pool, '', { RequestAddressType: 'com.docker.network.gateway' }); // .1, answered
    await ipam.requestAddress(pool, '10.0.0.20', MAC); // answered
    await ipam.close();
    const file = join(dir, 'ipam', '10.0.0.0_24.jnl');
    // As a crash leaves them: a second reference to the pool, a second gateway request, a static and a dynamic
    // address, all saved, none answered; and one more address answered just before the crash.
    appendFileSync(
      file,
      [
        `{"t":"acquire","p":1,"id":"${pool}","range":null,"options":{}}`,
        '{"t":"g","a":"10.0.0.1","p":1}',
        '{"t":"s","a":"10.0.0.21","p":1}',
        '{"t":"d","a":"10.0.0.2","p":1}',
        '{"t":"d","a":"10.0.0.3","p":1}',
        '{"t":"ok","a":"10.0.0.3","p":1}',
        '',
      ].join('\n'),
    );
    ipam = open();
    expect(ipam.listPools()).toMatchObject([{ poolId: pool, refs: 1, allocated: 3 }]); // .1, .20, .3
    expect(await ipam.requestAddress(pool, '10.0.0.21', MAC)).toBe('10.0.0.21/24'); // the user's retry works
    await expect(ipam.requestAddress(pool, '10.0.0.3', MAC)).rejects.toThrow(/already in use/);
    await expect(ipam.requestAddress(pool, '10.0.0.20', MAC)).rejects.toThrow(/already in use/);
    // One ReleaseAddress of the gateway and one ReleasePool, as Docker sends them, leave nothing.
    for (const address of ['10.0.0.1', '10.0.0.3', '10.0.0.20', '10.0.0.21']) await ipam.releaseAddress(pool, address);
    await ipam.releasePool(pool);
    expect(ipam.listPools()).toEqual([]);
    await ipam.close();
    expect(journalFiles()).toEqual([]);
  });

  it('removes a state file without one complete line', () => {
    mkdirSync(join(dir, 'ipam'), { recursive: true });
    writeFileSync(join(dir, 'ipam', '10.5.0.0_24.jnl'), '{"t":"sub');
    const ipam = open();
    expect(ipam.listPools()).toEqual([]);
    expect(journalFiles()).toEqual([]);
  });

  it('removes a leftover temp file of a compaction cut short', async () => {
    let ipam = open();
    const pool = (await ipam.requestPool({ pool: '10.0.0.0/24' })).poolId;
    await ipam.requestAddress(pool, '', MAC);
    await ipam.close();
    writeFileSync(join(dir, 'ipam', '10.0.0.0_24.jnl.tmp'), '{"t":"subnet","sub');
    ipam = open();
    expect(journalFiles()).toEqual(['10.0.0.0_24.jnl']);
    expect(ipam.listPools()[0].allocated).toBe(1);
  });

  it('journals one line per change and compacts when it grows past twice the live state', async () => {
    const ipam = open();
    const pool = (await ipam.requestPool({ pool: '10.0.0.0/24' })).poolId;
    const file = join(dir, 'ipam', '10.0.0.0_24.jnl');
    const lines = () => readFileSync(file, 'utf8').trimEnd().split('\n').length;
    await ipam.requestAddress(pool, '', MAC);
    const start = lines();
    await ipam.requestAddress(pool, '', MAC);
    expect(lines()).toBe(start + 2); // the change and its answer mark
    let max = 0;
    for (let i = 0; i < 500; i++) {
      const address = await ipam.requestAddress(pool, '', MAC);
      await ipam.releaseAddress(pool, address.split('/')[0]);
      max = Math.max(max, lines());
    }
    // Live state: header, pool, lane, 2 addresses, and the released addresses queued for reuse (at most 252, one
    // line each in the snapshot's weight): the journal never grows past twice that plus 64 lines, and was compacted.
    expect(max).toBeLessThanOrEqual(2 * (5 + 252) + 64 + 1);
    expect(ipam.stats().snapshots).toBeGreaterThanOrEqual(2);
    const reopened = await reopen(ipam);
    expect(reopened.listPools()[0].allocated).toBe(2);
  });

  it('compacts rarely while a full subnet is emptied (the snapshot cost is spread over the lines before it)', async () => {
    const ipam = open();
    const pool = (await ipam.requestPool({ pool: '10.0.0.0/22' })).poolId;
    const all = await Promise.all(Array.from({ length: 1022 }, () => ipam.requestAddress(pool, '', MAC)));
    const before = ipam.stats().snapshots;
    for (const address of all) await ipam.releaseAddress(pool, address.split('/')[0]);
    expect(ipam.stats().snapshots - before).toBeLessThanOrEqual(2);
    const again = await reopen(ipam);
    expect(again.listPools()[0].allocated).toBe(0);
    expect(await again.requestAddress(pool, '', MAC)).toBe('10.0.0.1/22'); // the first released, first again
  });

  it('state on disk grows with what is allocated, not with the subnet', async () => {
    const ipam = open();
    const v4 = (await ipam.requestPool({ pool: '10.0.0.0/8' })).poolId;
    const v6 = (await ipam.requestPool({ pool: 'fd00::/48', v6: true })).poolId;
    await ipam.requestAddress(v4, '', MAC);
    await ipam.requestAddress(v6, '', MAC);
    for (const file of journalFiles()) expect(readFileSync(join(dir, 'ipam', file)).length).toBeLessThan(400);
  });

  it('rolls back an address whose write failed, and hands it out once the disk works again', async () => {
    let ipam = open();
    const pool = (await ipam.requestPool({ pool: '10.0.0.0/24' })).poolId;
    await ipam.requestAddress(pool, '', MAC);
    ipam = await reopen(ipam); // the next write opens the file afresh
    const file = join(dir, 'ipam', '10.0.0.0_24.jnl');
    renameSync(file, `${file}.saved`);
    mkdirSync(file); // appending fails (EISDIR), and so does the rewrite:
    mkdirSync(`${file}.tmp`);
    await expect(ipam.requestAddress(pool, '', MAC)).rejects.toThrow(
      /could not save the IPAM state to .*10\.0\.0\.0_24\.jnl \(EISDIR.*\); nothing was assigned/,
    );
    expect(ipam.listPools()[0].allocated).toBe(1);
    rmSync(file, { recursive: true });
    rmSync(`${file}.tmp`, { recursive: true });
    // The file is rewritten from memory; the rolled-back .2 went back to the line (behind never-used addresses).
    expect(await ipam.requestAddress(pool, '', MAC)).toBe('10.0.0.3/24');
    expect(await ipam.requestAddress(pool, '10.0.0.2', MAC)).toBe('10.0.0.2/24');
    expect(existsSync(file)).toBe(true);
    ipam = await reopen(ipam);
    expect(ipam.listPools()[0].allocated).toBe(3);
  });

  it('a pool whose write failed does not exist', async () => {
    const ipam = open();
    mkdirSync(join(dir, 'ipam', '10.0.0.0_24.jnl.tmp'));
    await expect(ipam.requestPool({ pool: '10.0.0.0/24' })).rejects.toThrow(
      /could not save .*EISDIR.*nothing was assigned/,
    );
    expect(ipam.listPools()).toEqual([]);
    await expect(ipam.requestAddress('tsmacvlan:10.0.0.0/24', '', MAC)).rejects.toThrow(/not known/);
  });
});
