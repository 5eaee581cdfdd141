// Hostile input: 10,000 generated requests against every route, on the real kernel. Each gets an answer in Docker's
// shape, none crashes or hangs the plugin, and afterwards it still serves a clean cycle with nothing leaked.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endpointLinkName } from '../../src/driver/endpoint-naming';
import { BODY_LIMIT } from '../../src/api/server';
import { assertPrivateNetns, deleteLink, deleteLinksByPrefix, linkNames, uniqueName, vethPair } from '../helpers/net';
import { startPlugin, type TestPlugin } from '../helpers/plugin';

const METHODS = [
  'Plugin.Activate',
  ...[
    'GetCapabilities',
    'CreateNetwork',
    'DeleteNetwork',
    'CreateEndpoint',
    'Join',
    'Leave',
    'DeleteEndpoint',
    'EndpointOperInfo',
    'AllocateNetwork',
    'FreeNetwork',
    'DiscoverNew',
    'DiscoverDelete',
    'ProgramExternalConnectivity',
    'RevokeExternalConnectivity',
  ].map((m) => `NetworkDriver.${m}`),
  ...[
    'GetCapabilities',
    'GetDefaultAddressSpaces',
    'RequestPool',
    'ReleasePool',
    'RequestAddress',
    'ReleaseAddress',
  ].map((m) => `IpamDriver.${m}`),
  'NetworkDriver.Nope',
  '../../etc/passwd',
];

/** What Docker reads from a 200: never an error, and for the calls whose answer it uses, the fields it needs. */
function expectValidAnswer(method: string, json: any): void {
  expect(json, `${method} answered 200 with no JSON object`).toBeTypeOf('object');
  expect(json).not.toBeNull();
  expect(json.Err ?? '', `${method} answered 200 with an error`).toBe('');
  expect(json.Error ?? '', `${method} answered 200 with an error`).toBe('');
  const cidr = /^[0-9a-f.:]+\/\d{1,3}$/i;
  if (method === 'IpamDriver.RequestPool') {
    expect(json.PoolID).toMatch(/^tsmacvlan:/);
    expect(json.Pool).toMatch(cidr);
  }
  if (method === 'IpamDriver.RequestAddress') expect(json.Address).toMatch(cidr);
  if (method === 'NetworkDriver.Join') expect(json.InterfaceName?.SrcName).toMatch(/^tsmv/);
  if (method === 'NetworkDriver.GetCapabilities') expect(json.Scope).toBe('local');
}

describe('hostile input', () => {
  let plugin: TestPlugin;
  let parent: string;
  let sent = 0;

  beforeAll(async () => {
    assertPrivateNetns();
    parent = uniqueName('fz');
    vethPair(parent);
    plugin = await startPlugin();
  });
  afterAll(async () => {
    await plugin?.destroy();
    deleteLinksByPrefix('tsmv');
    deleteLink(parent);
    console.log(`fuzz requests sent: ${sent}`);
  });

  it("answers 10,000 generated requests in Docker's error shape, never crashing or hanging", async () => {
    // A small id space, so generated requests meet each other's networks and endpoints.
    const id = fc.oneof(
      fc.constantFrom('a'.repeat(64), 'b'.repeat(64), 'c1', 'd2', 'e3', 'r1h5l6sb2s6hzi2t4ol1exg6u'),
      fc.constantFrom(
        '',
        '..',
        '../x',
        'a/b',
        'a b',
        'a\u0000b',
        'x'.repeat(65),
        '$(reboot)',
        '`id`',
        ';rm -rf /',
        'ÿ',
      ),
      fc.string({ maxLength: 80 }),
      fc.integer(),
      fc.constant(null),
    );
    const linkName = fc.oneof(
      fc.constantFrom(
        parent,
        `${parent}.10`,
        'lo',
        'eth0:1',
        'nosuch.10',
        'x'.repeat(16),
        '..',
        'a/b',
        '$(reboot)',
        '|sh',
        'a b',
        '',
      ),
      fc.string({ maxLength: 20 }),
    );
    const address = fc.oneof(
      fc.constantFrom(
        '10.62.0.5',
        '10.62.0.5/24',
        '10.62.0.0/24',
        '10.62.0.128/25',
        'fd00:62::5',
        'fd00:62::/64',
        '10.62.0.256',
        '::',
        '0.0.0.0/0',
        '1.2.3.4/33',
        '',
      ),
      fc.ipV4(),
      fc.ipV6(),
      fc.string({ maxLength: 40 }),
    );
    const options = fc.oneof(
      fc.record(
        {
          'com.docker.network.generic': fc.dictionary(
            fc.oneof(
              fc.constantFrom('parent', 'macvlan_mode', 'mtu', 'macvlan_source', 'host_access', 'com.docker.network.x'),
              fc.string({ maxLength: 12 }),
            ),
            fc.oneof(
              linkName,
              address,
              fc.constantFrom(
                'bridge',
                'private',
                'vepa',
                'passthru',
                'source',
                '1400',
                '0',
                '99999',
                '02:00:00:00:00:01',
              ),
              fc.anything(),
            ),
            { maxKeys: 4 },
          ),
          'com.docker.network.internal': fc.oneof(fc.boolean(), fc.anything()),
          RequestAddressType: fc.constantFrom('com.docker.network.gateway', 'x'),
        },
        { requiredKeys: [] },
      ),
      fc.anything(),
    );
    const ipamData = fc.array(
      fc.record(
        {
          AddressSpace: fc.string(),
          Pool: address,
          Gateway: address,
          AuxAddresses: fc.dictionary(fc.string(), address),
        },
        { requiredKeys: [] },
      ),
      { maxLength: 3 },
    );
    const structured = fc.record(
      {
        NetworkID: id,
        EndpointID: id,
        PoolID: fc.oneof(
          id,
          fc.constantFrom(
            'tsmacvlan:10.62.0.0/24',
            'tsmacvlan:fd00:62::/64',
            'tsmacvlan:10.62.0.0/24,range=10.62.0.128/25',
            'tsmacvlan:10.62.0.0/33',
          ),
        ),
        Options: options,
        Interface: fc.oneof(
          fc.record(
            {
              Address: address,
              AddressIPv6: address,
              MacAddress: fc.oneof(fc.constantFrom('02:42:0a:3e:00:05', ''), fc.string()),
            },
            { requiredKeys: [] },
          ),
          fc.anything(),
        ),
        IPv4Data: fc.oneof(ipamData, fc.anything()),
        IPv6Data: fc.oneof(ipamData, fc.anything()),
        Pool: address,
        SubPool: address,
        Address: address,
        AddressSpace: fc.string(),
        V6: fc.oneof(fc.boolean(), fc.anything()),
      },
      { requiredKeys: [] },
    );
    const body = fc.oneof(
      { weight: 6, arbitrary: structured.map((b) => JSON.stringify(b)) },
      { weight: 1, arbitrary: fc.json() },
      { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
      {
        weight: 1,
        arbitrary: fc.constantFrom('', '{', '[]', 'null', '"x"', '{"NetworkID":', '\u0000', '{}'.repeat(1000)),
      },
      { weight: 1, arbitrary: fc.constant(`{"NetworkID":"${'a'.repeat(BODY_LIMIT)}"}`) },
    );

    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...METHODS), body, async (method, payload) => {
        const res = await plugin.app.inject({ method: 'POST', url: `/${method}`, payload });
        sent++;
        const json = JSON.parse(res.body);
        if (res.statusCode === 200) return expectValidAnswer(method, json);
        expect([400, 404, 413, 500]).toContain(res.statusCode);
        expect(typeof json.Err).toBe('string');
        expect(json.Err.length).toBeGreaterThan(0);
        expect(json.Error).toBe(json.Err);
      }),
      { numRuns: 10_000 },
    );
    expect(sent).toBe(10_000);
  });

  it('still serves a valid create, join and delete cycle afterwards, and nothing leaked', async () => {
    const networkId = 'f'.repeat(64);
    const endpointId = '9'.repeat(64);
    const ok = async (method: string, body: unknown) => expect((await plugin.call(method, body)).status).toBe(200);
    await ok('NetworkDriver.CreateNetwork', {
      NetworkID: networkId,
      Options: { 'com.docker.network.generic': { parent } },
      IPv4Data: [{ Pool: '10.63.0.0/24', Gateway: '10.63.0.1/24' }],
    });
    await ok('NetworkDriver.CreateEndpoint', {
      NetworkID: networkId,
      EndpointID: endpointId,
      Interface: { Address: '10.63.0.5/24' },
    });
    await ok('NetworkDriver.Join', { NetworkID: networkId, EndpointID: endpointId });
    expect(linkNames()).toContain(endpointLinkName(endpointId));
    await ok('NetworkDriver.DeleteEndpoint', { NetworkID: networkId, EndpointID: endpointId });
    await ok('NetworkDriver.DeleteNetwork', { NetworkID: networkId });
    await plugin.driver.settled();

    // Whatever the generated requests legitimately created is recorded; taking it all down leaves no link and no record.
    for (const network of plugin.driver.listNetworks())
      await ok('NetworkDriver.DeleteNetwork', { NetworkID: network.id });
    await plugin.driver.settled();
    expect(plugin.driver.listEndpoints()).toEqual([]);
    expect(linkNames().filter((n) => n.startsWith('tsmv'))).toEqual([]);
    expect(linkNames()).toContain(parent);
  });
});
