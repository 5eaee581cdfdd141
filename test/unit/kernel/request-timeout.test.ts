// The deadline of a netlink request: it fails what never comes, and not what was waiting while the loop was stalled.
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { withTimeout } from '../../../src/kernel/request-timeout';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

it('rejects with ETIMEDOUT a request that never settles', async () => {
  await expect(withTimeout(new Promise(() => undefined), 5)).rejects.toThrow(/no reply within 5 ms: ETIMEDOUT/);
});

it('answers with what the request gives, and passes its failure on', async () => {
  await expect(withTimeout(Promise.resolve('reply'), 1000)).resolves.toBe('reply');
  await expect(withTimeout(Promise.reject(new Error('EEXIST')), 1000)).rejects.toThrow('EEXIST');
});

it('takes a reply that was already waiting in a socket when a stalled loop finds the deadline passed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tmvN-timeout-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 's');
  const accepted = new Promise<Socket>((resolve) => {
    const server = createServer(resolve).listen(path);
    cleanups.push(() => server.close());
  });
  const client = createConnection(path);
  cleanups.push(() => client.destroy());
  const receiver = await accepted;
  cleanups.push(() => receiver.destroy());

  const reply = new Promise<string>((resolve) => receiver.once('data', (data) => resolve(String(data))));
  const answer = withTimeout(reply, 20);
  await new Promise<void>((resolve) => client.write('reply', () => resolve()));
  // The loop stalls past the deadline with the reply in the socket: the timer fires first, the socket is read next.
  const stalledUntil = Date.now() + 100;
  while (Date.now() < stalledUntil);
  await expect(answer).resolves.toBe('reply');
});
