// A container removed while the plugin dies: Docker's DeleteEndpoint reached it, its ReleaseAddress did not (cut
// short by a kill, retried with an empty body, then given up). The address is found again from the endpoint the
// driver deleted and released after the grace period, in the local journal and in etcd; an address of a network on
// another IPAM (one of this driver's on Docker's IPAM, the same subnet and address as a pool of ours) is never
// touched. The daemon, as a process, in a private namespace.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKv } from '../../src/cluster/etcd';
import { EtcdCluster } from '../lab/etcd';
import { assertPrivateNetns, deleteLink, linkNames, uniqueName, vethPair } from '../helpers/net';
import { startPlugin } from '../helpers/plugin';
import { post, postOk, spawnDaemon, waitForSocket, whenTrue, loggedSoon, type Daemon } from '../helpers/serve';
import { setIoFault } from '../../src/state/faults';

const GRACE_S = 3;
const GW = { RequestAddressType: 'com.docker.network.gateway' };
const etcd = EtcdCluster.onHost('tmvR', '127.0.0.1', 23980);
let parent: string;
let dir: string;
let daemon: Daemon | undefined;

beforeAll(async () => {
  assertPrivateNetns();
  parent = uniqueName('lrp');
  vethPair(parent);
  dir = mkdtempSync(join(tmpdir(), 'tsmv-lost-release-'));
  await etcd.start();
}, 60_000);
afterEach(async () => {
  daemon?.child.kill('SIGKILL');
  await daemon?.exited;
  for (const name of linkNames().filter((n) => n.startsWith('tsmv'))) deleteLink(name);
});
afterAll(async () => {
  deleteLink(parent);
  await etcd.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

/** The daemon on `state` (with etcd for the cluster case), answering on its socket. */
async function start(state: string, withEtcd: boolean): Promise<string> {
  const socket = join(dir, `${state}.sock`);
  const etcdFlags = withEtcd ? ['--etcd', etcd.endpoints.join(','), '--etcd-prefix', `/tmvR/${state}`] : [];
  daemon = spawnDaemon(['serve', '--socket', socket, '--state-dir', join(dir, state), ...etcdFlags], {
    TSMACVLAN_RELEASE_GRACE_S: String(GRACE_S),
  });
  await waitForSocket(socket, daemon);
  return socket;
}

const call = postOk;

/**
 * What Docker does for `docker network create` and `docker run` on a network of our driver and our IPAM, then for
 * `docker rm` up to the plugin's death: DeleteEndpoint, and no ReleaseAddress. With `addressSpace` 'LocalDefault'
 * the driver's network is on Docker's own IPAM, and our IPAM's pool, of the same subnet, is another network's.
 */
async function containerRemovedAsThePluginDies(
  socket: string,
  subnet: string,
  addressSpace = 'local',
): Promise<{ address: string; deletedAt: number }> {
  const { PoolID } = await call(socket, 'IpamDriver.RequestPool', { AddressSpace: 'local', Pool: subnet, Options: {} });
  const gateway = (await call(socket, 'IpamDriver.RequestAddress', { PoolID, Address: '', Options: GW })).Address;
  const address = (await call(socket, 'IpamDriver.RequestAddress', { PoolID, Address: '', Options: null })).Address;
  const [net, ep] = ['n'.repeat(64), 'e'.repeat(64)];
  const ipv4 = [{ AddressSpace: addressSpace, Pool: subnet, Gateway: gateway }];
  const generic = { 'com.docker.network.generic': { parent } };
  await call(socket, 'NetworkDriver.CreateNetwork', { NetworkID: net, Options: generic, IPv4Data: ipv4 });
  await call(socket, 'NetworkDriver.CreateEndpoint', {
    NetworkID: net,
    EndpointID: ep,
    Interface: { Address: address },
  });
  await call(socket, 'NetworkDriver.Join', { NetworkID: net, EndpointID: ep, SandboxKey: '' });
  await call(socket, 'NetworkDriver.Leave', { NetworkID: net, EndpointID: ep });
  const deletedAt = Date.now();
  await call(socket, 'NetworkDriver.DeleteEndpoint', { NetworkID: net, EndpointID: ep });
  daemon!.child.kill('SIGKILL'); // ReleaseAddress cut short
  await daemon!.exited;
  return { address: address.split('/')[0], deletedAt };
}

/** Docker's retry of the cut-short ReleaseAddress: the same URL with an empty body, which the plugin cannot carry out. */
async function dockersRetry(socket: string): Promise<void> {
  const retry = await post(socket, 'IpamDriver.ReleaseAddress');
  expect(retry.status).toBe(400);
  expect(retry.json.Err).toMatch(/empty body/);
}

const poolOf = (subnet: string, cluster: boolean) => `tsmacvlan:${subnet}${cluster ? ',cluster' : ''}`;

describe('a ReleaseAddress lost to a crash', () => {
  it('local pool: the address of the endpoint the driver deleted is released after the grace period', async () => {
    let socket = await start('local', false);
    const { address, deletedAt } = await containerRemovedAsThePluginDies(socket, '10.64.0.0/24');
    socket = await start('local', false);
    await dockersRetry(socket);
    const free = () =>
      post(socket, 'IpamDriver.RequestAddress', {
        PoolID: poolOf('10.64.0.0/24', false),
        Address: address,
        Options: {},
      }).then((r) => r.status === 200);
    const freedAt = await whenTrue(GRACE_S + 10, free);
    expect(freedAt).toBeDefined();
    expect(freedAt! - deletedAt).toBeGreaterThanOrEqual(GRACE_S * 1000); // not before Docker's own could have come
    expect(await loggedSoon(daemon!, `"address":"${address}"`)).toBe(true);
    expect(await loggedSoon(daemon!, 'whose ReleaseAddress never came')).toBe(true);
  });

  it('cluster pool: the claim in etcd is released after the grace period, by its token', async () => {
    let socket = await start('cluster', true);
    const { address, deletedAt } = await containerRemovedAsThePluginDies(socket, '10.65.0.0/24');
    const kv = new EtcdKv({ endpoints: etcd.endpoints, prefix: '/tmvR/cluster' });
    const key = `/tmvR/cluster/v1/subnets/10.65.0.0_24/addresses/${address}`;
    const claimed = async () => (await kv.range(key)).entries.length > 0;
    try {
      expect(await claimed()).toBe(true);
      socket = await start('cluster', true);
      await dockersRetry(socket);
      const freedAt = await whenTrue(GRACE_S + 10, async () => !(await claimed()));
      expect(freedAt).toBeDefined();
      expect(freedAt! - deletedAt).toBeGreaterThanOrEqual(GRACE_S * 1000);
    } finally {
      await kv.close();
    }
  });

  it("a network on Docker's IPAM: its endpoint's delete releases nothing of ours, even at the same address", async () => {
    let socket = await start('other', false);
    const { address } = await containerRemovedAsThePluginDies(socket, '10.66.0.0/24', 'LocalDefault');
    socket = await start('other', false);
    await dockersRetry(socket);
    await new Promise((r) => setTimeout(r, (GRACE_S + 2) * 1000));
    const again = await post(socket, 'IpamDriver.RequestAddress', {
      PoolID: poolOf('10.66.0.0/24', false),
      Address: address,
      Options: {},
    });
    expect(again.json.Err).toMatch(/already in use/);
  });

  it('a delete that fails notes no due (Docker keeps the endpoint and its address); its retry that succeeds does', async () => {
    const plugin = await startPlugin(join(dir, 'failed-delete'));
    try {
      const subnet = '10.67.0.0/24';
      const ok = async (method: string, body: unknown) => {
        const { status, json } = await plugin.call(method, body);
        expect(status, `${method}: ${json?.Err}`).toBe(200);
        return json;
      };
      const { PoolID } = await ok('IpamDriver.RequestPool', { AddressSpace: 'local', Pool: subnet, Options: {} });
      const gateway = (await ok('IpamDriver.RequestAddress', { PoolID, Address: '', Options: GW })).Address;
      const address = (await ok('IpamDriver.RequestAddress', { PoolID, Address: '', Options: null })).Address;
      const [net, ep] = ['m'.repeat(64), 'f'.repeat(64)];
      const ipv4 = [{ AddressSpace: 'local', Pool: subnet, Gateway: gateway }];
      const generic = { 'com.docker.network.generic': { parent } };
      await ok('NetworkDriver.CreateNetwork', { NetworkID: net, Options: generic, IPv4Data: ipv4 });
      await ok('NetworkDriver.CreateEndpoint', { NetworkID: net, EndpointID: ep, Interface: { Address: address } });
      const journal = () => readFileSync(join(dir, 'failed-delete', 'ipam', '10.67.0.0_24.jnl'), 'utf8');
      setIoFault('EIO:sync:/endpoints', 1); // the endpoint record's removal is not durable
      const failed = await plugin.call('NetworkDriver.DeleteEndpoint', { NetworkID: net, EndpointID: ep });
      expect(failed.status).not.toBe(200);
      expect(failed.json.Err).toMatch(/EIO/);
      expect(journal()).not.toContain('"due"');
      await ok('NetworkDriver.DeleteEndpoint', { NetworkID: net, EndpointID: ep });
      expect(journal()).toContain(`"t":"due","a":"${address.split('/')[0]}"`);
    } finally {
      setIoFault(undefined);
      await plugin.close();
    }
  });
});
