// Which instance the operator commands look at, against a Docker plugin store laid out as Docker writes it
// (<data root>/plugins/<id>/config.json: {"plugin": {Id, Name, Enabled, Config, Settings}, ...}).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chooseInstance, DEFAULT_STATE_DIR, type HostPaths } from '../../../src/cli/instance-choice';
import { UsageError } from '../../../src/cli/usage';
import { dockerDataRoot, listManagedPlugins } from '../../../src/inspect/managed-plugins';
import { writeStoredPlugin } from '../../helpers/plugin-store';

const A = 'a'.repeat(64);
const B = 'b'.repeat(60) + '1234';
const OTHER = 'c'.repeat(64);

describe('chooseInstance', () => {
  let dir: string;
  let dataRoot: string;
  let host: HostPaths;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsmv-choice-'));
    dataRoot = join(dir, 'docker');
    host = { runtimeDir: join(dir, 'run'), serviceSocket: join(dir, 'run', 'tsmacvlan.sock') };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const install = (
    id: string,
    name: string,
    options: { enabled?: boolean; socket?: string; legacyMounts?: { state: string } } = {},
  ) => writeStoredPlugin(dataRoot, { id, name, ...options });
  /** Where Docker makes a plugin's propagated mount: its state dir. */
  const propagated = (id: string) => join(dataRoot, 'plugins', id, 'propagated-mount');

  const choose = (flags: Record<string, string> = {}, env: NodeJS.ProcessEnv = {}) =>
    chooseInstance(new Map(Object.entries({ '--docker-data-root': dataRoot, ...flags })), env, host);

  it('with nothing installed and no service socket: the defaults, saying nothing was found', () => {
    expect(choose()).toEqual({
      socket: host.serviceSocket,
      stateDir: DEFAULT_STATE_DIR,
      found: `no managed tsmacvlan plugin in ${dataRoot}/plugins and no socket at ${host.serviceSocket}: the defaults`,
    });
  });

  it("finds the only managed plugin: its socket under Docker's runtime dir, its propagated mount as its state dir", () => {
    expect(install(A, 'tsmacvlan:latest')).toBe(propagated(A));
    install(OTHER, 'someone/else:1', { socket: 'else.sock' }); // not ours: another socket
    mkdirSync(join(dataRoot, 'plugins', 'd'.repeat(64))); // being pulled: no config.json yet
    const found = choose();
    expect(found).toMatchObject({
      socket: join(host.runtimeDir, A, 'tsmacvlan.sock'),
      stateDir: propagated(A),
      plugin: {
        id: A,
        name: 'tsmacvlan:latest',
        enabled: true,
        tlsDir: join(propagated(A), 'tls'),
        stateGoesWithIt: true,
      },
    });
    expect(found.found).toBe(
      `the only one in ${dataRoot}/plugins: the managed plugin tsmacvlan:latest (id aaaaaaaaaaaa, enabled, state ${propagated(A)})`,
    );
  });

  it('finds a plugin built before 0.2.0 by its state and tls mounts, whose state stays on the host', () => {
    install(A, 'tsmacvlan:latest', { legacyMounts: { state: '/srv/tsmv' } });
    expect(choose()).toMatchObject({
      stateDir: '/srv/tsmv',
      plugin: { id: A, tlsDir: '/etc/tsmacvlan', stateGoesWithIt: false },
    });
  });

  it('finds the service when only its socket is there', () => {
    mkdirSync(host.runtimeDir);
    writeFileSync(host.serviceSocket, '');
    expect(choose()).toEqual({
      socket: host.serviceSocket,
      stateDir: DEFAULT_STATE_DIR,
      found: `the service's socket ${host.serviceSocket}`,
    });
  });

  it('refuses to guess among several, naming each and the flag that picks it', () => {
    install(A, 'tsmacvlan:latest');
    install(B, 'tsmacvlan:0.2.0', { enabled: false });
    expect(() => choose()).toThrow(UsageError);
    expect(() => choose()).toThrow(
      `this host has 2 tsmacvlan instances; say which: --plugin tsmacvlan:latest for tsmacvlan:latest (id aaaaaaaaaaaa, enabled, state ${propagated(A)}); --plugin tsmacvlan:0.2.0 for tsmacvlan:0.2.0 (id bbbbbbbbbbbb, disabled, state ${propagated(B)})`,
    );
    rmSync(join(dataRoot, 'plugins', B), { recursive: true });
    mkdirSync(host.runtimeDir);
    writeFileSync(host.serviceSocket, '');
    expect(() => choose()).toThrow(`--socket ${host.serviceSocket} --state-dir DIR for the service`);
  });

  it('--plugin picks one by name, by name without its tag (:latest), by id or id prefix', () => {
    install(A, 'tsmacvlan:latest');
    install(B, 'tsmacvlan:0.2.0', { enabled: false });
    expect(choose({ '--plugin': 'tsmacvlan:0.2.0' }).plugin?.id).toBe(B);
    expect(choose({ '--plugin': 'tsmacvlan' }).plugin?.id).toBe(A);
    expect(choose({ '--plugin': 'bbbb' }).plugin?.name).toBe('tsmacvlan:0.2.0');
    expect(choose({ '--plugin': A }).stateDir).toBe(propagated(A));
    expect(() => choose({ '--plugin': 'tsmacvlan:0.3.0' })).toThrow(
      `no tsmacvlan plugin 'tsmacvlan:0.3.0' in ${dataRoot}/plugins: installed: tsmacvlan:latest (id aaaaaaaaaaaa`,
    );
    expect(() => choose({ '--plugin': 'tsmacvlan', '--state-dir': '/x' })).toThrow(UsageError);
  });

  it('fills in what the flags or the environment leave out from the managed plugin they match', () => {
    const stateA = install(A, 'tsmacvlan:latest');
    const socketA = join(host.runtimeDir, A, 'tsmacvlan.sock');
    expect(choose({ '--state-dir': stateA })).toMatchObject({ socket: socketA, plugin: { id: A } });
    expect(choose({ '--socket': socketA })).toMatchObject({ stateDir: stateA, plugin: { id: A } });
    expect(choose({}, { TSMACVLAN_STATE_DIR: `${stateA}/` })).toMatchObject({ socket: socketA });
    expect(choose({ '--state-dir': '/elsewhere' })).toEqual({
      socket: host.serviceSocket,
      stateDir: '/elsewhere',
      found: 'given',
    });
  });
});

describe("Docker's plugin store", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'tsmv-store-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("reads the data root from daemon.json's data-root, else /var/lib/docker", () => {
    const file = join(dir, 'daemon.json');
    expect(dockerDataRoot(file)).toBe('/var/lib/docker');
    writeFileSync(file, JSON.stringify({ 'data-root': '/srv/docker', debug: true }));
    expect(dockerDataRoot(file)).toBe('/srv/docker');
    writeFileSync(file, '{ not json');
    expect(dockerDataRoot(file)).toBe('/var/lib/docker');
  });

  it('reports a config it cannot read, and still lists the others', () => {
    mkdirSync(join(dir, 'plugins', A), { recursive: true });
    writeFileSync(join(dir, 'plugins', A, 'config.json'), '{"plugin": ');
    const store = listManagedPlugins(dir, '/run/x');
    expect(store.plugins).toEqual([]);
    expect(store.problems).toEqual([expect.stringContaining(`${A}/config.json`)]);
    expect(listManagedPlugins(join(dir, 'nothing'))).toEqual({
      dir: join(dir, 'nothing', 'plugins'),
      plugins: [],
      problems: [],
    });
  });
});
