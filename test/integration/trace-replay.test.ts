// Every request a real Docker Engine 20.10.24 sent a plugin, replayed in order against the real kernel.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endpointLinkName } from '../../src/driver/endpoint-naming';
import { assertPrivateNetns, ip, link, linkNames, vethPair } from '../helpers/net';
import { startPlugin, type TestPlugin } from '../helpers/plugin';

interface TraceLine {
  scenario: string;
  path: string;
  headers: Record<string, string | null>;
  body: string;
}

const trace: TraceLine[] = readFileSync(join(__dirname, '../fixtures/docker-20.10.24-trace.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((line) => JSON.parse(line));

describe('replay of docker-20.10.24-trace.jsonl', () => {
  let plugin: TestPlugin;
  const answers: { line: TraceLine; status: number; json: any }[] = [];

  beforeAll(async () => {
    assertPrivateNetns();
    vethPair('sw0');
    plugin = await startPlugin();
  });
  afterAll(async () => {
    await plugin?.destroy();
    ip('link', 'del', 'sw0');
  });

  it('answers every request with 200, exactly as recorded on the wire (no Content-Type, empty bodies)', async () => {
    // The capture was made against another IPAM: its pool ids and the addresses it chose stand in later requests.
    // Swap in ours, so each request refers to what this plugin answered, as it would with Docker.
    const ours = new Map<string, string>();
    const substitute = (body: string) => {
      let text = body;
      for (const [theirs, mine] of ours)
        text = text.replace(new RegExp(`"${theirs.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}(?=[/"])`, 'g'), `"${mine}`);
      return text;
    };
    const pending: { v6: boolean; ours: string }[] = [];
    // The other IPAM's choices first show up in the next CreateNetwork (gateways) and CreateEndpoint (addresses).
    const chosen = (v6: boolean, theirs: string | undefined) => {
      const i = pending.findIndex((p) => p.v6 === v6);
      if (theirs && i >= 0) ours.set(theirs.split('/')[0], pending.splice(i, 1)[0].ours);
    };
    for (const line of trace) {
      expect(line.headers['content-type']).toBeNull();
      if (line.path === '/NetworkDriver.CreateNetwork' || line.path === '/NetworkDriver.CreateEndpoint') {
        const original = JSON.parse(line.body);
        chosen(false, original.IPv4Data?.[0]?.Gateway ?? original.Interface?.Address);
        chosen(true, original.IPv6Data?.[0]?.Gateway ?? original.Interface?.AddressIPv6);
      }
      const payload = substitute(line.body);
      const res = await plugin.app.inject({
        method: 'POST',
        url: line.path,
        payload,
        headers: { accept: line.headers.accept ?? '' },
      });
      const sent = payload ? JSON.parse(payload) : {};
      if (line.path === '/IpamDriver.RequestPool' && res.statusCode === 200)
        ours.set(`p-${sent.Pool}`, JSON.parse(res.body).PoolID);
      if (line.path === '/IpamDriver.RequestAddress' && !sent.Address && res.statusCode === 200) {
        const address: string = JSON.parse(res.body).Address.split('/')[0];
        pending.push({ v6: address.includes(':'), ours: address });
      }
      const json = JSON.parse(res.body);
      answers.push({ line: { ...line, body: payload }, status: res.statusCode, json });
      expect({ path: line.path, payload, status: res.statusCode, body: json }).toMatchObject({
        path: line.path,
        payload,
        status: 200,
      });
      if (line.path === '/NetworkDriver.Join') {
        const req = JSON.parse(line.body);
        // The host-side link exists on sw0 with the MAC Docker chose, until Docker takes it.
        const created = link(endpointLinkName(req.EndpointID));
        expect(created?.link).toBe('sw0');
        expect(created?.linkinfo?.info_kind).toBe('macvlan');
        expect(created?.linkinfo?.info_data?.mode).toBe('bridge');
      }
    }
    expect(answers).toHaveLength(trace.length);
  });

  it('activates as both a network driver and an IPAM driver, with local scope', () => {
    const by = (path: string) => answers.filter((a) => a.line.path === path).map((a) => a.json);
    expect(by('/Plugin.Activate')[0]).toEqual({ Implements: ['NetworkDriver', 'IpamDriver'] });
    expect(by('/NetworkDriver.GetCapabilities')[0]).toEqual({ Scope: 'local', ConnectivityScope: 'global' });
    expect(by('/IpamDriver.GetCapabilities')[0]).toMatchObject({ RequiresMACAddress: false });
    expect(by('/IpamDriver.GetDefaultAddressSpaces')[0]).toHaveProperty('LocalDefaultAddressSpace');
  });

  it('hands out the static address, the given gateway and a dynamic IPv6 address', () => {
    const addresses = answers.filter((a) => a.line.path === '/IpamDriver.RequestAddress').map((a) => a.json.Address);
    expect(addresses).toContain('10.79.0.1/24');
    expect(addresses).toContain('10.79.0.250/24');
    expect(addresses).toContain('10.79.0.77/24');
    const dynamic = addresses.filter(
      (a: string) => a.startsWith('10.79.0.') && !['10.79.0.1/24', '10.79.0.250/24', '10.79.0.77/24'].includes(a),
    );
    expect(dynamic).toHaveLength(1);
    expect(Number(dynamic[0].split('/')[0].split('.')[3])).toBeGreaterThanOrEqual(128); // inside --ip-range 10.79.0.128/25
    expect(addresses.filter((a: string) => a.startsWith('fd00:79::'))).toHaveLength(3);
  });

  it('answers Join with the gateway as a bare IP and the link to move', () => {
    const joins = answers.filter((a) => a.line.path === '/NetworkDriver.Join');
    expect(joins).toHaveLength(2);
    for (const { json, line } of joins) {
      expect(json).toEqual({
        InterfaceName: { SrcName: endpointLinkName(JSON.parse(line.body).EndpointID), DstPrefix: 'eth' },
        Gateway: '10.79.0.1',
        GatewayIPv6: 'fd00:79::1', // the first usable address, chosen by this IPAM
        StaticRoutes: [],
        DisableGatewayService: false,
      });
    }
  });

  it('leaves no link and no record behind once Docker has removed everything', async () => {
    await plugin.driver.settled();
    expect(linkNames().filter((n) => n.startsWith('tsmv'))).toEqual([]);
    expect(plugin.driver.listNetworks()).toEqual([]);
    expect(plugin.driver.listEndpoints()).toEqual([]);
  });
});
