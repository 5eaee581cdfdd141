// A real Prometheus for tests: Debian's server, started as a child process on the loopback of the test's namespace
// with a data dir of its own, asked through its HTTP API, stopped by its PID. And promtool, and a scrape of a
// plugin's metrics.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PROMETHEUS = '/usr/bin/prometheus';
const PROMTOOL = '/usr/bin/promtool';

/** Fails with what to install when the tools are missing: a test that needs Prometheus never skips silently. */
export function requirePrometheus(): void {
  for (const tool of [PROMETHEUS, PROMTOOL])
    if (!existsSync(tool))
      throw new Error(`${tool} is missing: install Debian's prometheus (apt-get install prometheus)`);
}

/** A TCP port nothing listens on now, on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** `promtool check metrics` on an exposition: its complaints, empty when it passes. */
export function promtoolCheckMetrics(text: string): string {
  const run = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return run.status === 0 ? '' : `exit ${run.status}: ${run.stdout}${run.stderr}`;
}

/** `promtool check <what> <file>`: throws with its output when it fails. */
export function promtool(...args: string[]): string {
  return execFileSync(PROMTOOL, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The plugin's /metrics. */
export async function scrape(address: string): Promise<string> {
  const response = await fetch(`http://${address}/metrics`);
  if (response.status !== 200) throw new Error(`GET http://${address}/metrics: ${response.status}`);
  return response.text();
}

/** The value of one sample of an exposition (`name{labels}` exactly as written there), or undefined. */
export function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

export interface Alert {
  labels: Record<string, string>;
  state: string;
}

export class PrometheusServer {
  readonly dir: string;
  private child: ChildProcess | undefined;
  private output = '';

  /** `files`: the config dir's files by name, prometheus.yml among them. */
  private constructor(
    readonly address: string,
    files: Record<string, string>,
  ) {
    requirePrometheus();
    this.dir = mkdtempSync(join(tmpdir(), 'tsmv-prom-'));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(this.dir, name), text);
  }

  static async start(files: Record<string, string>): Promise<PrometheusServer> {
    const server = new PrometheusServer(`127.0.0.1:${await freePort()}`, files);
    try {
      server.spawn();
      await server.ready(30_000);
      return server;
    } catch (err) {
      await server.stop();
      throw err;
    }
  }

  private spawn(): void {
    const child = spawn(
      PROMETHEUS,
      [
        `--config.file=${join(this.dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(this.dir, 'data')}`,
        `--web.listen-address=${this.address}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const keep = (d: Buffer) => (this.output = (this.output + d.toString()).slice(-20_000));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.child = child;
  }

  private async ready(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.child || this.child.exitCode !== null) throw new Error(`prometheus exited: ${this.output}`);
      const ok = await fetch(`http://${this.address}/-/ready`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`prometheus not ready within ${timeoutMs} ms: ${this.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private async api<T>(path: string): Promise<T> {
    const response = await fetch(`http://${this.address}/api/v1/${path}`);
    const body = (await response.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error ?? response.status}`);
    return body.data;
  }

  /** An instant query: each series' labels and value. */
  async query(expr: string): Promise<{ metric: Record<string, string>; value: number }[]> {
    const data = await this.api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(
      `query?query=${encodeURIComponent(expr)}`,
    );
    return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  }

  async alerts(): Promise<Alert[]> {
    return (await this.api<{ alerts: Alert[] }>('alerts')).alerts;
  }

  async rules(): Promise<{ name: string; health: string; type: string }[]> {
    const data = await this.api<{ groups: { rules: { name: string; health: string; type: string }[] }[] }>('rules');
    return data.groups.flatMap((g) => g.rules);
  }

  /** Waits until `check` passes, failing with its last error and the server's output. */
  async until(check: () => Promise<void>, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return await check();
      } catch (err) {
        if (Date.now() > deadline)
          throw new Error(`${(err as Error).message}\nprometheus said: ${this.output.slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
