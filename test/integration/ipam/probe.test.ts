// Probe before use, local IPAM, through the plugin's HTTP API on a LAN with squatters (devices the plugin does not
// know, holding addresses of the range with MACs of their own; IPv4 and IPv6): 20 addresses asked at once never
// include theirs nor the host's own, 100 asked at once on a fresh range all get one, status shows them held by their
// MACs, a --ip of a squatter is refused at CreateEndpoint naming its MAC, a squatter that leaves is freed by the
// re-probe and handed out again, probe=off and a pool no network of ours is on are not probed, and a parent that
// cannot be probed fails closed.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readState } from '../../../src/inspect/state-snapshot';
import { LanLab } from '../../helpers/lan-lab';
import { assertPrivateNetns, deleteLink, ip, vethPair } from '../../helpers/net';
import { startPlugin, type TestPlugin } from '../../helpers/plugin';

const id = () => randomBytes(32).toString('hex');
const GW = { RequestAddressType: 'com.docker.network.gateway' };
const SQUAT = { a: '02:5a:00:00:00:0a', b: '02:5a:00:00:00:0b', c: '02:5a:00:00:00:0c', six: '02:5a:00:00:00:06' };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let lab: LanLab;
let plugin: TestPlugin;
let leaving: string;
let downParent: string;
const recheck = process.env.TSMACVLAN_PROBE_RECHECK_SECONDS;

beforeAll(async () => {
  assertPrivateNetns();
  lab = LanLab.create('tmvP', '10.78.0.2/24');
  lab.squatter(SQUAT.a, ['10.78.0.3/24', '10.78.0.4/24']);
  lab.squatter(SQUAT.b, ['10.78.0.7/24', '10.79.0.5/24', '10.80.0.2/24']);
  leaving = lab.squatter(SQUAT.c, ['10.78.0.12/24']);
  lab.squatter(SQUAT.six, ['fd00:78::3/64', 'fd00:78::5/64']);
  downParent = `${lab.prefix}d`;
  vethPair(downParent);
  ip('link', 'set', downParent, 'down');
  process.env.TSMACVLAN_PROBE_RECHECK_SECONDS = '1';
  plugin = await startPlugin(undefined, { probe: true });
}, 30_000);

afterAll(async () => {
  if (recheck === undefined) delete process.env.TSMACVLAN_PROBE_RECHECK_SECONDS;
  else process.env.TSMACVLAN_PROBE_RECHECK_SECONDS = recheck;
  await plugin?.destroy();
  deleteLink(downParent);
  lab?.close();
});

async function ok(method: string, body: unknown): Promise<any> {
  const { status, json } = await plugin.call(method, body);
  if (status !== 200) throw new Error(`${method}: ${json?.Err}`);
  return json;
}

/** RequestPool, the gateway, then CreateNetwork on `parent`, as `docker network create` sends them. */
async function network(parent: string, pool: string, range: string, gateway: string, options = {}, v6 = false) {
  const { PoolID } = await ok('IpamDriver.RequestPool', {
    AddressSpace: 'local',
    Pool: pool,
    SubPool: range,
    Options: options,
    V6: v6,
  });
  const gw = await ok('IpamDriver.RequestAddress', { PoolID, Address: gateway, Options: GW });
  const data = [{ AddressSpace: 'local', Pool: pool, Gateway: gw.Address }];
  await ok('NetworkDriver.CreateNetwork', {
    NetworkID: id(),
    Options: { 'com.docker.network.enable_ipv6': v6, 'com.docker.network.generic': { parent } },
    IPv4Data: v6 ? [] : data,
    IPv6Data: v6 ? data : [],
  });
  return PoolID as string;
}

const take = (poolId: string) =>
  ok('IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: null }).then((j) => j.Address as string);
const bare = (cidr: string) => cidr.split('/')[0];
const held = () => readState(plugin.stateDir).devices ?? [];

describe('probe before use, local IPAM', () => {
  let v4: string;

  it("20 at once get free addresses only: never a squatter's nor the host's own, which status shows held", async () => {
    v4 = await network(lab.parent, '10.78.0.0/24', '10.78.0.0/27', '10.78.0.1');
    const got = (await Promise.all(Array.from({ length: 20 }, () => take(v4)))).map(bare);
    expect(new Set(got).size).toBe(20);
    for (const taken of ['10.78.0.2', '10.78.0.3', '10.78.0.4', '10.78.0.7', '10.78.0.12'])
      expect(got).not.toContain(taken);
    const parentMac = JSON.parse(ip('-j', 'link', 'show', lab.parent))[0].address as string;
    expect(held().map(({ address, mac }) => [address, mac])).toEqual([
      ['10.78.0.2', parentMac],
      ['10.78.0.3', SQUAT.a],
      ['10.78.0.4', SQUAT.a],
      ['10.78.0.7', SQUAT.b],
      ['10.78.0.12', SQUAT.c],
    ]);
  });

  it('100 at once on a fresh range all get an address: a take that loses its probed address to another moves on', async () => {
    const burst = await network(lab.parent, '10.83.0.0/24', '', '10.83.0.1');
    const got = await Promise.allSettled(Array.from({ length: 100 }, () => take(burst)));
    const failed = got.filter((g) => g.status === 'rejected');
    expect(failed.map((f) => (f as PromiseRejectedResult).reason.message).slice(0, 1)).toEqual([]);
    const addresses = got.map((g) => bare((g as PromiseFulfilledResult<string>).value));
    expect(new Set(addresses).size).toBe(100);
    expect(addresses).not.toContain('10.83.0.1');
  }, 30_000);

  it('IPv6: neighbour solicitations find the squatters of an IPv6 range', async () => {
    const v6 = await network(lab.parent, 'fd00:78::/64', 'fd00:78::/123', 'fd00:78::1', {}, true);
    const got = (await Promise.all(Array.from({ length: 10 }, () => take(v6)))).map(bare);
    expect(new Set(got).size).toBe(10);
    expect(got).not.toContain('fd00:78::3');
    expect(got).not.toContain('fd00:78::5');
    expect(
      held()
        .filter((d) => d.subnet === 'fd00:78::/64')
        .map((d) => [d.address, d.mac]),
    ).toEqual([
      ['fd00:78::3', SQUAT.six],
      ['fd00:78::5', SQUAT.six],
    ]);
  });

  it('a --ip a squatter answers for is refused at CreateEndpoint, naming its MAC; nothing is recorded', async () => {
    const networkId = readState(plugin.stateDir).networks.find((n) => n.ipv4?.pool === '10.78.0.0/24')!.id;
    for (const options of [{ 'com.docker.network.endpoint.macaddress': '02:42:0a:4e:00:07' }, null]) {
      // Docker 20.10 sends a --ip with the MAC, 28.x without (as an --aux-address): the IPAM gives it either way.
      expect(await ok('IpamDriver.RequestAddress', { PoolID: v4, Address: '10.78.0.7', Options: options })).toEqual({
        Address: '10.78.0.7/24',
        Data: {},
      });
      const endpointId = id();
      const created = await plugin.call('NetworkDriver.CreateEndpoint', {
        NetworkID: networkId,
        EndpointID: endpointId,
        Interface: { Address: '10.78.0.7/24', AddressIPv6: '', MacAddress: '' },
        Options: {},
      });
      expect(created.status).toBe(500);
      expect(created.json.Err).toBe(
        `address 10.78.0.7 is in use on the LAN: the device with MAC ${SQUAT.b} answered for it on ${lab.parent} (ARP); choose another --ip, or leave --ip out to get a free one`,
      );
      expect(readState(plugin.stateDir).endpoints.map((e) => e.id)).not.toContain(endpointId);
      await ok('IpamDriver.ReleaseAddress', { PoolID: v4, Address: '10.78.0.7' }); // what Docker does next
    }
  });

  it('a squatter that leaves is freed by the re-probe and handed out again in its turn', async () => {
    lab.leave(leaving);
    for (let i = 0; i < 100 && held().some((d) => d.address === '10.78.0.12'); i++) await sleep(100);
    expect(held().map((d) => d.address)).not.toContain('10.78.0.12');
    expect(held().map((d) => d.address)).toContain('10.78.0.3'); // still there
    const rest: string[] = [];
    for (;;) {
      const { status, json } = await plugin.call('IpamDriver.RequestAddress', {
        PoolID: v4,
        Address: '',
        Options: null,
      });
      if (status !== 200) {
        expect(json.Err).toMatch(/no free address left in range 10\.78\.0\.0\/27/);
        break;
      }
      rest.push(bare(json.Address));
    }
    expect(rest).toContain('10.78.0.12');
    expect(rest).not.toContain('10.78.0.7'); // released by the refused start, found held again
    expect(held().map((d) => d.address)).toContain('10.78.0.7');
  });

  it('--ipam-opt probe=off, and a pool no network of this plugin is on, hand out addresses unprobed', async () => {
    const off = await network(lab.parent, '10.79.0.0/24', '10.79.0.0/29', '10.79.0.1', { probe: 'off' });
    const got = await Promise.all(Array.from({ length: 5 }, () => take(off)));
    expect(got.map(bare)).toContain('10.79.0.5'); // a squatter's
    const { PoolID } = await ok('IpamDriver.RequestPool', {
      AddressSpace: 'local',
      Pool: '10.80.0.0/24',
      SubPool: '10.80.0.0/29',
      Options: {},
      V6: false,
    });
    expect(bare(await take(PoolID))).toBe('10.80.0.1'); // another driver's network: no LAN is known to probe
    expect(bare(await take(PoolID))).toBe('10.80.0.2'); // a squatter's
    const bad = await plugin.call('IpamDriver.RequestPool', {
      AddressSpace: 'local',
      Pool: '10.81.0.0/24',
      Options: { probe: 'no' },
      V6: false,
    });
    expect(bad.json.Err).toMatch(/--ipam-opt probe=no is not known: give probe=off/);
  });

  it('fails closed: an address whose LAN cannot be probed (the parent is down) is not handed out', async () => {
    const pool = await network(downParent, '10.82.0.0/24', '10.82.0.0/29', '10.82.0.1');
    const { status, json } = await plugin.call('IpamDriver.RequestAddress', {
      PoolID: pool,
      Address: '',
      Options: null,
    });
    expect(status).toBe(500);
    expect(json.Err).toBe(
      `parent '${downParent}' is down, so no address of subnet 10.82.0.0/24 can be handed out (it could be a LAN device's); fix that, or create the network with --ipam-opt probe=off to hand addresses out without probing`,
    );
  });
});
