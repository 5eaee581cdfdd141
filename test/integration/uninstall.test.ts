// `tsmacvlan uninstall` as a process, against what a real daemon left in a private namespace: a plugin removed with
// its networks still there (docker plugin rm -f), with its state or (a managed plugin's propagated mount) without it,
// and one removed cleanly.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { UninstallReport } from '../../src/cli/uninstall';
import { endpointLinkName } from '../../src/driver/endpoint-naming';
import { shimName } from '../../src/driver/host-access';
import { internalParentName, VETH_PEER_PREFIX } from '../../src/driver/parents';
import { stateGroup } from '../../src/state/instance';
import {
  assertPrivateNetns,
  deleteLink,
  deleteLinksByPrefix,
  ip,
  linkNames,
  uniqueName,
  vethPair,
} from '../helpers/net';
import { writeStoredPlugin } from '../helpers/plugin-store';
import { CLI, post, spawnDaemon, waitForSocket, type Daemon } from '../helpers/serve';

assertPrivateNetns();

const id = () => randomBytes(32).toString('hex');

function uninstall(...args: string[]) {
  const run = spawnSync(process.execPath, [CLI, 'uninstall', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** The namespace's links and IPv4 routes, as uninstall must leave them when it only looks. */
function snapshot(): string {
  return JSON.stringify([linkNames().sort(), ip('-4', 'route', 'show')]);
}

describe('tsmacvlan uninstall', () => {
  let dir: string;
  let stateDir: string;
  let socket: string;
  let tlsDir: string;
  let parent: string;
  let daemon: Daemon | undefined;
  const extra: string[] = [];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsmv-uninstall-'));
    stateDir = join(dir, 'state');
    socket = join(dir, 'plugins', 'tsmacvlan-un.sock');
    tlsDir = join(dir, 'tls');
    parent = uniqueName('unp');
    vethPair(parent);
    daemon = spawnDaemon(['serve', '--socket', socket, '--state-dir', stateDir]);
    await waitForSocket(socket, daemon, 30_000);
  });
  afterEach(async () => {
    daemon?.child.kill('SIGKILL');
    await daemon?.exited;
    for (const name of [parent, ...extra.splice(0)]) deleteLink(name);
    deleteLinksByPrefix('tsmv');
    rmSync(dir, { recursive: true, force: true });
  });

  const where = () => ['--socket', socket, '--state-dir', stateDir, '--tls-dir', tlsDir];

  it('after a plugin removed with its networks: refuses until --force, shows, then deletes only its own links, its routes, socket and state', async () => {
    // A host_access network with a container's link still on the host (joined, never moved), and an internal one.
    const lan = id();
    const lanCreate = await post(socket, 'NetworkDriver.CreateNetwork', {
      NetworkID: lan,
      Options: { 'com.docker.network.generic': { parent, host_access: '10.72.0.250' } },
      IPv4Data: [{ Pool: '10.72.0.0/24', Gateway: '10.72.0.1/24', AuxAddresses: { host: '10.72.0.250/24' } }],
    });
    expect(lanCreate.status).toBe(200);
    const endpoint = id();
    await post(socket, 'NetworkDriver.CreateEndpoint', {
      NetworkID: lan,
      EndpointID: endpoint,
      Interface: { Address: '10.72.0.9/24', MacAddress: '02:42:0a:48:00:09' },
    });
    expect((await post(socket, 'NetworkDriver.Join', { NetworkID: lan, EndpointID: endpoint })).status).toBe(200);
    const internal = id();
    const internalCreate = await post(socket, 'NetworkDriver.CreateNetwork', {
      NetworkID: internal,
      Options: { 'com.docker.network.generic': {}, 'com.docker.network.internal': true },
      IPv4Data: [{ Pool: '10.73.0.0/24' }],
    });
    expect(internalCreate.status).toBe(200);
    // Marked by another instance (its alias, not this state's device group): never this uninstall's to delete.
    const stranger = uniqueName('tsmvx');
    ip('link', 'add', 'link', parent, 'name', stranger, 'type', 'macvlan');
    ip('link', 'set', stranger, 'alias', 'tsmacvlan:endpoint');
    extra.push(stranger);
    mkdirSync(tlsDir);
    writeFileSync(join(tlsDir, 'ca.pem'), 'x');
    const group = String(stateGroup(stateDir));
    const ours = ip('-o', 'link', 'show', 'group', group)
      .trim()
      .split('\n')
      .map((line) => line.split(': ')[1].split('@')[0]);
    const made = [
      endpointLinkName(endpoint),
      shimName(lan),
      internalParentName(internal),
      VETH_PEER_PREFIX + internal.slice(0, 10),
    ];
    expect(ours.sort()).toEqual(made.sort());
    expect(ip('-4', 'route', 'show')).toContain(`10.72.0.9 dev ${shimName(lan)}`);

    const running = uninstall(...where());
    expect(running.code).toBe(1);
    expect(running.stderr).toContain(`tsmacvlan: a plugin answers on ${socket}: stop it first`);

    daemon!.child.kill('SIGKILL'); // as `docker plugin rm -f` does with networks left
    await daemon!.exited;
    daemon = undefined;
    const recorded = uninstall(...where());
    expect(recorded.code).toBe(1);
    expect(recorded.stderr).toContain(`still records network(s) `);
    expect(recorded.stderr).toContain(lan.slice(0, 12));
    expect(recorded.stderr).toContain('give --force to remove their links anyway');

    const before = snapshot();
    const dry = uninstall(...where(), '--force', '--dry-run', '--json');
    expect(dry.code).toBe(0);
    const plan = JSON.parse(dry.stdout) as UninstallReport;
    expect(plan).toMatchObject({ version: 1, dryRun: true, stateDir });
    expect(
      plan.removed
        .filter((s) => s.kind === 'link')
        .map((s) => s.target)
        .sort(),
    ).toEqual(made.sort());
    // Endpoints and shims go before the parents they hang off.
    expect(
      plan.removed
        .slice(0, 2)
        .map((s) => s.target)
        .sort(),
    ).toEqual([endpointLinkName(endpoint), shimName(lan)].sort());
    expect(plan.removed.find((s) => s.target === shimName(lan))?.detail).toBe(
      'host-access shim; its address and host routes go with it',
    );
    expect(plan.removed.filter((s) => s.kind !== 'link')).toEqual([
      { kind: 'socket', target: socket, detail: 'left by a plugin that stopped without removing it' },
      {
        kind: 'state',
        target: stateDir,
        detail: expect.stringMatching(/^instance [0-9a-f]{32}: 2 network\(s\), 1 endpoint\(s\)$/),
      },
    ]);
    // Other files' links may share this namespace: the stranger and the TLS dir are kept, and nothing of this state.
    expect(plan.kept).toEqual(
      expect.arrayContaining([
        { target: `link ${stranger}`, why: expect.stringContaining(`ip link del ${stranger} if it is no one's`) },
        { target: tlsDir, why: expect.stringContaining('it holds ca.pem: files you put there for etcd') },
      ]),
    );
    for (const name of made) expect(plan.kept.map((k) => k.target)).not.toContain(`link ${name}`);
    expect(snapshot()).toBe(before);
    expect(existsSync(stateDir) && existsSync(socket)).toBe(true);

    const done = uninstall(...where(), '--force');
    expect(done.code).toBe(0);
    expect(done.stdout).toContain(
      `deleted link ${shimName(lan)} (host-access shim; its address and host routes go with it)`,
    );
    expect(done.stdout).toContain(`removed state directory ${stateDir} (instance `);
    expect(ip('-o', 'link', 'show', 'group', group).trim()).toBe('');
    expect(ip('-4', 'route', 'show')).not.toContain('10.72.0.');
    expect(linkNames()).toEqual(expect.arrayContaining([parent, `${parent}p`, stranger]));
    expect(existsSync(stateDir) || existsSync(socket)).toBe(false);
    expect(readdirSync(tlsDir)).toEqual(['ca.pem']);

    expect(uninstall(...where()).stdout).toContain('nothing of tsmacvlan left to remove');
  });

  it('after networks removed and the plugin stopped: no --force needed; the state and an empty TLS dir go', async () => {
    const network = id();
    await post(socket, 'NetworkDriver.CreateNetwork', {
      NetworkID: network,
      Options: { 'com.docker.network.generic': { parent } },
      IPv4Data: [{ Pool: '10.74.0.0/24' }],
    });
    expect((await post(socket, 'NetworkDriver.DeleteNetwork', { NetworkID: network })).status).toBe(200);
    daemon!.child.kill('SIGTERM');
    expect(await daemon!.exited).toBe(0);
    daemon = undefined;
    mkdirSync(tlsDir);

    const done = uninstall(...where());
    expect(done.code).toBe(0);
    expect(done.stdout.trim().split('\n')).toEqual([
      expect.stringMatching(
        new RegExp(
          `^removed state directory ${stateDir} \\(instance [0-9a-f]{32}: 0 network\\(s\\), 0 endpoint\\(s\\)\\)$`,
        ),
      ),
      `removed TLS directory ${tlsDir} (empty)`,
    ]);
    expect(existsSync(stateDir) || existsSync(tlsDir)).toBe(false);
    expect(linkNames()).toContain(parent);
  });

  it("after a managed plugin's removal took its state: lists the links left as orphans, deletes only those with --orphans", async () => {
    const lan = id();
    const created = await post(socket, 'NetworkDriver.CreateNetwork', {
      NetworkID: lan,
      Options: { 'com.docker.network.generic': { parent, host_access: '10.75.0.250' } },
      IPv4Data: [{ Pool: '10.75.0.0/24', AuxAddresses: { host: '10.75.0.250/24' } }],
    });
    expect(created.status).toBe(200);
    const group = stateGroup(stateDir) as number;
    // Another instance, alive: a managed plugin in Docker's store whose propagated mount holds its instance id.
    const dataRoot = join(dir, 'docker');
    const liveState = writeStoredPlugin(dataRoot, { id: id(), name: 'tsmacvlan:other', enabled: false });
    const liveGroup = stateGroup(liveState, true) as number;
    const live = uniqueName('tsmvl');
    ip('link', 'add', 'link', parent, 'name', live, 'type', 'macvlan');
    ip('link', 'set', live, 'group', String(liveGroup), 'alias', 'tsmacvlan:endpoint');
    extra.push(live);
    // Docker's `plugin rm -f`: the plugin stops with its network left, and its propagated mount (the state) goes.
    daemon!.child.kill('SIGKILL');
    await daemon!.exited;
    daemon = undefined;
    rmSync(stateDir, { recursive: true });
    rmSync(socket);
    const orphanWhere = [...where(), '--docker-data-root', dataRoot];

    const before = snapshot();
    const listed = uninstall(...orphanWhere, '--json');
    expect(listed.code, listed.stderr).toBe(0);
    const orphan = `device group ${group}, whose instance's state is gone (a plugin removed with its networks)`;
    // Earlier files' leftovers in this namespace may be listed too (as orphans): only this test's links are checked.
    expect(JSON.parse(listed.stdout)).toEqual({
      version: 1,
      dryRun: false,
      stateDir,
      instance: null,
      removed: [],
      kept: expect.arrayContaining([
        { target: `link ${shimName(lan)}`, why: `${orphan}: give --orphans to delete it` },
        { target: `link ${live}`, why: "another instance's, whose state dir is on this host" },
        { target: stateDir, why: 'no such directory: nothing to remove' },
      ]),
    });
    expect(snapshot()).toBe(before);

    const done = uninstall(...orphanWhere, '--orphans');
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toContain(
      `deleted link ${shimName(lan)} (host-access shim; its address and host routes go with it; ${orphan})`,
    );
    expect(done.stdout).not.toContain(`deleted link ${live}`);
    expect(ip('-o', 'link', 'show', 'group', String(group)).trim()).toBe('');
    expect(linkNames()).toEqual(expect.arrayContaining([parent, live]));
  });

  it('refuses a --state-dir that is not a tsmacvlan state dir, and removes nothing', () => {
    const elsewhere = join(dir, 'precious');
    mkdirSync(elsewhere);
    writeFileSync(join(elsewhere, 'notes.txt'), 'mine');
    const run = uninstall('--socket', join(dir, 'none.sock'), '--state-dir', elsewhere, '--force');
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      `${elsewhere} holds none of instance, format.json, networks, endpoints, ipam, cluster: it is not a tsmacvlan state dir`,
    );
    expect(readdirSync(elsewhere)).toEqual(['notes.txt']);
  });
});
