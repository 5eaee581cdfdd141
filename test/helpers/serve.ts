// The real daemon as a child process, in the test's network namespace or in one of its own.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';

export const CLI = join(__dirname, '../../dist/cli/main.js');

export interface Daemon {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

export function spawnDaemon(args: string[], env: NodeJS.ProcessEnv = {}): Daemon {
  return spawnProcess(process.execPath, [CLI, ...args], env);
}

export function spawnProcess(command: string, args: string[], env: NodeJS.ProcessEnv): Daemon {
  const child = spawn(command, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

/**
 * The daemon in a network namespace of its own (`unshare --net` execs node: the child's pid is the daemon's), gone with
 * every link in it when the daemon exits. `inNetns` runs a command there.
 */
export function spawnDaemonInOwnNetns(args: string[]): Daemon & { inNetns: (cmd: string, ...a: string[]) => string } {
  const daemon = spawnProcess('unshare', ['--net', '--', process.execPath, CLI, ...args], {});
  const inNetns = (cmd: string, ...a: string[]) =>
    execFileSync('nsenter', [`--net=/proc/${daemon.child.pid}/ns/net`, '--', cmd, ...a], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 300_000,
    });
  return { ...daemon, inNetns };
}

/**
 * Waits until the daemon answers on its socket (a stale socket file from a killed daemon does not count). The
 * deadline is generous: a start that reconciles under the load of a shared 2-core machine took over 10 s.
 */
export async function waitForSocket(path: string, daemon: Daemon, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (
    !existsSync(path) ||
    !(await post(path, 'Plugin.Activate').then(
      () => true,
      () => false,
    ))
  ) {
    if (daemon.child.exitCode !== null || daemon.child.signalCode !== null)
      throw new Error(`daemon exited (${daemon.child.exitCode ?? daemon.child.signalCode}): ${daemon.output()}`);
    if (Date.now() > deadline) throw new Error(`no socket at ${path} after ${timeoutMs} ms: ${daemon.output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** POSTs to the plugin over its unix socket, as Docker does (no Content-Type). */
export function post(socketPath: string, method: string, body?: unknown): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? '' : JSON.stringify(body);
    const req = request(
      { socketPath, path: `/${method}`, method: 'POST', headers: { 'content-length': Buffer.byteLength(payload) } },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** A request that must succeed: its answer, or an error naming the method and the plugin's Err. */
export async function postOk(socketPath: string, method: string, body: unknown): Promise<any> {
  const { status, json } = await post(socketPath, method, body);
  if (status !== 200) throw new Error(`${method}: ${json?.Err}`);
  return json;
}

/** When (ms since the epoch) `check` first holds, polled every 200 ms for up to `seconds`; undefined if it never did. */
export async function whenTrue(seconds: number, check: () => boolean | Promise<boolean>): Promise<number | undefined> {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (await check()) return Date.now();
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return undefined;
}

/** Whether the daemon's output has `text` within a few seconds: its log is written asynchronously. */
export async function loggedSoon(daemon: Daemon, text: string): Promise<boolean> {
  return (await whenTrue(5, () => daemon.output().includes(text))) !== undefined;
}
