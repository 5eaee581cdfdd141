// Doctor: does the plugin answer on its socket?
import { statSync } from 'node:fs';
import { request } from 'node:http';
import { dirname } from 'node:path';
import { driverName } from '../driver-name';
import type { Check } from './check';
interface Answer {
  status?: number;
  body?: string;
  error?: NodeJS.ErrnoException;
  timedOut?: boolean;
}

function ask(socketPath: string, method: string, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve) => {
    const req = request(
      { socketPath, path: `/${method}`, method: 'POST', headers: { 'content-length': 0 }, timeout: timeoutMs },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', (error) => resolve({ error }));
      },
    );
    req.on('timeout', () => {
      req.destroy();
      resolve({ timedOut: true });
    });
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ error }));
    req.end();
  });
}

export interface SocketCheckOptions {
  timeoutMs?: number;
  /** How to start the plugin that should answer there (the managed plugin's `docker plugin enable NAME`). */
  start?: string;
  /** Why doctor looks at this socket, when it found no plugin to look at: added to "not running". */
  found?: string;
}

export async function socketCheck(path: string, options: SocketCheckOptions = {}): Promise<Check> {
  const timeoutMs = options.timeoutMs ?? 2000;
  const start =
    options.start ??
    `start the plugin: tsmacvlan serve --socket ${path} (or its service); if it runs with another --socket, give doctor that one`;
  const fileProblem = socketFileProblem(path, start, options.found);
  if (fileProblem) return fileProblem;
  const answer = await ask(path, 'Plugin.Activate', timeoutMs);
  const failed = activateFailure(path, answer, start, timeoutMs);
  if (failed) return failed;
  let implemented: unknown;
  try {
    implemented = (JSON.parse(answer.body ?? '') as { Implements?: unknown }).Implements;
  } catch {
    implemented = undefined;
  }
  if (answer.status !== 200 || !Array.isArray(implemented) || !implemented.includes('NetworkDriver')) {
    return {
      id: 'socket',
      status: 'FAIL',
      message: `${path} answered Plugin.Activate with ${answer.status} ${JSON.stringify(answer.body ?? '').slice(0, 120)}, not as a network driver`,
      fix: `another program owns ${path}: stop it or give tsmacvlan another --socket`,
    };
  }
  const driver = driverName(path);
  const outside =
    dirname(path) !== '/run/docker/plugins'
      ? ` (outside /run/docker/plugins: Docker finds it only through a spec file in /etc/docker/plugins)`
      : '';
  return {
    id: 'socket',
    status: 'OK',
    message: `${path} answers Plugin.Activate (${implemented.join(', ')}); Docker's driver name for it is '${driver}'${outside}`,
  };
}

/** The version the plugin on `path` says it runs; undefined when it does not say (one from before it could). */
export async function pluginVersion(path: string, timeoutMs = 2000): Promise<string | undefined> {
  const answer = await ask(path, 'Tsmacvlan.Version', timeoutMs);
  try {
    const version = (JSON.parse(answer.body ?? '') as { Version?: unknown }).Version;
    return answer.status === 200 && typeof version === 'string' && version !== '' ? version : undefined;
  } catch {
    return undefined;
  }
}

/** The check's FAIL when there is no socket at `path` to ask. */
function socketFileProblem(path: string, start: string, found: string | undefined): Check | undefined {
  const id = 'socket';
  try {
    if (!statSync(path).isSocket())
      return { id, status: 'FAIL', message: `${path} exists but is not a socket`, fix: `remove it, then ${start}` };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      return {
        id,
        status: 'FAIL',
        message: `no plugin socket at ${path}: the plugin is not running${found ? ` (${found})` : ''}`,
        fix: start,
      };
    return { id, status: 'FAIL', message: `cannot look at ${path} (${code})`, fix: 'run doctor as root' };
  }
  return undefined;
}

/** The check's FAIL when Plugin.Activate got no answer at all. */
function activateFailure(path: string, answer: Answer, start: string, timeoutMs: number): Check | undefined {
  const id = 'socket';
  if (answer.timedOut) {
    return {
      id,
      status: 'FAIL',
      message: `${path}: the plugin did not answer Plugin.Activate within ${timeoutMs} ms`,
      fix: 'it is stuck: look at its log, then restart it',
    };
  }
  if (!answer.error) return undefined;
  const code = answer.error.code;
  if (code === 'ECONNREFUSED') {
    return {
      id,
      status: 'FAIL',
      message: `${path}: nothing listens on it (left by a plugin that stopped without cleaning up)`,
      fix: `${start}; it replaces the stale socket`,
    };
  }
  if (code === 'EACCES')
    return {
      id,
      status: 'FAIL',
      message: `${path}: permission denied (the socket is root's only)`,
      fix: 'run doctor as root',
    };
  return {
    id,
    status: 'FAIL',
    message: `${path}: Plugin.Activate failed (${code ?? answer.error.message})`,
    fix: "look at the plugin's log, then restart it",
  };
}
