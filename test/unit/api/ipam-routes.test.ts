// The IPAM requests Docker 20.10.24 really sent (docker-20.10.24-trace.jsonl, scenario "plugin-ipam"), replayed
// through the HTTP layer. The trace holds the PoolIDs and dynamic addresses of the plugin it was captured with:
// ours are substituted as our answers come in.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NetworkDriver } from '../../../src/driver/driver';
import { IpamService } from '../../../src/ipam/service';
import { Links } from '../../../src/kernel/links';
import { buildServer } from '../../../src/api/server';

interface TraceLine {
  scenario: string;
  path: string;
  headers: Record<string, string | null>;
  body: string;
}

const TRACE = join(__dirname, '../../fixtures/docker-20.10.24-trace.jsonl');
const trace: TraceLine[] = readFileSync(TRACE, 'utf8')
  .trim()
  .split('\n')
  .map((line) => JSON.parse(line));

let stateDir: string;
let links: Links;
let ipam: IpamService;
let app: FastifyInstance;

function start(): void {
  const log = pino({ level: 'silent' });
  ipam = new IpamService(stateDir, log);
  app = buildServer({ driver: new NetworkDriver(links, stateDir, log), ipam }, log);
}

async function stop(): Promise<void> {
  await app.close();
  await ipam.close();
}

beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), 'tsmacvlan-ipam-routes-'));
  links = new Links();
  start();
});

afterEach(async () => {
  await stop();
  links.close();
  rmSync(stateDir, { recursive: true, force: true });
});

/** Posts like Docker does: no Content-Type, the body as raw text. */
async function post(path: string, body: string | object = ''): Promise<{ status: number; json: any }> {
  const res = await app.inject({
    method: 'POST',
    url: path,
    payload: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { accept: 'application/vnd.docker.plugins.v1.2+json' },
  });
  return { status: res.statusCode, json: JSON.parse(res.body) };
}

describe('IPAM over HTTP', () => {
  it('answers the activation calls as recorded (empty body, no Content-Type)', async () => {
    const calls = trace.filter((l) => l.scenario === 'activation' && l.path.startsWith('/IpamDriver.'));
    expect(calls.map((l) => l.path)).toEqual(['/IpamDriver.GetCapabilities', '/IpamDriver.GetDefaultAddressSpaces']);
    expect(await post(calls[0].path, calls[0].body)).toEqual({
      status: 200,
      json: { RequiresMACAddress: false, RequiresRequestReplay: false },
    });
    expect(await post(calls[1].path, calls[1].body)).toEqual({
      status: 200,
      json: { LocalDefaultAddressSpace: 'local', GlobalDefaultAddressSpace: 'global' },
    });
  });

  it('replays the plugin-ipam scenario of the trace', async () => {
    const lines = trace.filter((l) => l.scenario.startsWith('plugin-ipam'));
    // What the capture plugin answered to empty-Address requests, as Docker passed it on to the network driver.
    const theirs = { v4: [] as string[], v6: [] as string[] };
    for (const line of lines) {
      const body = JSON.parse(line.body);
      if (line.path === '/NetworkDriver.CreateNetwork') theirs.v6.push(body.IPv6Data[0].Gateway.split('/')[0]);
      if (line.path === '/NetworkDriver.CreateEndpoint') {
        if (body.Interface.Address !== '10.79.0.77/24') theirs.v4.push(body.Interface.Address.split('/')[0]);
        theirs.v6.push(body.Interface.AddressIPv6.split('/')[0]);
      }
    }
    expect(theirs).toEqual({ v4: ['10.79.0.16'], v6: ['fd00:79::d', 'fd00:79::f', 'fd00:79::11'] });

    const poolIds = new Map<string, string>(); // theirs -> ours
    const addresses = new Map<string, string>(); // theirs -> ours
    const answers: { path: string; request: any; json: any }[] = [];
    for (const line of lines.filter((l) => l.path.startsWith('/IpamDriver.'))) {
      expect(line.headers['content-type']).toBeNull();
      const request = JSON.parse(line.body);
      if (line.path === '/IpamDriver.RequestPool') {
        const res = await post(line.path, line.body);
        expect(res.status).toBe(200);
        poolIds.set(`p-${request.Pool}`, res.json.PoolID);
        answers.push({ path: line.path, request, json: res.json });
        continue;
      }
      const theirPool = request.PoolID as string;
      const v6 = theirPool.includes(':');
      const mapped = { ...request, PoolID: poolIds.get(theirPool) };
      if (line.path === '/IpamDriver.ReleaseAddress')
        mapped.Address = addresses.get(request.Address) ?? request.Address;
      const res = await post(line.path, mapped);
      expect({ path: line.path, status: res.status, json: res.json }).toEqual({
        path: line.path,
        status: 200,
        json: expect.anything(),
      });
      if (line.path === '/IpamDriver.RequestAddress' && request.Address === '') {
        addresses.set((v6 ? theirs.v6 : theirs.v4).shift()!, res.json.Address.split('/')[0]);
      }
      answers.push({ path: line.path, request: mapped, json: res.json });
    }

    const summary = answers.map(
      (a) =>
        `${a.path.slice('/IpamDriver.'.length)} ${a.request.PoolID ?? a.request.Pool} ${a.request.Address ?? ''} -> ${JSON.stringify(a.json)}`,
    );
    const v4 = 'tsmacvlan:10.79.0.0/24,range=10.79.0.128/25';
    const v6 = 'tsmacvlan:fd00:79::/64';
    expect(summary).toEqual([
      `RequestPool 10.79.0.0/24  -> {"PoolID":"${v4}","Pool":"10.79.0.0/24","Data":{}}`,
      `RequestAddress ${v4} 10.79.0.1 -> {"Address":"10.79.0.1/24","Data":{}}`, // the given gateway
      `RequestAddress ${v4} 10.79.0.250 -> {"Address":"10.79.0.250/24","Data":{}}`, // aux, outside the range
      `RequestPool fd00:79::/64  -> {"PoolID":"${v6}","Pool":"fd00:79::/64","Data":{}}`,
      `RequestAddress ${v6}  -> {"Address":"fd00:79::1/64","Data":{}}`, // gateway chosen: the first usable address
      `RequestAddress ${v4} 10.79.0.77 -> {"Address":"10.79.0.77/24","Data":{}}`, // static, outside the range
      `RequestAddress ${v6}  -> {"Address":"fd00:79::2/64","Data":{}}`,
      `RequestAddress ${v4}  -> {"Address":"10.79.0.128/24","Data":{}}`, // the first of --ip-range
      `RequestAddress ${v6}  -> {"Address":"fd00:79::3/64","Data":{}}`,
      `ReleaseAddress ${v4} 10.79.0.128 -> {}`,
      `ReleaseAddress ${v6} fd00:79::3 -> {}`,
      `ReleaseAddress ${v4} 10.79.0.77 -> {}`,
      `ReleaseAddress ${v6} fd00:79::2 -> {}`,
      `ReleaseAddress ${v4} 10.79.0.1 -> {}`,
      `ReleaseAddress ${v4} 10.79.0.250 -> {}`,
      `ReleasePool ${v4}  -> {}`,
      `ReleaseAddress ${v6} fd00:79::1 -> {}`,
      `ReleasePool ${v6}  -> {}`,
    ]);
    expect(ipam.listPools()).toEqual([]);
    expect(readdirSync(join(stateDir, 'ipam'))).toEqual([]);
  });

  it('keeps the trace network across a restart, mid-scenario', async () => {
    const pool = await post('/IpamDriver.RequestPool', {
      AddressSpace: 'local',
      Pool: '10.79.0.0/24',
      SubPool: '10.79.0.128/25',
      Options: {},
      V6: false,
    });
    const PoolID = pool.json.PoolID;
    await post('/IpamDriver.RequestAddress', {
      PoolID,
      Address: '10.79.0.1',
      Options: { RequestAddressType: 'com.docker.network.gateway' },
    });
    await post('/IpamDriver.RequestAddress', {
      PoolID,
      Address: '10.79.0.77',
      Options: { 'com.docker.network.endpoint.macaddress': '02:aa:bb:cc:dd:ee' },
    });
    expect((await post('/IpamDriver.RequestAddress', { PoolID, Address: '', Options: null })).json.Address).toBe(
      '10.79.0.128/24',
    );
    await stop();
    start();
    const again = await post('/IpamDriver.RequestAddress', { PoolID, Address: '10.79.0.77', Options: {} });
    expect(again).toEqual({
      status: 500,
      json: {
        Err: `address 10.79.0.77 is already in use in subnet 10.79.0.0/24: it is assigned to a container of pool ${PoolID}; choose another address (--ip / --aux-address), or leave --ip out to get a free one`,
        Error: expect.stringContaining('already in use'),
      },
    });
    expect((await post('/IpamDriver.RequestAddress', { PoolID, Address: '', Options: null })).json.Address).toBe(
      '10.79.0.129/24',
    );
  });

  it('answers errors with Err and Error, for people', async () => {
    const empty = await post('/IpamDriver.RequestPool', {
      AddressSpace: 'local',
      Pool: '',
      SubPool: '',
      Options: null,
      V6: false,
    });
    expect(empty.status).toBe(500);
    expect(empty.json.Err).toBe(empty.json.Error);
    expect(empty.json.Err).toMatch(/does not choose subnets.*Pass --subnet/);

    const exhausted = await post('/IpamDriver.RequestPool', { Pool: '10.9.0.0/30', Options: null, V6: false });
    const PoolID = exhausted.json.PoolID;
    expect(PoolID).toBe('tsmacvlan:10.9.0.0/30');
    for (const expected of ['10.9.0.1/30', '10.9.0.2/30']) {
      expect((await post('/IpamDriver.RequestAddress', { PoolID, Address: '' })).json.Address).toBe(expected);
    }
    const none = await post('/IpamDriver.RequestAddress', { PoolID, Address: '' });
    expect(none.status).toBe(500);
    expect(none.json.Error).toBe(
      'no free address left in subnet 10.9.0.0/30 (2 addresses, all in use): the subnet is exhausted; use a larger --subnet or release addresses',
    );

    const v6InV4 = await post('/IpamDriver.RequestAddress', { PoolID, Address: 'fd00::1' });
    expect(v6InV4.json.Err).toBe(`address fd00::1 is IPv6, but pool ${PoolID} is IPv4`);
  });

  it('refuses bodies that are not what Docker sends, and changes nothing', async () => {
    expect((await post('/IpamDriver.RequestAddress', '{"PoolID":')).status).toBe(400);
    expect((await post('/IpamDriver.RequestAddress', { Address: '10.0.0.1' })).json.Err).toMatch(
      /must have required property 'PoolID'/,
    );
    expect((await post('/IpamDriver.RequestPool', { Pool: 42 })).status).toBe(400);
    expect((await post('/IpamDriver.RequestPool', { Pool: '10.0.0.0/24', Options: { a: 1 } })).status).toBe(400);
    expect((await post('/IpamDriver.RequestPool', { Pool: '10.0.0.0/24', V6: 'yes' })).status).toBe(400);
    expect((await post('/IpamDriver.ReleaseAddress', { PoolID: 'tsmacvlan:10.0.0.0/24' })).status).toBe(400);
    expect((await post('/IpamDriver.ReleasePool', { PoolID: 'x'.repeat(500) })).status).toBe(400);
    expect(ipam.listPools()).toEqual([]);
  });
});
