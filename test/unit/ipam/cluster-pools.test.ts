import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ClusterKv, ClusterUnavailableError } from '../../../src/cluster/etcd';
import { ClusterTable } from '../../../src/cluster/table';
import { IpamService } from '../../../src/ipam/service';
import { wantsCluster } from '../../../src/ipam/cluster-addresses';

const log = pino({ level: 'silent' });
const DOWN = 'reading /t/v1/subnets/10.79.0.0_24/addresses/ failed: could not reach etcd at http://127.0.0.1:1';

/**
 * An etcd that never answers: what the service does with the table's refusals (the table itself, a subnet in a local
 * and a cluster pool and a restart without --etcd are tested on a real one: test/integration/ipam/cluster-api.test.ts).
 */
const unreachable: ClusterKv = {
  endpoints: ['http://127.0.0.1:1'],
  prefix: '/t',
  range: () => Promise.reject(new ClusterUnavailableError(DOWN)),
  create: () => Promise.reject(new ClusterUnavailableError(DOWN)),
  replace: () => Promise.reject(new ClusterUnavailableError(DOWN)),
  watch: () => Promise.reject(new ClusterUnavailableError(DOWN)),
  close: async () => undefined,
};

let dir: string;
let opened: { ipam: IpamService; table?: ClusterTable }[];

function open(withEtcd: boolean): IpamService {
  const table = withEtcd
    ? ClusterTable.open({ kv: unreachable, instance: 'i1', stateDir: join(dir, 'cluster'), log })
    : undefined;
  const ipam = new IpamService(dir, log, table);
  opened.push({ ipam, ...(table && { table }) });
  return ipam;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tmvK-ipam-'));
  opened = [];
});

afterEach(async () => {
  for (const { ipam, table } of opened) {
    await ipam.close();
    await table?.close();
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('pools with the cluster table', () => {
  it('are cluster-wide by default, marked in their id; scope=host keeps one local', async () => {
    const ipam = open(true);
    const shared = await ipam.requestPool({ pool: '10.79.0.0/24', subPool: '10.79.0.0/25' });
    expect(shared.poolId).toBe('tsmacvlan:10.79.0.0/24,range=10.79.0.0/25,cluster');
    const local = await ipam.requestPool({ pool: '10.80.0.0/24', options: { scope: 'host' } });
    expect(local.poolId).toMatch(/^tsmacvlan:10\.80\.0\.0\/24,opts=[0-9a-f]{8}$/);
    expect(await ipam.requestAddress(local.poolId, '', null)).toBe('10.80.0.1/24');
  });

  it('fail closed when etcd does not answer: the error names etcd, nothing comes from the journal', async () => {
    const ipam = open(true);
    const { poolId } = await ipam.requestPool({ pool: '10.79.0.0/24' });
    await expect(ipam.requestAddress(poolId, '', null)).rejects.toThrow(DOWN);
    await expect(ipam.requestAddress(poolId, '10.79.0.9', null)).rejects.toThrow(/could not reach etcd/);
  });
});

describe('wantsCluster', () => {
  it('follows --etcd unless scope says otherwise, and refuses what it cannot honour', () => {
    expect(wantsCluster({}, true)).toBe(true);
    expect(wantsCluster({}, false)).toBe(false);
    expect(wantsCluster({ scope: 'host' }, true)).toBe(false);
    expect(wantsCluster({ scope: 'cluster' }, true)).toBe(true);
    expect(() => wantsCluster({ scope: 'cluster' }, false)).toThrow(/scope=cluster needs etcd/);
    expect(() => wantsCluster({ scope: 'site' }, true)).toThrow(/scope=site is not known: give scope=host/);
  });
});
