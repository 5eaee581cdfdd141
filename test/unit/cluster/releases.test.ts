import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { ClusterKv, KvEntry, TxnResult } from '../../../src/cluster/etcd';
import { IntentLog, rewriteIntents } from '../../../src/cluster/intents';
import { addressKey, encodeClaims } from '../../../src/cluster/keys';
import { ReleaseQueue } from '../../../src/cluster/releases';
import { SubnetView } from '../../../src/cluster/view';
import { setIoFault } from '../../../src/state/faults';
import { formatIp, parseCidr } from '../../../src/ip/address';

const subnet = (() => {
  const r = parseCidr('10.8.0.0/24');
  if (!r.ok) throw new Error(r.why);
  return r.cidr;
})();
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A kv whose replaces wait until `release()` lets them through, and always succeed. */
class GatedKv implements ClusterKv {
  readonly endpoints = ['http://fake:2379'];
  readonly prefix = '/p';
  replaced: string[] = [];
  private waiting: (() => void)[] = [];
  private revision = 100n;
  async range(): Promise<{ entries: KvEntry[]; revision: bigint }> {
    return { entries: [], revision: this.revision };
  }
  async create(): Promise<TxnResult> {
    throw new Error('not used');
  }
  async replace(key: string): Promise<TxnResult> {
    await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.replaced.push(key);
    return { ok: true, revision: ++this.revision };
  }
  async watch() {
    return { cancel: async () => undefined };
  }
  async close() {}
  release(): void {
    for (const go of this.waiting.splice(0)) go();
  }
}

function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not in 3 s`)), 3000)),
  );
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** A queue of instance 'me' over one view holding `claims` (offset in the subnet, ref, token), on a GatedKv. */
function queueOver(claims: [bigint, string, string][]) {
  const dir = mkdtempSync(join(tmpdir(), 'tmvE-unit-'));
  dirs.push(dir);
  const path = join(dir, 'cluster-intents.log');
  rewriteIntents(path, []);
  const kv = new GatedKv();
  const view = new SubnetView(subnet, '/p');
  const entries = claims.map(([offset, ref, at], i) => ({
    key: addressKey('/p', subnet, subnet.base + offset),
    value: encodeClaims([{ owner: 'me', kind: 'container', ref, at }]),
    modRevision: 10n + BigInt(i),
  }));
  view.load(entries, 10n + BigInt(claims.length));
  const log = new IntentLog(
    path,
    () => [],
    () => 0,
    pino({ level: 'silent' }),
    1,
  );
  const queue = new ReleaseQueue(
    log,
    pino({ level: 'silent' }),
    'me',
    kv,
    async () => view,
    () => [],
    [],
  );
  return { kv, view, log, queue };
}

describe('release queue', () => {
  it('a release the intent log cannot hold (a full disk) is still applied: refused, Docker would never ask again', async () => {
    const { kv, view, log, queue } = queueOver([[5n, 'p1', 't1']]);
    setIoFault('ENOSPC:write,sync:cluster-intents');
    try {
      const answered = queue.release(subnet.text, formatIp(false, subnet.base + 5n), 'p1');
      for (let i = 0; i < 10 && kv.replaced.length < 1; i++) {
        kv.release();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(await within(answered, 'the release answered')).toBe(true);
      expect(kv.replaced).toEqual([addressKey('/p', subnet, subnet.base + 5n)]);
      expect(view.held.size).toBe(0);
    } finally {
      setIoFault(undefined);
      queue.stop();
      await log.close();
    }
  });

  it('applies a release queued while the loop is applying another', async () => {
    const { kv, view, log, queue } = queueOver([
      [5n, 'r', 't1'],
      [6n, 'r', 't2'],
    ]);
    queue.enqueueKnown({ id: 't1', subnet: subnet.text, at: 't1' });
    await new Promise((resolve) => setImmediate(resolve));
    queue.enqueueKnown({ id: 't2', subnet: subnet.text, at: 't2' });
    for (let i = 0; i < 10 && kv.replaced.length < 2; i++) {
      kv.release();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await within(queue.drained(), 'both releases applied');
    expect(kv.replaced.sort()).toEqual([5n, 6n].map((n) => addressKey('/p', subnet, subnet.base + n)));
    expect(view.held.size).toBe(0);
    queue.stop();
    await log.close();
  });

  it('a take waits only for a release of its own pool or address, however many others are queued', async () => {
    const { kv, view, log, queue } = queueOver([
      [5n, 'p1', 't1'],
      [6n, 'p2', 't2'],
      [7n, 'p2', 't3'],
    ]);
    const at = (n: bigint) => subnet.base + n;
    // Both stay queued until the kv lets their transactions through.
    const pool = queue.releasePool(subnet.text, 'p1');
    const one = queue.release(subnet.text, formatIp(false, at(6n)), 'p2');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(queue.pendingPool(subnet.text, 'p1')).toBeDefined();
    expect(queue.pendingPool(subnet.text, 'p2')).toBeUndefined();
    expect(queue.pendingPool('10.9.9.0/24', 'p1')).toBeUndefined();
    await within(queue.settleOwn(view, at(7n)), 'a take of another address, not waiting');
    let settled = false;
    const waiting = queue.settleOwn(view, at(6n)).then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(settled).toBe(false);
    for (let i = 0; i < 10 && !settled; i++) {
      kv.release();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await within(waiting, 'the take of the released address, once its release is applied');
    for (let i = 0; i < 10 && queue.size > 0; i++) {
      kv.release();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await within(Promise.all([pool, one]), 'both releases answered');
    expect(queue.pendingPool(subnet.text, 'p1')).toBeUndefined();
    expect([...view.held.keys()]).toEqual([at(7n)]);
    queue.stop();
    await log.close();
  });

  it('a release due waits for its time, then releases its claim by token, never a newer claim of the address', async () => {
    const { kv, view, log, queue } = queueOver([
      [5n, 'r', 'old'],
      [6n, 'r', 't6'],
    ]);
    const key = (n: bigint) => addressKey('/p', subnet, subnet.base + n);
    const after = Date.now() + 150;
    await queue.releaseLater({ id: 'due-old', subnet: subnet.text, at: 'old', after });
    await queue.releaseLater({ id: 'due-t6', subnet: subnet.text, at: 't6', after });
    // Kept in the log's live lines (a rewrite keeps them, a restart finds them).
    expect(queue.lines()).toEqual([
      { t: 'release', id: 'due-old', subnet: subnet.text, at: 'old', after },
      { t: 'release', id: 'due-t6', subnet: subnet.text, at: 't6', after },
    ]);
    // Docker's own release of .5 came, and the address went to the next container.
    const next = encodeClaims([{ owner: 'me', kind: 'container', ref: 'r', at: 'new' }]);
    view.put({ key: key(5n), value: next, modRevision: 50n });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(queue.size).toBe(0); // not queued before its time
    for (let i = 0; i < 50 && kv.replaced.length === 0; i++) {
      kv.release();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await within(queue.drained(), 'the dues applied');
    expect(Date.now()).toBeGreaterThanOrEqual(after);
    expect(kv.replaced).toEqual([key(6n)]);
    expect(view.held.get(subnet.base + 5n)?.value).toBe(next);
    expect(queue.lines()).toEqual([]);
    queue.stop();
    await log.close();
  });
});
