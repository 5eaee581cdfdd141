// Reconciliation at start and `tsmacvlan gc`: the plugin's leftovers go, everything else stays.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { endpointLinkName } from '../../../src/driver/endpoint-naming';
import { internalParentName } from '../../../src/driver/parents';
import {
  assertPrivateNetns,
  deleteLink,
  deleteLinksByPrefix,
  ip,
  link,
  linkNames,
  uniqueName,
  vethPair,
} from '../../helpers/net';
import { instanceGroup } from '../../../src/kernel/marks';
import { TEST_DRIVER, startPlugin } from '../../helpers/plugin';
import { CLI, spawnDaemon, waitForSocket } from '../../helpers/serve';
import { stateGroup } from '../../../src/state/instance';

/** Polls a condition every 10 ms, for at most 10 s. */
async function waitFor(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; !condition(); i++) {
    if (i === 1000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// The same driver name as the in-process plugin that made the state, so gc and the daemon are the same instance.
const socketOf = (stateDir: string) => join(stateDir, `${TEST_DRIVER}.sock`);
const OTHER_INSTANCE = String(instanceGroup('another instance'));

function gc(stateDir: string, ...args: string[]): string {
  return execFileSync(process.execPath, [CLI, 'gc', '--state-dir', stateDir, '--socket', socketOf(stateDir), ...args], {
    encoding: 'utf8',
  });
}

describe('reconciliation', () => {
  let stateDir: string;
  let parent: string;

  beforeAll(() => assertPrivateNetns());
  beforeEach(() => {
    stateDir = mkdtempSync(join(tmpdir(), 'tsmv-rec-'));
    parent = uniqueName('par');
    vethPair(parent);
  });
  afterEach(() => {
    deleteLink(parent);
    deleteLinksByPrefix('tsmv', 'oth');
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('deletes marked links nothing owns, keeps owned ones, unmarked strangers and links inside other namespaces', async () => {
    const plugin = await startPlugin(stateDir);
    const kept = 'a'.repeat(64);
    await plugin.call('NetworkDriver.CreateNetwork', {
      NetworkID: kept,
      Options: { 'com.docker.network.generic': {} },
    });
    await plugin.call('NetworkDriver.CreateEndpoint', {
      NetworkID: kept,
      EndpointID: kept,
      Interface: { Address: '10.61.0.2/24' },
    });
    await plugin.call('NetworkDriver.Join', { NetworkID: kept, EndpointID: kept });
    await plugin.close();
    const OURS = String(stateGroup(stateDir)); // the device group of this state's instance

    // Leftovers a crash or a lost state could leave: an endpoint link (even one a crash left without its alias)
    // and an internal parent, all in this instance's device group.
    ip('link', 'add', 'tsmveorphan0001', 'link', parent, 'group', OURS, 'type', 'macvlan', 'mode', 'bridge');
    ip('link', 'set', 'tsmveorphan0001', 'alias', 'tsmacvlan:endpoint');
    ip('link', 'add', 'tsmveorphan0002', 'link', parent, 'group', OURS, 'type', 'macvlan', 'mode', 'bridge');
    ip(
      'link',
      'add',
      'tsmviorphan0001',
      'group',
      OURS,
      'type',
      'veth',
      'peer',
      'name',
      'tsmvporphan0001',
      'group',
      OURS,
    );
    // Not ours: a stranger's macvlan, another tsmacvlan instance's in-flight endpoint link (same name prefix and
    // alias, another group), and one of our links inside a container namespace.
    ip('link', 'add', 'othmacvlan', 'link', parent, 'type', 'macvlan');
    ip('link', 'set', 'othmacvlan', 'alias', 'someone-else');
    ip('link', 'add', 'tsmveotherinst1', 'link', parent, 'group', OTHER_INSTANCE, 'type', 'macvlan');
    ip('link', 'set', 'tsmveotherinst1', 'alias', 'tsmacvlan:endpoint');
    const container = spawn('unshare', ['--net', 'sleep', '30']);
    try {
      // The namespace exists once unshare has made it (its /proc entry then names another one than ours).
      const ours = readlinkSync('/proc/self/ns/net');
      await waitFor(() => {
        try {
          return readlinkSync(`/proc/${container.pid}/ns/net`) !== ours;
        } catch {
          return false;
        }
      }, 'the container namespace');
      ip('link', 'add', 'tsmveincontaine', 'link', parent, 'group', OURS, 'type', 'macvlan');
      ip('link', 'set', 'tsmveincontaine', 'alias', 'tsmacvlan:endpoint');
      ip('link', 'set', 'tsmveincontaine', 'netns', String(container.pid));

      const before = linkNames();
      const dry = gc(stateDir, '--dry-run');
      expect(dry).toContain(
        'would delete link tsmveorphan0001: endpoint link that no network or endpoint of the state owns',
      );
      expect(dry).toContain(
        'would delete link tsmveorphan0002: endpoint link that no network or endpoint of the state owns',
      );
      expect(dry).toMatch(/would delete link tsmv[ip]orphan0001: internal parent link/);
      expect(dry).not.toContain('tsmveotherinst1');
      expect(dry).not.toContain(endpointLinkName(kept));
      expect(linkNames()).toEqual(before); // --dry-run changes nothing

      const daemon = spawnDaemon(['serve', '--socket', socketOf(stateDir), '--state-dir', stateDir]);
      await waitForSocket(socketOf(stateDir), daemon);
      daemon.child.kill('SIGTERM');
      await daemon.exited;
      expect(daemon.output()).toMatch(/"link":"tsmveorphan0001","action":"delete"/); // one log line per repair

      const after = linkNames();
      expect(after).not.toContain('tsmveorphan0001');
      expect(after).not.toContain('tsmveorphan0002');
      expect(after).toContain('tsmveotherinst1');
      expect(after).not.toContain('tsmviorphan0001');
      expect(after).not.toContain('tsmvporphan0001');
      expect(after).toContain(endpointLinkName(kept));
      expect(after).toContain(internalParentName(kept));
      expect(after).toContain('othmacvlan');
      expect(
        execFileSync('nsenter', ['-t', String(container.pid), '-n', 'ip', '-o', 'link'], { encoding: 'utf8' }),
      ).toContain('tsmveincontaine');
      expect(gc(stateDir, '--dry-run')).toBe('nothing to repair\n');
    } finally {
      container.kill('SIGKILL');
    }
    expect(link('othmacvlan')).toBeDefined();
  });

  it('plain gc, with the plugin stopped, does what --dry-run listed: leftovers deleted, a lost parent re-created', async () => {
    const plugin = await startPlugin(stateDir);
    const internal = 'b'.repeat(64);
    await plugin.call('NetworkDriver.CreateNetwork', {
      NetworkID: internal,
      Options: { 'com.docker.network.generic': {} },
    });
    await plugin.close();
    // As after a reboot, the internal network's parent is gone; and a crash left an endpoint link of this instance.
    const internalParent = internalParentName(internal);
    deleteLink(internalParent);
    const OURS = String(stateGroup(stateDir));
    ip('link', 'add', 'tsmveorphan0003', 'link', parent, 'group', OURS, 'type', 'macvlan', 'mode', 'bridge');
    ip('link', 'set', 'tsmveorphan0003', 'alias', 'tsmacvlan:endpoint');

    const listed = gc(stateDir, '--dry-run').trim().split('\n');
    const done = gc(stateDir).trim().split('\n');
    expect(done.sort()).toEqual(listed.map((line) => line.replace(/^would /, '')).sort());
    expect(done).toContainEqual(expect.stringMatching(/^delete link tsmveorphan0003: /));
    expect(done).toContainEqual(expect.stringMatching(new RegExp(`^re-create link ${internalParent}: `)));
    expect(link('tsmveorphan0003')).toBeUndefined();
    expect(link(internalParent)).toBeDefined();
    expect(gc(stateDir)).toBe('nothing to repair\n');
  });

  it('gc refuses to repair under a running plugin, which repairs at its own start', async () => {
    const socket = socketOf(stateDir);
    const daemon = spawnDaemon(['serve', '--socket', socket, '--state-dir', stateDir]);
    try {
      await waitForSocket(socket, daemon);
      expect(() =>
        execFileSync(process.execPath, [CLI, 'gc', '--state-dir', stateDir, '--socket', socket], {
          encoding: 'utf8',
          stdio: 'pipe',
        }),
      ).toThrow(/the plugin is running on .* and repairs at its own start; stop it first, or use --dry-run/);
    } finally {
      daemon.child.kill('SIGKILL');
    }
  });
});
