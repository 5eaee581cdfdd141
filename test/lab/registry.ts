// A real image registry for the tests: Debian's docker-registry (the distribution server, 2.8), unpacked from its
// package into .engines/registry by test/lab/engines.sh (never installed, so its system service never exists), run as
// a child process on the loopback of the caller's network namespace (the lab's), with its storage in a directory of
// its own; stop() kills it by its pid and removes the directory. Loopback registries need no TLS (Docker treats
// 127.0.0.0/8 as insecure by default).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const UNPACKED = join(__dirname, '../../.engines/registry/usr/bin/docker-registry');

export class Registry {
  private output = '';

  private constructor(
    readonly address: string, // host:port
    private readonly dir: string,
    private readonly child: ChildProcess,
  ) {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.output = (this.output + d).slice(-20_000)));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.output = (this.output + d).slice(-20_000)));
  }

  /** Starts one on 127.0.0.1:port of this namespace and waits until it answers /v2/. */
  static async start(port: number): Promise<Registry> {
    if (!existsSync(UNPACKED))
      throw new Error(`${UNPACKED} is missing: bash test/lab/engines.sh registry (or bash test/e2e/provision.sh)`);
    const dir = mkdtempSync(join(tmpdir(), 'tsmv-registry-'));
    const address = `127.0.0.1:${port}`;
    writeFileSync(
      join(dir, 'config.yml'),
      [
        'version: 0.1',
        'log: { level: warn, accesslog: { disabled: true } }',
        `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} }, delete: { enabled: true } }`,
        `http: { addr: "${address}" }`,
      ].join('\n') + '\n',
    );
    const child = spawn(UNPACKED, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
    const registry = new Registry(address, dir, child);
    const deadline = Date.now() + 30_000;
    while ((await registry.get('/v2/').catch(() => 0)) !== 200) {
      if (child.exitCode !== null || Date.now() > deadline) {
        await registry.stop();
        throw new Error(`docker-registry on ${address} did not come up:\n${registry.output}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return registry;
  }

  /** The repositories it holds (the catalog). */
  async repositories(): Promise<string[]> {
    const body = await this.getJson('/v2/_catalog');
    return (body as { repositories: string[] }).repositories;
  }

  /** The tags of one repository. */
  async tags(repository: string): Promise<string[]> {
    return ((await this.getJson(`/v2/${repository}/tags/list`)) as { tags: string[] | null }).tags ?? [];
  }

  /**
   * Tags what `repository:from` is as `repository:to` too, through the registry's API (the same manifest under a
   * second tag): a release under another version's tag, without building or pushing it again.
   */
  async tag(repository: string, from: string, to: string): Promise<void> {
    const accept = 'application/vnd.docker.distribution.manifest.v2+json';
    const manifest = await this.call('GET', `/v2/${repository}/manifests/${from}`, { accept });
    if (manifest.status !== 200) throw new Error(`no manifest ${repository}:${from}: ${manifest.body}`);
    const put = await this.call('PUT', `/v2/${repository}/manifests/${to}`, { 'content-type': accept }, manifest.body);
    if (put.status !== 201) throw new Error(`tagging ${repository}:${to} failed (${put.status}): ${put.body}`);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGKILL');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private get(path: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = request(`http://${this.address}${path}`, (res) => (res.resume(), resolve(res.statusCode ?? 0)));
      req
        .on('error', reject)
        .setTimeout(2000, () => req.destroy(new Error('timeout')))
        .end();
    });
  }

  private call(
    method: string,
    path: string,
    headers: Record<string, string>,
    body?: string,
  ): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request(`http://${this.address}${path}`, { method, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject).end(body);
    });
  }

  private getJson(path: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const req = request(`http://${this.address}${path}`, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(body))));
      });
      req.on('error', reject).end();
    });
  }
}
