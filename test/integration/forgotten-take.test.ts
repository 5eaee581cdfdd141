// Addresses an engine took and forgot: Docker's RequestAddress was answered, and the engine died before its
// CreateEndpoint (at its next start it knows of neither). After the grace period the IPAM releases an address that
// none of the driver's endpoints, gateways or aux addresses holds, in the local journal and in etcd, also across a
// restart of the plugin; a subnet whose pools another driver's network shares is never touched. The daemon, as a
// process, in a private namespace.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKv } from '../../src/cluster/etcd';
import { EtcdCluster } from '../lab/etcd';
import { assertPrivateNetns, deleteLink, linkNames, uniqueName, vethPair } from '../helpers/net';
import { post, postOk, spawnDaemon, waitForSocket, whenTrue, loggedSoon, type Daemon } from '../helpers/serve';

const GRACE_S = 3;
const GW = { RequestAddressType: 'com.docker.network.gateway' };
const etcd = EtcdCluster.onHost('tmvF', '127.0.0.1', 23990);
let parent: string;
let dir: string;
let daemon: Daemon | undefined;

beforeAll(async () => {
  assertPrivateNetns();
  parent = uniqueName('ftp');
  vethPair(parent);
  dir = mkdtempSync(join(tmpdir(), 'tsmv-forgotten-take-'));
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

async function start(state: string, withEtcd = false): Promise<string> {
  const socket = join(dir, `${state}.sock`);
  const etcdFlags = withEtcd ? ['--etcd', etcd.endpoints.join(','), '--etcd-prefix', `/tmvF/${state}`] : [];
  daemon = spawnDaemon(['serve', '--socket', socket, '--state-dir', join(dir, state), ...etcdFlags], {
    TSMACVLAN_ENDPOINT_GRACE_S: String(GRACE_S),
  });
  await waitForSocket(socket, daemon);
  return socket;
}

const call = postOk;
const bare = (cidr: string) => cidr.split('/')[0];

/**
 * `docker network create --aux-address printer=<aux>` on our driver and IPAM, then `docker run`'s two calls for
 * `kept` (RequestAddress, CreateEndpoint) and the first alone for `forgotten`: the engine died in between.
 */
async function networkAndTakes(socket: string, subnet: string, aux: string) {
  const { PoolID } = await call(socket, 'IpamDriver.RequestPool', { AddressSpace: 'local', Pool: subnet, Options: {} });
  const gateway = (await call(socket, 'IpamDriver.RequestAddress', { PoolID, Address: '', Options: GW })).Address;
  await call(socket, 'IpamDriver.RequestAddress', { PoolID, Address: aux, Options: null });
  const net = 'n'.repeat(64);
  const ipv4 = [{ AddressSpace: 'local', Pool: subnet, Gateway: gateway, AuxAddresses: { printer: `${aux}/24` } }];
  const generic = { 'com.docker.network.generic': { parent } };
  await call(socket, 'NetworkDriver.CreateNetwork', { NetworkID: net, Options: generic, IPv4Data: ipv4 });
  const kept = (await call(socket, 'IpamDriver.RequestAddress', { PoolID, Address: '', Options: null })).Address;
  await call(socket, 'NetworkDriver.CreateEndpoint', {
    NetworkID: net,
    EndpointID: 'e'.repeat(64),
    Interface: { Address: kept },
  });
  const askedAt = Date.now(); // the grace runs from the answer, which comes after this
  const forgotten = (await call(socket, 'IpamDriver.RequestAddress', { PoolID, Address: '', Options: null })).Address;
  return { PoolID, gateway: bare(gateway), kept: bare(kept), forgotten: bare(forgotten), askedAt };
}

/** Whether a request for exactly `address` is refused as in use (and, when it is granted, gives it back). */
async function held(socket: string, PoolID: string, address: string): Promise<boolean> {
  const asked = await post(socket, 'IpamDriver.RequestAddress', { PoolID, Address: address, Options: {} });
  if (asked.status === 200) {
    await call(socket, 'IpamDriver.ReleaseAddress', { PoolID, Address: address });
    return false;
  }
  expect(asked.json.Err).toMatch(/in use/);
  return true;
}

const RELEASED = 'released an address Docker took and never gave an endpoint';

describe('an address its engine took and forgot', () => {
  it('local pool: released after the grace period; the endpoint, gateway and aux addresses stay', async () => {
    const socket = await start('local');
    const taken = await networkAndTakes(socket, '10.68.0.0/24', '10.68.0.250');
    expect(await held(socket, taken.PoolID, taken.forgotten)).toBe(true);
    const freedAt = await whenTrue(GRACE_S + 10, async () => !(await held(socket, taken.PoolID, taken.forgotten)));
    expect(freedAt).toBeDefined();
    expect(freedAt! - taken.askedAt).toBeGreaterThanOrEqual(GRACE_S * 1000);
    for (const address of [taken.kept, taken.gateway, '10.68.0.250'])
      expect(await held(socket, taken.PoolID, address), address).toBe(true);
    expect(await loggedSoon(daemon!, RELEASED)).toBe(true);
    expect(await loggedSoon(daemon!, `"address":"${taken.forgotten}"`)).toBe(true);
  }, 40_000);

  it('across a restart: checked a grace period after the start', async () => {
    let socket = await start('restart');
    const taken = await networkAndTakes(socket, '10.69.0.0/24', '10.69.0.250');
    daemon!.child.kill('SIGKILL');
    await daemon!.exited;
    const restartedAt = Date.now();
    socket = await start('restart');
    const freedAt = await whenTrue(GRACE_S + 10, async () => !(await held(socket, taken.PoolID, taken.forgotten)));
    expect(freedAt).toBeDefined();
    expect(freedAt! - restartedAt).toBeGreaterThanOrEqual(GRACE_S * 1000);
    expect(await held(socket, taken.PoolID, taken.kept)).toBe(true);
  }, 40_000);

  it('a pool another network shares (one the driver does not know): nothing is released', async () => {
    const socket = await start('shared');
    // A second network on the same pool, of another driver: its RequestPool came, its CreateNetwork went elsewhere.
    await call(socket, 'IpamDriver.RequestPool', { AddressSpace: 'local', Pool: '10.70.0.0/24', Options: {} });
    const taken = await networkAndTakes(socket, '10.70.0.0/24', '10.70.0.250');
    await new Promise((r) => setTimeout(r, (GRACE_S + 2) * 1000));
    expect(await held(socket, taken.PoolID, taken.forgotten)).toBe(true);
    expect(daemon!.output()).not.toContain(RELEASED);
  }, 40_000);

  it('cluster pool: the claim in etcd is released; the endpoint and aux claims stay', async () => {
    const socket = await start('cluster', true);
    const taken = await networkAndTakes(socket, '10.71.0.0/24', '10.71.0.250');
    const kv = new EtcdKv({ endpoints: etcd.endpoints, prefix: '/tmvF/cluster' });
    const claimed = async (address: string) =>
      (await kv.range(`/tmvF/cluster/v1/subnets/10.71.0.0_24/addresses/${address}`)).entries.length > 0;
    try {
      expect(await claimed(taken.forgotten)).toBe(true);
      const freedAt = await whenTrue(GRACE_S + 10, async () => !(await claimed(taken.forgotten)));
      expect(freedAt).toBeDefined();
      expect(freedAt! - taken.askedAt).toBeGreaterThanOrEqual(GRACE_S * 1000);
      for (const address of [taken.kept, taken.gateway, '10.71.0.250'])
        expect(await claimed(address), address).toBe(true);
    } finally {
      await kv.close();
    }
  }, 40_000);
});
