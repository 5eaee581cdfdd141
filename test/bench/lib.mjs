// Shared helpers of the benchmarks: statistics, child processes (every one killed on the way out, by its pid), an
// HTTP client that talks to the plugin as Docker does, private network namespaces ("cells") with a plugin in each.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = join(HERE, '../..');
export const DIST = join(ROOT, 'dist');
export const CLI = join(DIST, 'cli/main.js');
/** The node flags every shipped entrypoint runs the plugin with (config.json, the systemd unit, npm start). */
export const SHIPPED_NODE_ARGS = ['--max-semi-space-size=1'];

export const envInt = (name, fallback) => {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${value} is not a non-negative number`);
  return n;
};

// ------------------------------------------------------------------ statistics --

export function sorted(values) {
  return Float64Array.from(values).sort();
}

/** Nearest-rank percentile (p in 0..100) of a list of numbers. */
export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const s = sorted(values);
  const rank = Math.max(1, Math.ceil((p / 100) * s.length));
  return s[Math.min(s.length, rank) - 1];
}

export const median = (values) => {
  if (values.length === 0) return NaN;
  const s = sorted(values);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

export function summary(values) {
  return {
    n: values.length,
    median: round(median(values)),
    p99: round(percentile(values, 99)),
    min: round(Math.min(...values)),
    mean: round(values.reduce((a, b) => a + b, 0) / values.length),
  };
}

/**
 * A 95% confidence interval of median(a) / median(b) by bootstrap over rounds: `a[i]` and `b[i]` were measured in the
 * same round (interleaved), so rounds are resampled whole, keeping each pair together.
 */
export function ratioInterval(a, b, iterations = 2000) {
  const n = Math.min(a.length, b.length);
  if (n < 5) return null;
  const ratios = new Float64Array(iterations);
  const xa = new Float64Array(n);
  const xb = new Float64Array(n);
  for (let k = 0; k < iterations; k++) {
    for (let i = 0; i < n; i++) {
      const j = Math.floor(Math.random() * n);
      xa[i] = a[j];
      xb[i] = b[j];
    }
    ratios[k] = median(xa) / median(xb);
  }
  ratios.sort();
  return [round(ratios[Math.floor(0.025 * iterations)]), round(ratios[Math.floor(0.975 * iterations)])];
}

export const round = (x, digits = 3) => (Number.isFinite(x) ? +x.toFixed(digits) : null);
export const ratio = (a, b) => round(a / b, 3);

export function shuffle(items) {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

export const hex = (bytes) => randomBytes(bytes).toString('hex');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const log = (...args) => console.error('[bench]', ...args);

// ------------------------------------------------------- processes and clean-up --

const children = new Set();
const cleanups = [];

/** Registers a clean-up step; they run last-in first-out from `cleanupAll`, each one's failure ignored. */
export function onCleanup(fn) {
  cleanups.push(fn);
  return fn;
}

let cleaning;
let cleaningNow = false;
let interrupted = false;

/** After a signal: programs started from now on fail at once (so the benchmarks stop), except clean-up's own. */
export function interrupt() {
  interrupted = true;
}

/** Runs the clean-up steps; a second caller while they run waits for the same run. */
export function cleanupAll() {
  if (cleaning) return cleaning;
  cleaningNow = true;
  cleaning = (async () => {
    while (cleanups.length) {
      const fn = cleanups.pop();
      try {
        await fn();
      } catch (err) {
        log(`clean-up step failed (ignored): ${err.message}`);
      }
    }
    killChildren();
  })().finally(() => {
    cleaning = undefined;
    cleaningNow = false;
  });
  return cleaning;
}

/** SIGKILLs every child this process started that is still alive (by pid; nothing else). */
export function killChildren() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}
process.on('exit', killChildren);

/** Spawns a child that is killed when this process exits, whatever the reason. */
export function spawnTracked(cmd, args, options = {}) {
  const child = spawn(cmd, args, options);
  children.add(child);
  child.exited = new Promise((resolve) =>
    child.once('exit', (code, signal) => (children.delete(child), resolve(code ?? signal))),
  );
  return child;
}

/** Runs a program to completion; rejects on a non-zero exit unless allowFail. */
export function run(cmd, args, { allowFail = false, timeoutMs = 120_000, input, env } = {}) {
  if (interrupted && !cleaningNow) return Promise.reject(new Error('interrupted'));
  return new Promise((resolve, reject) => {
    const child = spawnTracked(cmd, args, {
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      ...(env && { env }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => (clearTimeout(timer), reject(err)));
    child.on('close', (code) => {
      clearTimeout(timer);
      const result = { stdout, stderr, code: code ?? -1 };
      if (result.code !== 0 && !allowFail)
        reject(
          new Error(`${cmd} ${args.join(' ')} exited ${result.code}: ${(stderr || stdout).trim().slice(0, 2000)}`),
        );
      else resolve(result);
    });
    if (child.stdin) {
      child.stdin.on('error', () => {});
      child.stdin.end(input);
    }
  });
}

/** Wall time of a program run in ms (spawn to exit), and its result. */
/** The Docker client the benches drive: the lab's engine's own (TSMV_DOCKER), else the unpacked 20.10's. */
export const DOCKER =
  process.env.TSMV_DOCKER ?? new URL('../../.engines/20.10/usr/bin/docker', import.meta.url).pathname;

/** Containers, then networks, whose names start with `prefix`; never throws. */
export async function removeDockerObjects(prefix) {
  const names = async (args) =>
    (await run(DOCKER, args, { allowFail: true })).stdout
      .split('\n')
      .map((s) => s.trim())
      .filter((s) => s.startsWith(prefix));
  const containers = await names(['ps', '-a', '--format', '{{.Names}}']);
  if (containers.length) await run(DOCKER, ['rm', '-f', '-v', ...containers], { allowFail: true });
  // A network whose last container is still being torn down refuses removal for a moment: try again.
  for (let attempt = 0; attempt < 5; attempt++) {
    const networks = await names(['network', 'ls', '--format', '{{.Name}}']);
    if (networks.length === 0) return;
    if (attempt > 0) await sleep(1000);
    for (const network of networks) await run(DOCKER, ['network', 'rm', network], { allowFail: true });
  }
}

export async function timed(cmd, args, opts) {
  const t0 = performance.now();
  const result = await run(cmd, args, opts);
  return { ms: performance.now() - t0, result };
}

/** A temporary directory, removed at clean-up. BENCH_STATE_DIR chooses where (default: the OS temp dir). */
export function tempDir(prefix, root = process.env.BENCH_STATE_DIR || tmpdir()) {
  const dir = mkdtempSync(join(root, prefix));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// ----------------------------------------------------------------- /proc views --

/** VmHWM and VmRSS of a process, in MiB. */
export function memoryOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { peakRssMiB: round(kib('VmHWM') / 1024, 1), rssMiB: round(kib('VmRSS') / 1024, 1) };
}

/** CPU time a process has used so far, all threads (the thread pool's fsyncs, the kernel's netlink work), in ms. */
export function cpuMsOf(pid) {
  let ns = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // a thread that just ended
    }
  }
  return ns / 1e6;
}

// --------------------------------------------------------------------- client --

const DOCKER_HEADERS = { Accept: 'application/vnd.docker.plugins.v1.2+json' };

/** Talks to a plugin's unix socket as Docker does: keep-alive, JSON bodies ending in a newline, no Content-Type. */
export class PluginClient {
  constructor(socketPath) {
    this.socketPath = socketPath;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  }

  post(method, body) {
    const payload = body === undefined ? '' : `${JSON.stringify(body)}\n`;
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socketPath,
          agent: this.agent,
          method: 'POST',
          path: `/${method}`,
          headers: { ...DOCKER_HEADERS, 'Content-Length': Buffer.byteLength(payload) },
        },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            let json;
            try {
              json = text ? JSON.parse(text) : undefined;
            } catch {
              json = { Err: text };
            }
            resolve({ status: res.statusCode, json });
          });
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Like post, but a non-200 answer is an error naming the method. */
  async ok(method, body) {
    const res = await this.post(method, body);
    if (res.status !== 200) throw new Error(`${method} answered ${res.status}: ${JSON.stringify(res.json)}`);
    return res.json;
  }

  close() {
    this.agent.destroy();
  }
}

/** Waits until something answers Plugin.Activate on the socket. */
export async function waitForPlugin(socketPath, child, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  const client = new PluginClient(socketPath);
  try {
    for (;;) {
      if (existsSync(socketPath)) {
        const ok = await client.post('Plugin.Activate').then(
          (r) => r.status === 200,
          () => false,
        );
        if (ok) return;
      }
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`plugin exited (${child.exitCode ?? child.signalCode}) before answering on ${socketPath}`);
      if (Date.now() > deadline) throw new Error(`no plugin on ${socketPath} after ${timeoutMs} ms`);
      await sleep(25);
    }
  } finally {
    client.close();
  }
}

/**
 * Starts `tsmacvlan serve`: the built dist/, or `cli` run by the command `node` (e.g. the arm64 plugin's, under qemu).
 * Its log (JSON lines on stdout) goes through a pipe into memory, as it would go to journald, not to a file on the
 * disk the state is fsync'd to (a write there can wait for the journal). `wrap` prefixes the command (e.g. to run it
 * in a private network namespace); `nodeArgs` go to node (e.g. --cpu-prof) after `shipped` (another build's flags).
 */
export async function startPlugin({
  socket,
  stateDir,
  wrap = [],
  nodeArgs = [],
  logLevel = 'info',
  node = [process.execPath],
  cli = CLI,
  startTimeoutMs = 20_000,
  args = [],
  shipped = SHIPPED_NODE_ARGS,
}) {
  const argv = [
    ...wrap,
    ...node,
    ...shipped,
    ...nodeArgs,
    cli,
    'serve',
    '--socket',
    socket,
    '--state-dir',
    join(stateDir, 'state'),
    '--log-level',
    logLevel,
    ...args,
  ];
  const child = spawnTracked(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  let partial = '';
  const collect = (chunk) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop();
    for (const line of parts) lines.push(line);
  };
  child.stdout.setEncoding('utf8').on('data', collect);
  child.stderr.setEncoding('utf8').on('data', collect);
  await waitForPlugin(socket, child, startTimeoutMs);
  return {
    child,
    pid: child.pid,
    socket,
    /** The log lines so far (a position to pass to requestTimes later). */
    logPosition: () => lines.length,
    logLines: (from = 0) => lines.slice(from),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await child.exited;
        clearTimeout(timer);
      }
    },
  };
}

/** The plugin's own log lines for requests: median ms per method (what the plugin spent, as fastify measures it). */
export function requestTimes(lines) {
  const perMethod = new Map();
  for (const line of lines) {
    if (!line.startsWith('{')) continue;
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      continue;
    }
    if (entry.msg !== 'request' || typeof entry.ms !== 'number') continue;
    const method = String(entry.method).replace(/^\//, '');
    if (!perMethod.has(method)) perMethod.set(method, []);
    perMethod.get(method).push(entry.ms);
  }
  const out = {};
  for (const [method, values] of [...perMethod].sort())
    out[method] = { n: values.length, medianMs: round(median(values)), p99Ms: round(percentile(values, 99)) };
  return out;
}

// ---------------------------------------------------------------------- table --

/** Prints rows (arrays of cells) as an aligned text table with a header. */
export function table(header, rows) {
  const cells = [header, ...rows].map((r) => r.map((c) => (c === undefined || c === null ? '' : String(c))));
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

/** A markdown table. */
export function markdown(header, rows) {
  const fmt = (r) => `| ${r.map((c) => (c === undefined || c === null ? '' : String(c))).join(' | ')} |`;
  return [fmt(header), fmt(header.map(() => '---')), ...rows.map(fmt)].join('\n');
}
