// A pool of --ipam-opt ipv6=slaac whose prefix the router stops offering, through the IPAM's own journal to what
// `status` and `doctor` read: the IPAM (with a stand-in for the router listener) journals the loss with the pool, it
// survives a restart of the IPAM, status marks the pool, its network and the endpoints holding addresses in it, doctor
// warns with a fix to act on, and the prefix advertised again clears all of it.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { EndpointRecord } from '../../../src/driver/endpoint-naming';
import type { NetworkRecord } from '../../../src/driver/network-options';
import { poolPrefixChecks } from '../../../src/inspect/doctor/pool-prefixes';
import { collectStatus, formatStatus } from '../../../src/inspect/status';
import { STATUS_JSON_SCHEMA } from '../../../src/inspect/status-schema';
import { readState } from '../../../src/inspect/state-snapshot';
import { IpamService } from '../../../src/ipam/service';
import type { PrefixChange, RouterPrefixes } from '../../../src/ipam/slaac-pool';
import type { Links } from '../../../src/kernel/links';

const PREFIX = 'fd0a:0:0:1::/64';
const PARENT = 'eth9';
const NET = 'a'.repeat(64);
const HOLDER = 'b'.repeat(64);
const OTHER = 'c'.repeat(64);
const validate = new Ajv({ allErrors: true }).compile(STATUS_JSON_SCHEMA);
const noLinks = { list: async () => [] } as unknown as Links;

/** The router listener as the IPAM sees it: the prefix at once, and changes when the test says. */
function routers(): RouterPrefixes & { tell(change: Omit<PrefixChange, 'parent' | 'prefix'>): void } {
  const listeners: ((change: PrefixChange) => void)[] = [];
  return {
    learn: async () => PREFIX,
    rewatch: async () => undefined,
    release: () => undefined,
    onChange: (listener) => void listeners.push(listener),
    tell: (change) => listeners.forEach((l) => l({ parent: PARENT, prefix: PREFIX, ...change })),
  };
}

async function until<T>(read: () => T, done: (value: T) => boolean): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const value = read();
    if (done(value)) return value;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return read();
}

describe('a pool of ipv6=slaac whose prefix the router no longer offers', () => {
  const root = mkdtempSync(join(tmpdir(), 'st-pool-prefix-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const routerPool = () => readState(root).pools.find((p) => p.pool === PREFIX)!;

  it('is journaled with the pool, kept across a restart, shown by status and doctor, and cleared when offered again', async () => {
    const router = routers();
    let ipam = new IpamService(root, pino({ level: 'silent' }), undefined, undefined, undefined, router);
    const options = { ipv6: 'slaac', parent: PARENT };
    const { poolId, pool } = await ipam.requestPool({ pool: '', v6: true, options });
    expect(pool).toBe(PREFIX);
    await ipam.requestPool({ pool: 'fd0b::/64', v6: true }); // another pool: never marked
    const address = await ipam.requestAddress(poolId, undefined, {});
    for (const sub of ['networks', 'endpoints']) mkdirSync(join(root, sub), { recursive: true });
    const network: NetworkRecord = {
      id: NET,
      parent: PARENT,
      ownsParent: false,
      kind: 'macvlan',
      mode: 'bridge',
      internal: false,
      ipv6: { pool: PREFIX },
    };
    const endpoints: EndpointRecord[] = [
      { id: HOLDER, networkId: NET, mac: '02:42:0a:00:00:01', ipv6: address },
      { id: OTHER, networkId: 'd'.repeat(64), mac: '02:42:0a:00:00:02', ipv4: '10.0.0.2/24' },
    ];
    writeFileSync(join(root, 'networks', `${NET}.json`), JSON.stringify(network));
    for (const e of endpoints) writeFileSync(join(root, 'endpoints', `${e.id}.json`), JSON.stringify(e));
    expect(routerPool().routerPrefix).toEqual({ parent: PARENT, state: 'valid', since: null });
    expect(poolPrefixChecks(readState(root))).toMatchObject([{ id: 'ipv6-pool-prefixes', status: 'OK' }]);

    const before = Date.now();
    router.tell({ condition: 'withdrawn' });
    router.tell({ condition: 'withdrawn' }); // repeated adverts: one mark, its first time
    const lost = await until(routerPool, (p) => p.routerPrefix?.state === 'withdrawn');
    expect(lost.routerPrefix).toMatchObject({ parent: PARENT, state: 'withdrawn' });
    const since = lost.routerPrefix!.since!;
    expect(Date.parse(since)).toBeGreaterThanOrEqual(before - 1000);
    await ipam.close();
    ipam = new IpamService(root, pino({ level: 'silent' }), undefined, undefined, undefined, router);
    expect(routerPool().routerPrefix).toEqual({ parent: PARENT, state: 'withdrawn', since });
    expect(readState(root).pools.find((p) => p.pool === 'fd0b::/64')!.routerPrefix).toBeNull();

    const report = await collectStatus(root, 'tsmacvlan-unit', noLinks);
    expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
    const loss = { prefix: PREFIX, parent: PARENT, state: 'withdrawn', since };
    expect(report.networks.find((n) => n.id === NET)!.prefixLost).toEqual(loss);
    expect(report.endpoints.find((e) => e.id === HOLDER)!.prefixLost).toEqual(loss);
    expect(report.endpoints.find((e) => e.id === OTHER)!.prefixLost).toBeNull();
    const text = formatStatus(report);
    expect(text).toContain(`${PREFIX} (router on ${PARENT}: withdrawn since ${since})`);
    expect(text).toMatch(new RegExp(`^${NET.slice(0, 12)} .* ${PREFIX} \\(prefix withdrawn\\) +1$`, 'm'));
    expect(text).toMatch(new RegExp(`^${HOLDER.slice(0, 12)} .* ${address} \\(prefix withdrawn\\)$`, 'm'));

    const [check, ...more] = poolPrefixChecks(readState(root));
    expect(more).toEqual([]);
    expect(check).toMatchObject({ id: `ipv6-pool-prefix:${PREFIX}`, status: 'WARN' });
    expect(check!.message).toContain(`the router on ${PARENT} no longer offers ${PREFIX}`);
    expect(check!.message).toContain(`withdrawn since ${since}`);
    expect(check!.message).toContain(`${HOLDER.slice(0, 12)} (${address})`);
    expect(check!.fix).toMatch(/cannot renumber/);
    expect(check!.fix).toContain(`docker network rm <network>`);
    expect(check!.fix).toContain(`--ipam-opt ipv6=slaac --ipam-opt parent=${PARENT}`);

    router.tell({ condition: 'expired' }); // another loss replaces it
    expect((await until(routerPool, (p) => p.routerPrefix?.state === 'expired')).routerPrefix?.state).toBe('expired');
    router.tell({ condition: 'valid' });
    expect((await until(routerPool, (p) => p.routerPrefix?.state === 'valid')).routerPrefix).toEqual({
      parent: PARENT,
      state: 'valid',
      since: null,
    });
    expect(poolPrefixChecks(readState(root))).toMatchObject([{ id: 'ipv6-pool-prefixes', status: 'OK' }]);
    await ipam.close();
  });
});
