// Endpoints an engine forgot: Docker created one and died before its Join, or joined it and died before it moved the
// link into the container (or dropped it at its next start while the plugin could not answer). After the grace
// period the plugin deletes what is certainly unused (no Join, a link still in the host's namespace, or after a start
// a macvlan its parent no longer lists: in no running container) as DeleteEndpoint would, and its address is released
// after the release grace. An endpoint whose link is in a running container's namespace is never touched. The daemon, as a process, in a private namespace.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertPrivateNetns, deleteLink, ip, linkNames, uniqueName, vethPair } from '../helpers/net';
import { startPlugin } from '../helpers/plugin';
import { post, postOk, spawnDaemon, waitForSocket, whenTrue, loggedSoon, type Daemon } from '../helpers/serve';
import { setIoFault } from '../../src/state/faults';

const GRACE_S = 2;
const GW = { RequestAddressType: 'com.docker.network.gateway' };
const SUBNET = '10.66.0.0/24';
const POOL = `tsmacvlan:${SUBNET}`;
let parent: string;
let dir: string;
let daemon: Daemon | undefined;
let sandbox: ChildProcess | undefined;

beforeAll(() => {
  assertPrivateNetns();
  parent = uniqueName('fgp');
  vethPair(parent);
  dir = mkdtempSync(join(tmpdir(), 'tsmv-forgotten-'));
});
afterEach(async () => {
  daemon?.child.kill('SIGKILL');
  await daemon?.exited;
  sandbox?.kill('SIGKILL');
  for (const name of linkNames().filter((n) => n.startsWith('tsmv'))) deleteLink(name);
});
afterAll(() => {
  deleteLink(parent);
  rmSync(dir, { recursive: true, force: true });
});

async function start(state: string): Promise<string> {
  const socket = join(dir, `${state}.sock`);
  daemon = spawnDaemon(['serve', '--socket', socket, '--state-dir', join(dir, state)], {
    TSMACVLAN_ENDPOINT_GRACE_S: String(GRACE_S),
    TSMACVLAN_RELEASE_GRACE_S: String(GRACE_S),
  });
  await waitForSocket(socket, daemon);
  return socket;
}

const call = postOk;

/** `docker network create` then the first half of `docker run` on our driver and IPAM: an endpoint and its address. */
async function endpointCreated(socket: string, ep: string): Promise<{ net: string; address: string }> {
  const { PoolID } = await call(socket, 'IpamDriver.RequestPool', { AddressSpace: 'local', Pool: SUBNET, Options: {} });
  const gateway = (await call(socket, 'IpamDriver.RequestAddress', { PoolID, Address: '', Options: GW })).Address;
  const address = (await call(socket, 'IpamDriver.RequestAddress', { PoolID, Address: '', Options: null })).Address;
  const net = 'n'.repeat(64);
  const ipv4 = [{ AddressSpace: 'local', Pool: SUBNET, Gateway: gateway }];
  const generic = { 'com.docker.network.generic': { parent } };
  await call(socket, 'NetworkDriver.CreateNetwork', { NetworkID: net, Options: generic, IPv4Data: ipv4 });
  await call(socket, 'NetworkDriver.CreateEndpoint', {
    NetworkID: net,
    EndpointID: ep,
    Interface: { Address: address },
  });
  return { net, address: address.split('/')[0] };
}

const linkOf = (ep: string) => `tsmve${ep.slice(0, 10)}`;
const recorded = (state: string, ep: string) => existsSync(join(dir, state, 'endpoints', `${ep}.json`));
/** Whether a request for exactly `address` is granted: false while an endpoint (or a due release) holds it. */
const free = async (socket: string, address: string) =>
  (await post(socket, 'IpamDriver.RequestAddress', { PoolID: POOL, Address: address, Options: {} })).status === 200;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('an endpoint its engine forgot', () => {
  it('never joined: its record goes after the grace period, and its address after the release grace', async () => {
    const socket = await start('never-joined');
    const ep = 'a'.repeat(64);
    const asked = Date.now(); // the grace runs from the answer, which comes after this
    const { address } = await endpointCreated(socket, ep);
    expect(await free(socket, address)).toBe(false);
    const goneAt = await whenTrue(GRACE_S + 10, () => !recorded('never-joined', ep));
    expect(goneAt).toBeDefined();
    expect(goneAt! - asked).toBeGreaterThanOrEqual(GRACE_S * 1000);
    expect(await loggedSoon(daemon!, 'deleted an endpoint Docker never joined')).toBe(true);
    expect(await whenTrue(GRACE_S + 10, () => free(socket, address))).toBeDefined();
  }, 40_000);

  it('joined, its link never taken into a container (also across a restart): link and record go', async () => {
    let socket = await start('left-on-host');
    const [kept, restarted] = ['b'.repeat(64), 'c'.repeat(64)];
    const { net } = await endpointCreated(socket, kept);
    await call(socket, 'NetworkDriver.CreateEndpoint', { NetworkID: net, EndpointID: restarted, Interface: {} });
    for (const ep of [kept, restarted])
      await call(socket, 'NetworkDriver.Join', { NetworkID: net, EndpointID: ep, SandboxKey: '' });
    daemon!.child.kill('SIGKILL');
    await daemon!.exited;
    expect(linkNames()).toEqual(expect.arrayContaining([linkOf(kept), linkOf(restarted)]));
    socket = await start('left-on-host');
    const gone = await whenTrue(
      GRACE_S + 10,
      () => !linkNames().includes(linkOf(restarted)) && !recorded('left-on-host', restarted),
    );
    expect(gone).toBeDefined();
    expect(recorded('left-on-host', kept)).toBe(false);
    expect(await loggedSoon(daemon!, "link stayed in the host's namespace")).toBe(true);
  }, 40_000);

  it("joined and in a container's namespace: kept past the grace period, deleted when Docker asks", async () => {
    const socket = await start('in-container');
    const ep = 'd'.repeat(64);
    const { net } = await endpointCreated(socket, ep);
    await call(socket, 'NetworkDriver.Join', { NetworkID: net, EndpointID: ep, SandboxKey: '' });
    sandbox = spawn('unshare', ['--net', '--', 'sleep', '60'], { stdio: 'ignore' });
    await sleep(300);
    ip('link', 'set', 'dev', linkOf(ep), 'netns', String(sandbox.pid)); // what Docker does after the Join
    await sleep(GRACE_S * 1000 + 2_000);
    expect(recorded('in-container', ep)).toBe(true);
    expect(daemon!.output()).not.toContain('deleted an endpoint');
    await call(socket, 'NetworkDriver.DeleteEndpoint', { NetworkID: net, EndpointID: ep });
    expect(recorded('in-container', ep)).toBe(false);
  }, 40_000);

  it('joined, its container gone with the engine while the plugin was down: deleted a grace after the start; one in a running container stays', async () => {
    let socket = await start('away');
    const [gone, running] = ['g'.repeat(64), 'h'.repeat(64)];
    const { net } = await endpointCreated(socket, gone);
    await call(socket, 'NetworkDriver.CreateEndpoint', { NetworkID: net, EndpointID: running, Interface: {} });
    const containers = [gone, running].map(() => spawn('unshare', ['--net', '--', 'sleep', '60'], { stdio: 'ignore' }));
    try {
      await sleep(300);
      for (const [i, ep] of [gone, running].entries()) {
        await call(socket, 'NetworkDriver.Join', { NetworkID: net, EndpointID: ep, SandboxKey: '' });
        const pid = String(containers[i].pid);
        ip('link', 'set', 'dev', linkOf(ep), 'netns', pid); // what Docker does after the Join, then it sets it up
        execFileSync('nsenter', ['-t', pid, '-n', 'ip', 'link', 'set', 'dev', linkOf(ep), 'up']);
      }
      daemon!.child.kill('SIGKILL');
      await daemon!.exited;
      containers[0].kill('SIGKILL'); // its namespace, and the link in it, go; its engine never asks to delete it
      socket = await start('away');
      const goneAt = await whenTrue(GRACE_S + 10, () => !recorded('away', gone));
      expect(goneAt).toBeDefined();
      expect(await loggedSoon(daemon!, 'in no running container')).toBe(true);
      await sleep(1_000);
      expect(recorded('away', running)).toBe(true);
      expect(linkNames().some((n) => n.startsWith('tsmvu'))).toBe(false); // the list check's macvlan is gone
    } finally {
      for (const c of containers) c.kill('SIGKILL');
    }
  }, 40_000);

  it('whose release due cannot be noted (the journal fails): kept as it was, deleted at a later check', async () => {
    const before = process.env.TSMACVLAN_ENDPOINT_GRACE_S;
    process.env.TSMACVLAN_ENDPOINT_GRACE_S = '1';
    const plugin = await startPlugin(join(dir, 'due-fails'));
    try {
      const call = async (method: string, body: unknown) => {
        const { status, json } = await plugin.call(method, body);
        if (status !== 200) throw new Error(`${method}: ${json?.Err}`);
        return json;
      };
      const { PoolID } = await call('IpamDriver.RequestPool', { AddressSpace: 'local', Pool: SUBNET, Options: {} });
      const gateway = (await call('IpamDriver.RequestAddress', { PoolID, Address: '', Options: GW })).Address;
      const address = (await call('IpamDriver.RequestAddress', { PoolID, Address: '', Options: null })).Address;
      const [net, ep] = ['m'.repeat(64), 'f'.repeat(64)];
      const ipv4 = [{ AddressSpace: 'local', Pool: SUBNET, Gateway: gateway }];
      await call('NetworkDriver.CreateNetwork', {
        NetworkID: net,
        Options: { 'com.docker.network.generic': { parent } },
        IPv4Data: ipv4,
      });
      setIoFault('EIO:write,sync:/ipam/');
      await call('NetworkDriver.CreateEndpoint', { NetworkID: net, EndpointID: ep, Interface: { Address: address } });
      await sleep(2_500); // a check has come and gone: the due could not be written
      expect(recorded('due-fails', ep)).toBe(true);
      setIoFault(undefined);
      expect(await whenTrue(5, () => !recorded('due-fails', ep))).toBeDefined();
    } finally {
      setIoFault(undefined);
      if (before === undefined) delete process.env.TSMACVLAN_ENDPOINT_GRACE_S;
      else process.env.TSMACVLAN_ENDPOINT_GRACE_S = before;
      await plugin.destroy();
    }
  }, 40_000);
});
