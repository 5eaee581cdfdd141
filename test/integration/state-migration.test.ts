// The state of tsmacvlan 0.1.0 (test/fixtures/state-0.1.0: written by 0.1.0 itself, see the README there) under this
// version: read as it is by the operator commands, migrated by the plugin's start, then served; a migration killed
// at each of its steps comes back whole; a state of newer formats is refused by everything.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { EtcdKv } from '../../src/cluster/etcd';
import { readState } from '../../src/inspect/state-snapshot';
import { STATE_FILES } from '../../src/inspect/state-formats';
import { type StatusReport } from '../../src/inspect/status';
import { MARKER, currentFormats, migrateState } from '../../src/state/migrate';
import { EtcdCluster } from '../lab/etcd';
import { assertPrivateNetns, deleteLink, deleteLinksByPrefix, vethPair } from '../helpers/net';
import { CLI, post, spawnDaemon, spawnProcess, waitForSocket, type Daemon } from '../helpers/serve';

const FIXTURE = join(__dirname, '../fixtures/state-0.1.0');
const silent = pino({ level: 'silent' });
const etcd = EtcdCluster.onHost('tmvM', '127.0.0.1', 23970);
const id = (c: string) => c.repeat(64);
const ETCD_KEYS = JSON.parse(readFileSync(join(FIXTURE, 'etcd.json'), 'utf8')) as {
  prefix: string;
  keys: Record<string, string>;
};
const NETWORKS = readdirSync(join(FIXTURE, 'state/networks')).map((f) =>
  JSON.parse(readFileSync(join(FIXTURE, 'state/networks', f), 'utf8')),
);
const DHCP_PARENT = NETWORKS.find((n) => n.dhcp).parent as string;
const PARENTS = ['fxlan0', 'fxlan1'];

let work: string;
/** Every file of the fixture's state, and of the same state once migrated (in this process), by relative path. */
let before: Map<string, string>;
let migrated: Map<string, string>;
const daemons: Daemon[] = [];

function files(dir: string): Map<string, string> {
  const found = new Map<string, string>();
  const walk = (sub: string) => {
    for (const entry of readdirSync(join(dir, sub), { withFileTypes: true })) {
      const path = join(sub, entry.name);
      if (entry.isDirectory()) walk(path);
      else found.set(path, readFileSync(join(dir, path), 'utf8'));
    }
  };
  walk('');
  return found;
}

function copyOfFixture(): string {
  const dir = mkdtempSync(join(work, 'state-'));
  cpSync(join(FIXTURE, 'state'), dir, { recursive: true });
  return dir;
}

function socketOf(stateDir: string): string {
  return join(stateDir, '..', `${relative(work, stateDir)}.sock`);
}

function serveArgs(stateDir: string): string[] {
  return ['serve', '--socket', socketOf(stateDir), '--state-dir', stateDir, '--log-level', 'info'];
}

function start(stateDir: string, env: NodeJS.ProcessEnv = {}, withEtcd = false): { daemon: Daemon; socket: string } {
  const etcdFlags = withEtcd ? ['--etcd', etcd.endpoints.join(','), '--etcd-prefix', ETCD_KEYS.prefix] : [];
  const daemon = spawnDaemon([...serveArgs(stateDir), ...etcdFlags], env);
  daemons.push(daemon);
  return { daemon, socket: socketOf(stateDir) };
}

async function stop(daemon: Daemon): Promise<void> {
  daemon.child.kill('SIGTERM');
  await daemon.exited;
}

function cli(args: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Each file is whole: byte for byte its 0.1.0 form or its migrated form, and the readers read all of it. */
function expectWhole(stateDir: string): void {
  const now = files(stateDir);
  for (const [path, text] of now) {
    if (path.endsWith('.tmp')) continue; // a write that never happened: readers ignore it
    if (path === MARKER) expect(text).toBe(migrated.get(MARKER));
    else expect([before.get(path), migrated.get(path)], path).toContain(text);
  }
  for (const path of before.keys()) expect(now.has(path), path).toBe(true);
  const state = readState(stateDir);
  expect(state.unreadable).toEqual([]);
  expect([state.networks.length, state.endpoints.length, state.pools.length]).toEqual([5, 6, 5]);
}

beforeAll(async () => {
  assertPrivateNetns();
  work = mkdtempSync(join(tmpdir(), 'tsmv-migration-'));
  for (const parent of PARENTS) vethPair(parent);
  before = files(join(FIXTURE, 'state'));
  const reference = copyOfFixture();
  migrateState(reference, STATE_FILES, silent);
  migrated = files(reference);
  await etcd.start();
}, 60_000);

afterEach(async () => {
  for (const d of daemons.splice(0)) if (d.child.exitCode === null && d.child.signalCode === null) await stop(d);
  deleteLinksByPrefix('tsmv');
});

afterAll(async () => {
  for (const parent of [...PARENTS, DHCP_PARENT]) deleteLink(parent);
  await etcd.stop();
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

describe('a state dir written by tsmacvlan 0.1.0', () => {
  it('is read as it is by status and gc, migrated at the plugin start, then served and read by status', async () => {
    const dir = copyOfFixture();
    // The readers bring it up to date in memory, say that the plugin will migrate it, and write nothing.
    const read = readState(dir);
    expect(read.unreadable).toEqual([]);
    expect(read.format).toMatchObject({ state: 'older', formats: null });
    expect(read.networks.map((n) => n.id).sort()).toEqual(['a', 'b', 'c', 'd', 'e'].map(id));
    const gc = cli(['gc', '--dry-run', '--socket', join(work, 'none.sock'), '--state-dir', dir]);
    expect(gc.code, gc.out).toBe(0);
    expect(gc.out).toContain('note: the state is written by tsmacvlan 0.1.0 (no format.json): the plugin migrates it');
    expect(files(dir)).toEqual(before);

    // The plugin, on the fixture's etcd data, migrates first, then serves.
    const kv = new EtcdKv({ endpoints: etcd.endpoints, prefix: ETCD_KEYS.prefix });
    for (const [key, value] of Object.entries(ETCD_KEYS.keys)) expect((await kv.create(key, value)).ok).toBe(true);
    vethPair(DHCP_PARENT);
    const { daemon, socket } = start(dir, {}, true);
    await waitForSocket(socket, daemon);
    expect(daemon.output()).toContain('migrated the state to the formats of this version');
    expect(JSON.parse(readFileSync(join(dir, MARKER), 'utf8')).formats).toEqual(currentFormats(STATE_FILES));
    for (const path of [...before.keys()].filter((p) => p.startsWith('networks/')))
      expect(readFileSync(join(dir, path), 'utf8'), path).toBe(migrated.get(path));

    const ipam = async (method: string, body: object) => (await post(socket, `IpamDriver.${method}`, body)).json;
    const plain = 'tsmacvlan:10.81.0.0/24,opts=a2ae99e1';
    const cluster = 'tsmacvlan:10.84.0.0/24,range=10.84.0.64/26,cluster';
    // What 0.1.0 held is held: the static address, and the next dynamic one is the one after 0.1.0's last.
    expect((await ipam('RequestAddress', { PoolID: plain, Address: '10.81.0.77', Options: null })).Err).toMatch(
      /already in use/,
    );
    expect(await ipam('RequestAddress', { PoolID: plain, Address: '', Options: {} })).toMatchObject({
      Address: '10.81.0.3/24',
    });
    // 0.1.0 was killed between a cluster take's commit and its answer: the migrated intent log rolls it back.
    const held = async () =>
      Object.keys(Object.fromEntries((await kv.range(`${ETCD_KEYS.prefix}/`)).entries.map((e) => [e.key, 1])));
    const rolledBack = Object.keys(ETCD_KEYS.keys).find((k) => k.endsWith('10.84.0.65'))!;
    for (let i = 0; i < 100 && (await held()).includes(rolledBack); i++) await new Promise((r) => setTimeout(r, 100));
    expect(await held()).not.toContain(rolledBack);
    expect(await ipam('RequestAddress', { PoolID: cluster, Address: '', Options: {} })).toMatchObject({
      Address: expect.stringMatching(/^10\.84\.0\.6[5-9]\/24$/),
    });
    // 0.1.0's networks and endpoints go as Docker takes them down.
    const driver = async (method: string, body: object) => (await post(socket, `NetworkDriver.${method}`, body)).status;
    expect(await driver('Leave', { NetworkID: id('a'), EndpointID: id('1') })).toBe(200);
    expect(await driver('DeleteEndpoint', { NetworkID: id('a'), EndpointID: id('1') })).toBe(200);
    expect(await driver('DeleteEndpoint', { NetworkID: id('a'), EndpointID: id('2') })).toBe(200);
    expect(await driver('DeleteNetwork', { NetworkID: id('a') })).toBe(200);
    expect(existsSync(join(dir, 'networks', `${id('a')}.json`))).toBe(false);

    // status, a process of its own, reads the migrated state and the cluster table.
    const status = cli([
      'status',
      '--json',
      '--socket',
      socket,
      '--state-dir',
      dir,
      '--etcd',
      etcd.endpoints.join(','),
      '--etcd-prefix',
      ETCD_KEYS.prefix,
    ]);
    expect(status.code, status.out).toBe(0);
    const report = JSON.parse(status.out) as StatusReport;
    expect(report.stateFormat).toMatchObject({ state: 'current', formats: currentFormats(STATE_FILES) });
    expect(report.unreadable).toEqual([]);
    expect(report.networks.map((n) => n.id).sort()).toEqual(['b', 'c', 'd', 'e'].map(id));
    expect(report.endpoints).toHaveLength(4);
    expect(report.cluster?.subnets.map((s) => s.subnet)).toContain('10.84.0.0/24');
    await stop(daemon);
    await kv.close();
    deleteLink(DHCP_PARENT);
  });

  it.each(['migration-file-synced', 'migration-files-done'])(
    'a migration killed at %s comes back whole, and the next start finishes it',
    async (point) => {
      const dir = copyOfFixture();
      const crashed = start(dir, { TSMACVLAN_CRASH_AT: point }).daemon;
      await crashed.exited;
      expect(crashed.child.signalCode, crashed.output()).toBe('SIGKILL');
      expectWhole(dir);
      await finishes(dir);
    },
  );

  it('a migration killed after each file in turn comes back whole each time, and the next start finishes it', async () => {
    const dir = copyOfFixture();
    const older = [...before.keys()].filter((path) => migrated.get(path) !== before.get(path));
    for (let killed = 0; ; killed++) {
      const { daemon, socket } = start(dir, { TSMACVLAN_CRASH_AT: 'migration-file-replaced' });
      const outcome = await waitForSocket(socket, daemon).then(
        () => 'serving',
        () => daemon.exited.then(() => 'killed'),
      );
      if (outcome === 'serving') {
        expect(killed).toBe(older.length); // one file more each time, then nothing left to migrate
        await stop(daemon);
        break;
      }
      expect(daemon.child.signalCode, daemon.output()).toBe('SIGKILL');
      expect(killed).toBeLessThan(older.length);
      expectWhole(dir);
      const done = older.filter((path) => readFileSync(join(dir, path), 'utf8') === migrated.get(path));
      expect(done).toHaveLength(killed + 1);
    }
    expect(files(dir)).toEqual(migrated);
  });

  /** The next start migrates the rest and serves; the files are what a migration in one go makes. */
  async function finishes(dir: string): Promise<void> {
    const { daemon, socket } = start(dir);
    await waitForSocket(socket, daemon);
    await stop(daemon);
    expect(files(dir)).toEqual(migrated);
  }

  it('a state of newer formats is refused by the plugin, status and gc, naming both versions; nothing changes', async () => {
    const dir = copyOfFixture();
    migrateState(dir, STATE_FILES, silent);
    const marker = { formats: { ...currentFormats(STATE_FILES), 'network-record': 4 }, writtenBy: '9.9.9' };
    writeFileSync(join(dir, MARKER), JSON.stringify(marker));
    writeFileSync(
      join(dir, 'networks', `${id('a')}.json`),
      JSON.stringify({ format: 4, kind: 'vxlan', ...NETWORKS.find((n) => n.id === id('a')) }),
    );
    const untouched = files(dir);
    const refusal = new RegExp(
      `the state in ${dir} was written by tsmacvlan 9\\.9\\.9, in formats newer than this tsmacvlan \\([^)]+\\) reads: network-record format 4 \\(this version reads up to 3\\)\\. Run tsmacvlan 9\\.9\\.9 or newer on it`,
    );

    // The socket never appears: Docker would count a plugin that answered its dial as enabled, and restart it.
    const { daemon, socket } = start(dir);
    let socketSeen = false;
    const watch = setInterval(() => (socketSeen ||= existsSync(socket)), 2);
    expect(await daemon.exited).toBe(1);
    clearInterval(watch);
    expect(daemon.output()).toMatch(refusal);
    expect(socketSeen, 'the refused plugin bound its socket').toBe(false);
    const gc = cli(['gc', '--socket', join(work, 'none.sock'), '--state-dir', dir]);
    expect(gc.code).toBe(1);
    expect(gc.out).toMatch(refusal);
    const status = cli(['status', '--json', '--socket', join(work, 'none.sock'), '--state-dir', dir]);
    expect(status.code).toBe(1);
    const report = JSON.parse(status.out) as StatusReport;
    expect(report.stateFormat).toMatchObject({ state: 'newer', writtenBy: '9.9.9' });
    expect(report.unreadable).toEqual([
      {
        file: join(dir, 'networks', `${id('a')}.json`),
        error: expect.stringMatching(/is in format 4, newer than this tsmacvlan .* reads \(up to format 3\)/),
      },
    ]);
    expect(files(dir)).toEqual(untouched);

    // As the managed plugin (PID 1 of its own PID namespace): it says why at once, then stays, without a socket, until
    // stopped (Docker restarts one that exits while its enable waits), and exits 1 on SIGTERM.
    const pid1 = spawnProcess(
      'unshare',
      ['--pid', '--fork', '--kill-child', '--', process.execPath, CLI, ...serveArgs(dir)],
      {},
    );
    daemons.push(pid1);
    await vi.waitFor(() => expect(pid1.output()).toMatch(refusal), { timeout: 20_000, interval: 50 });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(pid1.child.exitCode, pid1.output()).toBeNull();
    expect(existsSync(socketOf(dir))).toBe(false);
    const node = execFileSync('pgrep', ['-P', String(pid1.child.pid)], { encoding: 'utf8' }).trim();
    process.kill(Number(node), 'SIGTERM');
    expect(await pid1.exited).toBe(1);
    expect(files(dir)).toEqual(untouched);
  });

  it('as the managed plugin, a start that fails once its socket is bound gives the socket up and stays until stopped', async () => {
    const dir = copyOfFixture();
    migrateState(dir, STATE_FILES, silent);
    writeFileSync(join(dir, 'networks', `${id('a')}.json`), '{"not a record"'); // read after the socket is bound
    const pid1 = spawnProcess(
      'unshare',
      ['--pid', '--fork', '--kill-child', '--', process.execPath, CLI, ...serveArgs(dir)],
      {},
    );
    daemons.push(pid1);
    let socketSeen = false;
    const watch = setInterval(() => (socketSeen ||= existsSync(socketOf(dir))), 2);
    await vi.waitFor(() => expect(pid1.output()).toMatch(/tsmacvlan: .*networks/), { timeout: 20_000, interval: 50 });
    clearInterval(watch);
    expect(socketSeen, 'the socket was bound before the failure').toBe(true);
    expect(existsSync(socketOf(dir)), 'the socket left behind while the process stays').toBe(false);
    expect(pid1.child.exitCode, pid1.output()).toBeNull();
    const node = execFileSync('pgrep', ['-P', String(pid1.child.pid)], { encoding: 'utf8' }).trim();
    process.kill(Number(node), 'SIGTERM');
    expect(await pid1.exited).toBe(1);
  });

  it('walks every crash point of the migration the source declares', () => {
    const source = readFileSync(join(__dirname, '../../src/state/migrate.ts'), 'utf8');
    const declared = [...source.matchAll(/crashPoint\('([^']+)'\)/g)].map((m) => m[1]).sort();
    expect(declared).toEqual(['migration-file-replaced', 'migration-file-synced', 'migration-files-done']);
    const others = readdirSync(join(__dirname, '../../src'), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith('.ts') && e.name !== 'migrate.ts')
      .flatMap((e) => [
        ...readFileSync(join(e.parentPath, e.name), 'utf8').matchAll(/crashPoint\('(migration-[^']+)'\)/g),
      ]);
    expect(others).toEqual([]);
  });
});
