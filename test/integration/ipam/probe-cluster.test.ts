// Probe before use, cluster IPAM: two `tsmacvlan serve --etcd` daemons (two hosts) on one real etcd and one LAN with
// squatters. 20 addresses asked at once across both hosts never include a squatter's; each squatter's address is one
// device claim in etcd with its MAC, which the other host skips and status --etcd counts; a --ip of a squatter is
// refused at CreateEndpoint naming its MAC; a squatter that leaves is freed by its claim's owner after the re-probe.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKv } from '../../../src/cluster/etcd';
import { EtcdCluster } from '../../lab/etcd';
import { LanLab } from '../../helpers/lan-lab';
import { assertPrivateNetns } from '../../helpers/net';
import { CLI, type Daemon, post, spawnDaemon, waitForSocket } from '../../helpers/serve';
import { cidr, heldIn, until } from '../cluster/setup';

const PREFIX = 'tmvQ';
const GW = { RequestAddressType: 'com.docker.network.gateway' };
const SQUAT = { a: '02:5b:00:00:00:0a', b: '02:5b:00:00:00:0b', c: '02:5b:00:00:00:0c' };
const SUBNET = '10.76.0.0/24';
const id = () => randomBytes(32).toString('hex');

const cluster = EtcdCluster.onHost(`${PREFIX}e`, '127.0.0.1', 23850, 1);
let dir: string;
let lab: LanLab;
let leaving: string;
let kv: EtcdKv;
const daemons: Daemon[] = [];
const hosts: { socket: string; pool: string; network: string }[] = [];

async function call(host: number, method: string, body: unknown): Promise<any> {
  const { status, json } = await post(hosts[host]!.socket, method, body);
  if (status !== 200) throw new Error(`host ${host} ${method}: ${json?.Err}`);
  return json;
}

beforeAll(async () => {
  assertPrivateNetns();
  dir = mkdtempSync(join(tmpdir(), `${PREFIX}-`));
  lab = LanLab.create(PREFIX, '10.76.0.2/24');
  lab.squatter(SQUAT.a, ['10.76.0.3/24']);
  lab.squatter(SQUAT.b, ['10.76.0.9/24', '10.76.0.10/24']);
  leaving = lab.squatter(SQUAT.c, ['10.76.0.17/24']);
  await cluster.start();
  kv = new EtcdKv({ endpoints: cluster.endpoints });
  for (const name of ['hostA', 'hostB']) {
    const socket = join(dir, `${name}.sock`);
    const args = ['serve', '--socket', socket, '--state-dir', join(dir, name), '--log-level', 'warn'];
    const env = { TSMACVLAN_ETCD: cluster.endpoints.join(','), TSMACVLAN_PROBE_RECHECK_SECONDS: '1' };
    daemons.push(spawnDaemon(args, env));
    await waitForSocket(socket, daemons.at(-1)!);
    hosts.push({ socket, pool: '', network: id() });
  }
  // The same network on both hosts, as `docker network create` sends it on each.
  for (let h = 0; h < hosts.length; h++) {
    const body = { AddressSpace: 'local', Pool: SUBNET, SubPool: '10.76.0.0/27', Options: {}, V6: false };
    hosts[h]!.pool = (await call(h, 'IpamDriver.RequestPool', body)).PoolID;
    await call(h, 'IpamDriver.RequestAddress', { PoolID: hosts[h]!.pool, Address: '10.76.0.1', Options: GW });
    await call(h, 'NetworkDriver.CreateNetwork', {
      NetworkID: hosts[h]!.network,
      Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': { parent: lab.parent } },
      IPv4Data: [{ AddressSpace: 'local', Pool: SUBNET, Gateway: '10.76.0.1/24' }],
      IPv6Data: [],
    });
  }
}, 60_000);

afterAll(async () => {
  for (const d of daemons) d.child.kill('SIGTERM');
  for (const d of daemons) await Promise.race([d.exited, new Promise((r) => setTimeout(r, 12_000))]);
  for (const d of daemons) if (d.child.exitCode === null) d.child.kill('SIGKILL');
  await kv?.close();
  await cluster.stop();
  lab?.close();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

const take = (h: number) =>
  call(h, 'IpamDriver.RequestAddress', { PoolID: hosts[h]!.pool, Address: '', Options: null }).then(
    (j) => (j.Address as string).split('/')[0]!,
  );

/** The device claims in etcd: address → [owner, MAC]. */
async function deviceClaims(): Promise<Map<string, string>> {
  const held = await heldIn(kv, cidr(SUBNET));
  const out = new Map<string, string>();
  for (const [address, claims] of held) if (claims[0]?.kind === 'device') out.set(address, claims[0].mac!);
  return out;
}

describe('probe before use, cluster IPAM', () => {
  it("20 at once across two hosts get free addresses only; each squatter's address is one device claim with its MAC", async () => {
    const got = await Promise.all(Array.from({ length: 20 }, (_, i) => take(i % 2)));
    expect(new Set(got).size).toBe(20);
    for (const squatted of ['10.76.0.2', '10.76.0.3', '10.76.0.9', '10.76.0.10', '10.76.0.17'])
      expect(got).not.toContain(squatted);
    const claims = await deviceClaims();
    expect(claims.get('10.76.0.3')).toBe(SQUAT.a);
    expect(claims.get('10.76.0.9')).toBe(SQUAT.b);
    expect(claims.get('10.76.0.10')).toBe(SQUAT.b);
    expect(claims.get('10.76.0.17')).toBe(SQUAT.c);
    expect(claims.has('10.76.0.2')).toBe(true); // the host's own address on the parent
    const status = execFileSync(process.execPath, [CLI, 'status', '--state-dir', join(dir, 'hostA')], {
      encoding: 'utf8',
      env: { ...process.env, TSMACVLAN_ETCD: cluster.endpoints.join(',') },
    });
    expect(status).toMatch(/held by LAN devices \(probed\)/);
    expect(status).toContain(`10.76.0.9 held by a LAN device, MAC ${SQUAT.b} (probed by`);
  });

  it('a --ip a squatter answers for is refused at CreateEndpoint naming its MAC, on either host', async () => {
    await call(1, 'IpamDriver.RequestAddress', { PoolID: hosts[1]!.pool, Address: '10.76.0.9', Options: null });
    const created = await post(hosts[1]!.socket, 'NetworkDriver.CreateEndpoint', {
      NetworkID: hosts[1]!.network,
      EndpointID: id(),
      Interface: { Address: '10.76.0.9/24', AddressIPv6: '', MacAddress: '' },
      Options: {},
    });
    expect(created.json.Err).toMatch(
      new RegExp(`^address 10\\.76\\.0\\.9 is in use on the LAN: the device with MAC ${SQUAT.b} answered for it`),
    );
    await call(1, 'IpamDriver.ReleaseAddress', { PoolID: hosts[1]!.pool, Address: '10.76.0.9' });
  });

  it('a squatter that leaves is freed by its claim owner after the re-probe, and handed out again', async () => {
    lab.leave(leaving);
    await until(
      'the device claim of 10.76.0.17 released',
      async () => !(await deviceClaims()).has('10.76.0.17'),
      100,
      100,
    );
    expect((await deviceClaims()).get('10.76.0.3')).toBe(SQUAT.a);
    const rest: string[] = [];
    for (let h = 0; ; h = 1 - h) {
      const { status, json } = await post(hosts[h]!.socket, 'IpamDriver.RequestAddress', {
        PoolID: hosts[h]!.pool,
        Address: '',
        Options: null,
      });
      if (status !== 200) break;
      rest.push((json.Address as string).split('/')[0]!);
    }
    expect(rest).toContain('10.76.0.17');
    expect(rest).not.toContain('10.76.0.3');
    expect(rest).not.toContain('10.76.0.9');
  });
});
