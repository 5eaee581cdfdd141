// Small helpers for end-to-end tests that drive a real Docker Engine.
//
// Everything is async on purpose: a test may host a plugin HTTP server in the
// same process, and a synchronous `docker network create` would then block the
// event loop the plugin needs to answer Docker (deadlock until Docker's timeout).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { DOCKER_CLIENT } from '../lab/engine';

/**
 * The client of the lab's own engine, the same version as its daemon (test/lab/in-lab.sh sets TSMV_DOCKER from
 * TSMV_ENGINE; DOCKER_HOST names the daemon). Named explicitly: a `docker` in PATH is the host's, never the lab's.
 */
export const DOCKER_BIN = DOCKER_CLIENT;
/** Imported into the lab's engine by test/lab/test-image.sh from busybox-static (no registry needed). */
export const TEST_IMAGE = process.env.TSMV_TEST_IMAGE ?? 'tsmacvlan-test/busybox:latest';

export interface RunResult {
  stdout: string;
  stderr: string;
  /** Exit code; -1 when killed by a signal or by the timeout. */
  code: number;
}

export interface RunOpts {
  /** Resolve with the result instead of throwing on a non-zero exit. */
  allowFail?: boolean;
  /** Data written to stdin. */
  input?: string;
  /** Kill the process after this long (default 120 s). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export class CommandError extends Error {
  constructor(
    readonly argv: string[],
    readonly result: RunResult,
  ) {
    super(`${argv.join(' ')} exited ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`);
    this.name = 'CommandError';
  }
}

/** Runs a program (no shell), collecting its output. Throws CommandError on failure unless allowFail. */
export function run(cmd: string, args: string[], opts: RunOpts = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (timedOut) stderr += `\n[killed after ${timeoutMs} ms]`;
      const result: RunResult = { stdout, stderr, code: code ?? -1 };
      if (result.code !== 0 && !opts.allowFail) reject(new CommandError([cmd, ...args], result));
      else resolve(result);
    });
    if (child.stdin) {
      child.stdin.on('error', () => {}); // EPIPE when the program exits without reading
      child.stdin.end(opts.input);
    }
  });
}

/** `docker ARGS...` with the explicit client. */
export function docker(args: string[], opts?: RunOpts): Promise<RunResult> {
  return run(DOCKER_BIN, args, opts);
}

/** `docker ARGS...` that must succeed; returns trimmed stdout. */
export async function dockerOk(args: string[], opts?: Omit<RunOpts, 'allowFail'>): Promise<string> {
  return (await docker(args, opts)).stdout.trim();
}

/**
 * Polls fn until it returns a truthy value (returned) or timeoutMs passes
 * (throws, with the last error fn threw, if any). A throw counts as "not yet".
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  timeoutMs: number,
  { intervalMs = 100, what = 'condition' }: { intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() >= deadline) {
      const why = lastErr instanceof Error ? `: ${lastErr.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Retries an assertion until it holds or `timeoutMs` passes (the plugin deletes a link just after answering). */
export async function eventually(check: () => unknown, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() >= deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** `docker exec NAME CMD...`; throws on non-zero exit unless allowFail. */
export function containerExec(name: string, cmd: string[], opts?: RunOpts): Promise<RunResult> {
  return docker(['exec', name, ...cmd], opts);
}

/**
 * Pings ip from inside a (busybox) container. True when at least one reply
 * came back. Only ever ping addresses of hosts the test itself created.
 */
export async function ping(
  containerName: string,
  ip: string,
  { count = 1, timeoutSec = 2 }: { count?: number; timeoutSec?: number } = {},
): Promise<boolean> {
  const args = ['ping', '-c', String(count), '-W', String(timeoutSec), '-w', String(count + timeoutSec), ip];
  const r = await containerExec(containerName, args, {
    allowFail: true,
    timeoutMs: (count + timeoutSec + 10) * 1000,
  });
  return r.code === 0;
}

/** A name unique to this run: `${prefix}${10 hex}`. */
export function uniqueName(prefix = 'tsmv-'): string {
  return prefix + randomBytes(5).toString('hex');
}

/**
 * Starts a detached busybox container that just sleeps, e.g.
 * runSleeper('tsmv-a', { network: 'net1', ip: '10.231.5.10' }). Returns its id.
 */
export async function runSleeper(
  name: string,
  { network, ip, extraArgs = [] }: { network?: string; ip?: string; extraArgs?: string[] } = {},
): Promise<string> {
  const args = ['run', '-d', '--name', name];
  if (network) args.push('--network', network);
  if (ip) args.push('--ip', ip);
  args.push(...extraArgs, TEST_IMAGE, 'sleep', '3600');
  return dockerOk(args);
}

/**
 * Force-removes containers, then networks, whose names start with prefix.
 * For afterAll/afterEach and for leftovers of a crashed run. Never throws.
 */
export async function removeDockerObjects(prefix = 'tsmv-'): Promise<void> {
  const names = async (args: string[]) =>
    (await docker(args, { allowFail: true })).stdout
      .split('\n')
      .map((s) => s.trim())
      .filter((s) => s.startsWith(prefix));
  const containers = await names(['ps', '-a', '--format', '{{.Names}}']);
  if (containers.length) await docker(['rm', '-f', '-v', ...containers], { allowFail: true });
  const networks = await names(['network', 'ls', '--format', '{{.Name}}']);
  for (const n of networks) await docker(['network', 'rm', n], { allowFail: true });
}
