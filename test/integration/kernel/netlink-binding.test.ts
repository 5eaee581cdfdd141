// The netlink binding the plugin loads is our patched build, and it does what the patch says: ENOBUFS is an 'error'
// event and the socket goes on, an exception in a callback is an ordinary JS exception. The prebuilt one aborts.
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRtNetlink } from 'netlink';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { checkPatchedNetlink } from '../../../src/kernel/netlink-binding';
import { runChild } from '../../helpers/child';
import { assertPrivateNetns, deleteLink, ip } from '../../helpers/net';

const ROOT = join(__dirname, '../../..');
const NETLINK_DIR = dirname(require.resolve('netlink/package.json'));
// A node child: well under a second here, minutes on arm64's node under emulation (test/arm64/run.sh).
const CHILD_TIMEOUT_MS = 300_000;

describe('the netlink binding', () => {
  const cleanups: (() => void)[] = [];
  beforeAll(() => assertPrivateNetns());
  afterEach(() => {
    for (const cleanup of cleanups.splice(0)) cleanup();
  });

  it('is the patched build from build/Release, the one netlink itself loads', () => {
    expect(checkPatchedNetlink()).toBe(join(NETLINK_DIR, 'build/Release/netlink_binding.node'));
  });

  it('is refused when it is the prebuilt binary', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tmvN-prebuilt-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    for (const entry of ['package.json', 'prebuilds'])
      cpSync(join(NETLINK_DIR, entry), join(dir, entry), { recursive: true });
    expect(() => checkPatchedNetlink(dir)).toThrow(
      new RegExp(
        `netlink native binding loaded from .*prebuilds/linux-${process.arch}/node\\.napi\\.node is not tsmacvlan's ` +
          'patched build[\\s\\S]*npm run build:netlink',
      ),
    );
  });

  it('reports a full receive buffer as ENOBUFS from recvmsg, and the socket still answers', async () => {
    ip('link', 'add', 'tmvNb0', 'type', 'veth', 'peer', 'name', 'tmvNb1');
    cleanups.push(() => deleteLink('tmvNb0'));
    const socket = createRtNetlink();
    cleanups.push(() => socket.socket.close());
    socket.socket.setRecvBufferSize(16384); // 32 KiB: about ten getLink replies
    const errors: (Error & { code?: string; syscall?: string; errno?: number })[] = [];
    socket.socket.on('error', (err) => errors.push(err));
    const burst = await Promise.allSettled(
      Array.from({ length: 64 }, () => socket.getLink({}, { ifname: 'tmvNb0' }, { timeout: 2000 })),
    );
    // At least one overflow (how many depends on how the replies and the reads interleave), each reported the same way.
    expect(errors.length).toBeGreaterThanOrEqual(1);
    for (const { code, syscall, errno } of errors)
      expect({ code, syscall, errno }).toEqual({ code: 'ENOBUFS', syscall: 'recvmsg', errno: 105 });
    const answered = burst.filter((r) => r.status === 'fulfilled').length;
    expect(answered).toBeGreaterThan(0);
    expect(answered).toBeLessThan(64); // the dropped replies' requests timed out
    const [again] = await socket.getLink({}, { ifname: 'tmvNb0' }, { timeout: 2000 });
    expect(again.attrs.ifname).toBe('tmvNb0');
  });

  it('turns an exception thrown in a native callback into an ordinary uncaught JS exception', async () => {
    // A send callback runs from the binding's libuv timer: the prebuilt binding dies of SIGABRT here.
    const script = (handled: boolean) => `
      ${handled ? "process.on('uncaughtException', (e) => { console.log('caught: ' + e.message); process.exit(0); });" : ''}
      const socket = require('netlink').createRtNetlink();
      socket.socket.send(18, Buffer.alloc(16), {}, () => { throw new Error('thrown in a send callback'); });`;
    const handled = await runChild(process.execPath, ['-e', script(true)], { cwd: ROOT, timeoutMs: CHILD_TIMEOUT_MS });
    expect({ status: handled.status, signal: handled.signal, stdout: handled.stdout }).toEqual({
      status: 0,
      signal: null,
      stdout: 'caught: thrown in a send callback\n',
    });
    const unhandled = await runChild(process.execPath, ['-e', script(false)], {
      cwd: ROOT,
      timeoutMs: CHILD_TIMEOUT_MS,
    });
    expect({ status: unhandled.status, signal: unhandled.signal }).toEqual({ status: 1, signal: null });
    expect(unhandled.stderr).toContain('Error: thrown in a send callback');
  });

  it('turns an exception thrown by a message listener (read in the poll handler) into an uncaught JS exception', async () => {
    cleanups.push(() => deleteLink('tmvNe0'));
    const script = `
      process.on('uncaughtException', (e) => { console.log('caught: ' + e.message); process.exit(0); });
      const socket = require('netlink').createRtNetlink();
      socket.addMembership('LINK');
      // The raw socket's listener: RtNetlinkSocket turns its own listeners' exceptions into 'invalid' events.
      socket.socket.socket.on('message', () => { throw new Error('thrown in a message listener'); });
      require('node:child_process').execFileSync('ip', ['link', 'add', 'tmvNe0', 'type', 'veth', 'peer', 'name', 'tmvNe1']);
      setTimeout(() => process.exit(2), 10_000);`;
    const run = await runChild(process.execPath, ['-e', script], { cwd: ROOT, timeoutMs: CHILD_TIMEOUT_MS });
    expect({ status: run.status, signal: run.signal, stdout: run.stdout }).toEqual({
      status: 0,
      signal: null,
      stdout: 'caught: thrown in a message listener\n',
    });
  });
});
