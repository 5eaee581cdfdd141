// The HTTP layer on its own: what a stop does to the requests and connections in flight.
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { buildServer, requestsInFlight, type Services } from '../../../src/api/server';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsmv-server-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Polls a condition every few ms, for at most 5 s. */
async function until(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; !condition(); i++) {
    if (i === 1000) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

it('answers a request in flight when the stop begins with Connection: close, so a kept-alive connection does not hold the stop', async () => {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  // Plugin.Activate touches no service; `ready` holds the request until the stop has begun, and says when the
  // server awaits it (the request has then reached the server).
  let reached = false;
  const ready = {
    then: (resolve: () => void, reject: (err: unknown) => void) => {
      reached = true;
      return released.then(resolve, reject);
    },
  } as Promise<void>;
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
  await until('the request reached the server and waits on `ready`', () => reached);
  // What a stop that misses its deadline logs.
  expect(requestsInFlight(app)).toEqual([expect.stringMatching(/^\/Plugin\.Activate for \d+\.\d s$/)]);
  const closed = app.close();
  // Fastify stops listening once the preClose hooks have run.
  await until('the stop has begun', () => !app.server.listening);
  release();
  const res = await answered;
  expect(res.statusCode).toBe(200);
  expect(res.headers.connection).toBe('close');
  await closed;
  expect(requestsInFlight(app)).toEqual([]);
  agent.destroy();
});

it('closes at once a connection that never carried a request (Go dials ahead and keeps it idle), so it does not hold the stop', async () => {
  const app = buildServer({} as Services, pino({ level: 'silent' }));
  const socketPath = join(dir, 'q.sock');
  await app.listen({ path: socketPath });
  const unused = connect(socketPath);
  await new Promise<void>((resolve, reject) => unused.once('connect', resolve).once('error', reject));
  const closedByServer = new Promise<void>((resolve) => unused.once('close', () => resolve()));
  const closed = app.close();
  await closedByServer;
  await closed;
});

it('tells the observer of each answer: the route as the method (unknown paths as `unknown`), ok or not, seconds', async () => {
  const seen: [string, boolean, number][] = [];
  const app = buildServer({} as Services, pino({ level: 'silent' }), undefined, (method, ok, seconds) =>
    seen.push([method, ok, seconds]),
  );
  await app.inject({ method: 'POST', url: '/Plugin.Activate' });
  await app.inject({ method: 'POST', url: '/NetworkDriver.Join', payload: '{"NetworkID": 5}' });
  await app.inject({ method: 'POST', url: '/Some.Thing?x=1' });
  expect(seen).toEqual([
    ['Plugin.Activate', true, expect.any(Number)],
    ['NetworkDriver.Join', false, expect.any(Number)],
    ['unknown', false, expect.any(Number)],
  ]);
  for (const [, , seconds] of seen) expect(seconds).toBeGreaterThan(0);
  await app.close();
});
