// serve's socket before its server: bound at once, the connections of that time handed to the HTTP server unread.
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EarlySocket } from '../../../src/cli/early-socket';

const dirs: string[] = [];
const servers: { close(): unknown }[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function socketPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tsmv-early-'));
  dirs.push(dir);
  return join(dir, 'sub/plugin.sock');
}
function post(path: string, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: path, method: 'POST', path: '/Plugin.Activate' }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve(`${res.statusCode} ${text}`));
    });
    req.on('error', reject);
    req.end(body);
  });
}
const listening = (server: Server, path: string) =>
  new Promise<void>((resolve) => server.listen(path, () => resolve()));

describe('EarlySocket', () => {
  it('listens 0600 at once; a request made before the HTTP server is answered by it', async () => {
    const path = socketPath();
    const early = await EarlySocket.bind(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const answer = post(path, 'early'); // connects to the early socket: nothing reads it yet
    await new Promise((r) => setTimeout(r, 100));
    const http = createHttpServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      req.on('end', () => res.end(`got ${body}`));
    });
    servers.push(http);
    const held = await early.handOver();
    await listening(http, path);
    held((socket) => (http.emit('connection', socket), socket.resume()));
    expect(await answer).toBe('200 got early');
    expect(await post(path, 'later')).toBe('200 got later'); // the HTTP server listens on the path itself now
  });

  it('refuses a socket another server answers on, and replaces a stale one', async () => {
    const path = socketPath();
    const other = createServer();
    servers.push(other);
    const first = await EarlySocket.bind(path); // makes the directory
    await first.handOver();
    await listening(other, path);
    await expect(EarlySocket.bind(path)).rejects.toThrow(`another server is already listening on ${path}`);
    other.close();
    writeFileSync(path, ''); // a file nobody listens on
    const early = await EarlySocket.bind(path);
    await early.handOver();
  });
});
