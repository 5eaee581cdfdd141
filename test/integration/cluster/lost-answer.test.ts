// A release Docker asked for names an address and a pool, not a claim: when etcd's answer to it is lost (it committed,
// the client timed out), it stays queued and is applied again. It must never remove a claim this host made of the
// same address afterwards, for a new container: that container would run on an address another host can take.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ClusterKv, ClusterUnavailableError } from '../../../src/cluster/etcd';
import { formatIp } from '../../../src/ip/address';
import { EtcdCluster } from '../../lab/etcd';
import { PREFIX, Tables, cidr, heldIn, until } from './setup';

const cluster = EtcdCluster.onHost(`${PREFIX}l`, '127.0.0.1', 23870, 1);
let run = 0;
const tables = new Tables(() => ({ endpoints: cluster.endpoints, prefix: `/${PREFIX}/lost${run}` }));

beforeAll(async () => {
  await cluster.start();
}, 60_000);
afterEach(async () => {
  await tables.closeAll();
  run++;
});
afterAll(async () => {
  await tables.closeAll();
  await cluster.stop();
});

/**
 * The next replace fails as a call whose deadline passed would, and commits in etcd a moment later (a stopped member
 * resumed: the request was there all along); the ones after fail without reaching etcd until `heal` is called.
 */
function loseAnswers(kv: ClusterKv): { heal: () => void } {
  const replace = kv.replace.bind(kv);
  let state: 'lose' | 'down' | 'healed' = 'lose';
  kv.replace = async (...args) => {
    if (state === 'healed') return replace(...args);
    if (state === 'lose') setTimeout(() => void replace(...args), 200);
    state = 'down';
    throw new ClusterUnavailableError('etcd did not answer within the deadline (injected)');
  };
  return { heal: () => (state = 'healed') };
}

describe('a release whose answer from etcd was lost', () => {
  it('is applied again without touching a claim the same host made of the address since', async () => {
    const subnet = cidr('10.70.9.0/24');
    const only = subnet.base + 40n; // a one-address range: the next take can only be this address again
    const range = { subnet, lo: only, hi: only, kind: 'container' as const, ref: 'pool-1' };
    const a = tables.open('hostA');
    expect(await a.table.take(range)).toBe(only);

    const etcd = loseAnswers(a.kv.inner);
    // Durable and queued: Docker is told yes, the queue applies it again once etcd answers.
    expect(await a.table.release(subnet, only, 'pool-1')).toBe(true);
    expect(a.table.pendingReleases).toBe(1);
    await until(
      'the watch to show the address free',
      async () => (await a.table.holdings(subnet, only, only)).length === 0,
    );

    // etcd answers again, and a new container of the same pool asks before the queue's next try.
    etcd.heal();
    expect(await a.table.take(range)).toBe(only);
    const claim = (await heldIn(a.kv, subnet)).get(formatIp(false, only))!;
    expect(claim).toHaveLength(1);
    await a.table.drained();
    await new Promise((resolve) => setTimeout(resolve, 1500)); // past the queue's retry pause
    expect((await heldIn(a.kv, subnet)).get(formatIp(false, only))).toEqual(claim);
    expect(a.table.pendingReleases).toBe(0);
  });
});
