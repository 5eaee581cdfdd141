// Every request a real Docker Engine 28.5.2 sent a plugin, with that plugin's answers, replayed in order against the
// real kernel: IPv6-only and internal networks, enable_ipv4, a per-network MAC, an endpoint ifname, --gw-priority.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endpointLinkName } from '../../src/driver/endpoint-naming';
import { internalParentName } from '../../src/driver/parents';
import { assertPrivateNetns, ip, link, linkNames, vethPair } from '../helpers/net';
import { startPlugin, type TestPlugin } from '../helpers/plugin';

interface TraceLine {
  scenario: string;
  path: string;
  headers: Record<string, string | null>;
  body: string;
  status: number;
  response: string;
}

const trace: TraceLine[] = readFileSync(join(__dirname, '../fixtures/docker-28.5.2-trace.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((line) => JSON.parse(line));

const RECORDED_PARENT = 'b29-p';
// The capture's --ipam-opt foo=bar, made before unknown --ipam-opt keys were refused: replayed as a known option (the
// pool id it maps to is ours either way), and refused as sent in a case of its own.
const CAPTURED_IPAM_OPT = '"Options":{"foo":"bar"}';
const KNOWN_IPAM_OPT = '"Options":{"scope":"host"}';
const PARENT = 'tmvT28p'; // a veth made here, in the test's own namespace

describe('replay of docker-28.5.2-trace.jsonl', () => {
  let plugin: TestPlugin;
  const answers: { line: TraceLine; sent: any; status: number; json: any }[] = [];
  // The recorded plugin's choices (pool ids, dynamic addresses) and the capture host's parent stand in later
  // requests and answers: swap in ours, so each request refers to what this plugin answered, as with Docker.
  const ours = new Map<string, string>([[RECORDED_PARENT, PARENT]]);
  const substitute = (text: string) => {
    for (const [theirs, mine] of ours)
      text = text.replace(new RegExp(`"${theirs.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}(?=[/"])`, 'g'), `"${mine}`);
    return text;
  };
  const bare = (cidr: string) => cidr.split('/')[0];

  beforeAll(async () => {
    assertPrivateNetns();
    vethPair(PARENT);
    plugin = await startPlugin();
  });
  afterAll(async () => {
    await plugin?.destroy();
    ip('link', 'del', PARENT);
  });

  it('answers every request exactly as recorded: the status, and the body Docker reads (ids and choices mapped)', async () => {
    for (const line of trace) {
      expect(line.headers['content-type']).toBeNull();
      const payload = substitute(line.body).replace(CAPTURED_IPAM_OPT, KNOWN_IPAM_OPT);
      const res = await plugin.app.inject({
        method: 'POST',
        url: line.path,
        payload,
        headers: { accept: line.headers.accept ?? '' },
      });
      const sent = payload ? JSON.parse(payload) : {};
      const json = JSON.parse(res.body);
      const recorded = JSON.parse(line.response);
      if (line.path === '/IpamDriver.RequestPool' && res.statusCode === 200) ours.set(recorded.PoolID, json.PoolID);
      if (line.path === '/IpamDriver.RequestAddress' && res.statusCode === 200)
        ours.set(bare(recorded.Address), bare(json.Address));
      answers.push({ line, sent, status: res.statusCode, json });
      expect({ path: line.path, payload, status: res.statusCode, body: json }).toEqual({
        path: line.path,
        payload,
        status: line.status,
        body: JSON.parse(substitute(line.response)),
      });
      if (line.path === '/NetworkDriver.Join') {
        // The host-side link exists on the network's parent with the endpoint's MAC, until Docker takes it.
        const created = link(json.InterfaceName.SrcName);
        const create = answers.find(
          (a) => a.line.path === '/NetworkDriver.CreateEndpoint' && a.sent.EndpointID === sent.EndpointID,
        )!;
        expect(created?.linkinfo?.info_kind).toBe('macvlan');
        expect(created?.address).toBe(create.sent.Interface.MacAddress || create.json.Interface.MacAddress);
        expect([PARENT, internalParentName(sent.NetworkID)]).toContain(created?.link);
      }
    }
    expect(answers).toHaveLength(trace.length);
  });

  it("refuses the capture's unknown --ipam-opt foo=bar by name", async () => {
    const line = trace.find((l) => l.path === '/IpamDriver.RequestPool' && l.body.includes(CAPTURED_IPAM_OPT))!;
    const res = await plugin.app.inject({ method: 'POST', url: line.path, payload: line.body });
    expect(res.statusCode).toBe(500);
    const error = "unknown --ipam-opt 'foo'; tsmacvlan's IPAM accepts: scope, probe, ipv6, parent";
    expect(JSON.parse(res.body)).toEqual({ Err: error, Error: error });
  });

  it('makes an IPv6-only network (enable_ipv4=false, no IPv4 pool) whose endpoints get an IPv6 gateway only', () => {
    const create = answers.find((a) => a.line.scenario === 'network-create-ipv6-only' && a.sent.NetworkID)!;
    expect(create.sent.Options['com.docker.network.enable_ipv4']).toBe(false);
    expect(create.sent.IPv4Data).toEqual([]);
    const pools = answers.filter((a) => a.line.path === '/IpamDriver.RequestPool' && a.sent.V6);
    expect(pools.map((p) => p.json.Pool)).toEqual(['fd00:82::/64']);
    const join = answers.find(
      (a) => a.line.path === '/NetworkDriver.Join' && a.sent.NetworkID === create.sent.NetworkID,
    )!;
    expect(join.json).not.toHaveProperty('Gateway');
    expect(join.json.GatewayIPv6).toBe('fd00:82::1');
    // No IPv4 address to derive it from: a locally administered unicast MAC of the endpoint's own.
    const endpoint = answers.find(
      (a) => a.line.path === '/NetworkDriver.CreateEndpoint' && a.sent.NetworkID === create.sent.NetworkID,
    )!;
    expect(parseInt(endpoint.json.Interface.MacAddress.slice(0, 2), 16) & 0b11).toBe(0b10);
  });

  it('keeps the per-network MAC Docker chose and answers no interface name for the ifname option', () => {
    const create = answers.find(
      (a) => a.line.path === '/NetworkDriver.CreateEndpoint' && a.sent.Options['com.docker.network.endpoint.ifname'],
    )!;
    expect(create.sent.Interface.MacAddress).toBe('02:aa:bb:cc:dd:ee');
    expect(create.json).toEqual({}); // echoing a field Docker set makes it roll the endpoint back
    const join = answers.find(
      (a) => a.line.path === '/NetworkDriver.Join' && a.sent.EndpointID === create.sent.EndpointID,
    )!;
    // Docker drops DstName from a remote driver's answer (up to 29.7): the container gets eth<n>, not lan0.
    expect(join.json.InterfaceName).toEqual({ SrcName: endpointLinkName(create.sent.EndpointID), DstPrefix: 'eth' });
  });

  it('gives the internal network, made without a parent, no gateway and turns the gateway service off', () => {
    const create = answers.find(
      (a) => a.line.scenario === 'internal' && a.line.path === '/NetworkDriver.CreateNetwork',
    )!;
    expect(create.sent.Options['com.docker.network.internal']).toBe(true);
    const join = answers.find((a) => a.line.scenario === 'internal' && a.line.path === '/NetworkDriver.Join')!;
    expect(join.json).toMatchObject({ DisableGatewayService: true, StaticRoutes: [] });
    expect(join.json).not.toHaveProperty('Gateway');
  });

  it('leaves no link and no record behind once Docker has removed everything', async () => {
    await plugin.driver.settled();
    expect(linkNames().filter((n) => n.startsWith('tsmv'))).toEqual([]);
    expect(plugin.driver.listNetworks()).toEqual([]);
    expect(plugin.driver.listEndpoints()).toEqual([]);
  });
});
