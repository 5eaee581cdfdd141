// The etcd deadline counts etcd's time only: time this process could not run (a stalled event loop: a busy host, a
// long GC, a burst of requests ahead of it), with requests waiting to be sent or answers waiting to be read, is not
// counted, so a healthy etcd never fails a request for time the plugin itself spent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatIp } from '../../../src/ip/address';
import { EtcdCluster } from '../../lab/etcd';
import { PREFIX, Tables, bounds, cidr, heldIn, until } from './setup';

const cluster = EtcdCluster.onHost(`${PREFIX}d`, '127.0.0.1', 23760);
const tables = new Tables(() => ({ endpoints: cluster.endpoints, prefix: `/${PREFIX}/deadline` }));
/** Short, so the stall can outlast it: longer than the deadline, far longer than etcd's answer, within the grace. */
const DEADLINE_MS = 300;
const STALL_MS = 900;
const TAKES = 20;

beforeAll(async () => {
  await cluster.start();
}, 60_000);
afterAll(async () => {
  await tables.closeAll();
  await cluster.stop();
});

/** Keeps this process's event loop from running for `ms`, as a burst of work ahead of a request would. */
function stall(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // busy: no timer, no socket read
  }
}

describe('the etcd deadline', () => {
  it('does not count time the event loop was stalled: answers etcd gave meanwhile are taken', async () => {
    const subnet = cidr('10.71.0.0/24');
    const { lo, hi } = bounds(subnet);
    const a = tables.open('hostA', undefined, { timeoutMs: DEADLINE_MS });
    await a.table.take({ subnet, lo, hi, kind: 'container', ref: 'warm', address: lo });
    const sentBefore = a.kv.counts.create;
    // Given addresses: no per-range gate, all transactions are sent at once.
    const takes = Array.from({ length: TAKES }, (_, i) =>
      a.table.take({ subnet, lo, hi, kind: 'container', ref: `c${i}`, address: lo + 1n + BigInt(i) }).then(
        (address) => formatIp(false, address),
        (err: Error) => err,
      ),
    );
    await until('every transaction is on its way', () => a.kv.counts.create - sentBefore === TAKES, 2000, 1);
    // Let the writes reach the sockets, then stall while etcd answers.
    // (In a check-phase callback, as work done on a request would be: the loop's next turn starts with its timers.)
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        stall(STALL_MS);
        resolve();
      }),
    );
    const outcomes = await Promise.all(takes);
    const failed = outcomes.filter((o): o is Error => o instanceof Error);
    console.log(
      `after a ${STALL_MS} ms stall: ${TAKES - failed.length} of ${TAKES} taken; ${failed[0]?.message ?? ''}`,
    );
    expect(failed.map((e) => e.message)).toEqual([]);
    expect((await heldIn(a.kv, subnet)).size).toBe(TAKES + 1);
    // And the next call is not failed fast for it either.
    await a.table.take({ subnet, lo, hi, kind: 'container', ref: 'after' });
  });
});
