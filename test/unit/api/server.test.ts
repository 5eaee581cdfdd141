// The HTTP layer on its own: what a stop does to the requests and connections in flight.
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, expect, it } from 'vitest';
import { buildServer, type Services } from '../../../src/api/server';

const dir = mkdtempSync(join(tmpdir(), 'tsmv-server-'));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

it('answers a request in flight when the stop begins with Connection: close, so a kept-alive connection does not hold the stop', async () => {
  let release!: () => void;
  const ready = new Promise<void>((resolve) => (release = resolve));
  // Plugin.Activate touches no service; `ready` holds the request until the stop has begun.
  const app = buildServer({} as Services, pino({ level: 'silent' }), ready);
  const socketPath = join(dir, 'p.sock');
  await app.listen({ path: socketPath });
  const agent = new http.Agent({ keepAlive: true });
  const answered = new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.request({ socketPath, path: '/Plugin.Activate', method: 'POST', agent }, (res) => {
      res.resume();
      resolve(res);
    });
    req.on('error', reject);
    req.end();
  });
  await new Promise((r) => setTimeout(r, 50)); // the request has reached the server and waits on `ready`
  const closed = app.close();
  await new Promise((r) => setTimeout(r, 50)); // the stop has begun (its preClose hooks have run)
  release();
  const res = await answered;
  expect(res.statusCode).toBe(200);
  expect(res.headers.connection).toBe('close');
  await closed;
  agent.destroy();
});
