// The plugin's metrics as Prometheus sees them: `tsmacvlan serve --metrics-address` scraped by a real Prometheus (Debian's)
// on the namespace's loopback, with the scrape config and alerting rules of docs/metrics/. Networks, containers
// (CreateEndpoint and Join, as Docker does them), DHCP leases from a dnsmasq LAN, a failed request: Prometheus's query
// API returns what happened; promtool passes the exposition and the docs' files; the range alerts fire once the range
// is filled; every query of the Grafana dashboard is valid PromQL.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DhcpLab } from '../../helpers/dhcp-lab';
import { assertPrivateNetns, deleteLink, uniqueName, vethPair } from '../../helpers/net';
import {
  PrometheusServer,
  freePort,
  promtool,
  promtoolCheckMetrics,
  requirePrometheus,
  sample,
  scrape,
} from '../../helpers/prometheus';
import { type Daemon, post, spawnDaemon, waitForSocket } from '../../helpers/serve';

const DOCS = join(__dirname, '../../../docs/metrics');
const id = () => randomBytes(32).toString('hex');
const LAN = id();
const DHCP_NET = id();
/** 10.78.0.1 to .15 are the range's 15 assignable addresses; the gateway is outside it. */
const SUBNET = '10.78.0.0/24';
const RANGE = '10.78.0.0/28';
const CAPACITY = 15;
const CONTAINERS = 3;

describe('metrics scraped by a real Prometheus', () => {
  let lab: DhcpLab;
  let dir: string;
  let parent: string;
  let daemon: Daemon;
  let socket: string;
  let metricsAt: string;
  let prometheus: PrometheusServer | undefined;
  let poolId: string;

  const call = async (method: string, body: unknown) => {
    const { status, json } = await post(socket, method, body);
    if (status !== 200) throw new Error(`${method}: ${JSON.stringify(json)}`);
    return json;
  };

  beforeAll(async () => {
    assertPrivateNetns();
    requirePrometheus();
    dir = mkdtempSync(join(tmpdir(), 'tmvP-'));
    parent = uniqueName('tmvP');
    vethPair(parent);
    lab = await DhcpLab.create('tmvP');
    await lab.startServer();
    socket = join(dir, 'p.sock');
    metricsAt = `127.0.0.1:${await freePort()}`;
    daemon = spawnDaemon([
      'serve',
      ...['--socket', socket, '--state-dir', join(dir, 'state'), '--log-level', 'warn'],
      ...['--metrics-address', metricsAt],
    ]);
    await waitForSocket(socket, daemon);
  });

  afterAll(async () => {
    await prometheus?.stop();
    daemon?.child.kill('SIGKILL');
    await daemon?.exited;
    await lab?.close();
    if (parent) deleteLink(parent);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reports networks, containers, leases and failures; the range alerts fire once the range is full', async () => {
    // An IPAM network with CONTAINERS containers, each with an address from the range.
    poolId = (await call('IpamDriver.RequestPool', { AddressSpace: 'local', Pool: SUBNET, SubPool: RANGE })).PoolID;
    const gateway = (
      await call('IpamDriver.RequestAddress', {
        PoolID: poolId,
        Address: '10.78.0.254',
        Options: { RequestAddressType: 'com.docker.network.gateway' },
      })
    ).Address;
    await call('NetworkDriver.CreateNetwork', {
      NetworkID: LAN,
      Options: { 'com.docker.network.generic': { parent } },
      IPv4Data: [{ Pool: SUBNET, Gateway: gateway }],
    });
    for (let i = 0; i < CONTAINERS; i++) {
      const { Address } = await call('IpamDriver.RequestAddress', { PoolID: poolId, Options: {} });
      const endpoint = { NetworkID: LAN, EndpointID: id(), Interface: { Address } };
      await call('NetworkDriver.CreateEndpoint', endpoint);
      await call('NetworkDriver.Join', { ...endpoint, SandboxKey: '/var/run/docker/netns/x' });
    }
    // A DHCP network with two containers: leased from the LAN's dnsmasq.
    await call('NetworkDriver.CreateNetwork', {
      NetworkID: DHCP_NET,
      Options: { 'com.docker.network.generic': { parent: lab.parent, dhcp: 'true' } },
      IPv4Data: [{ AddressSpace: 'null', Pool: '0.0.0.0/0' }],
    });
    for (let i = 0; i < 2; i++)
      await call('NetworkDriver.CreateEndpoint', { NetworkID: DHCP_NET, EndpointID: id(), Interface: {} });
    // A request that fails.
    expect((await post(socket, 'NetworkDriver.Join', { NetworkID: LAN, EndpointID: id() })).status).toBe(500);

    // The exposition passes promtool (names, types, help, histogram shape).
    const text = await scrape(metricsAt);
    expect(promtoolCheckMetrics(text)).toBe('');
    const { version } = JSON.parse(readFileSync(join(__dirname, '../../../package.json'), 'utf8')) as {
      version: string;
    };
    expect(sample(text, `tsmacvlan_build_info{version="${version}"}`)).toBe(1);

    // Prometheus with the docs' scrape config (this plugin as the target, 1 s intervals) and alerting rules (their
    // `for:` waits cut to 0 s, so an alert fires at the first evaluation that holds).
    const config = readFileSync(join(DOCS, 'prometheus.yml'), 'utf8')
      .replace(/(scrape|evaluation)_interval: 15s/g, '$1_interval: 1s')
      .replace(`['127.0.0.1:9464']`, `['${metricsAt}']`);
    const rules = readFileSync(join(DOCS, 'alerts.yml'), 'utf8').replace(/for: \d+m/g, 'for: 0s');
    expect(config).toContain(metricsAt);
    prometheus = await PrometheusServer.start({ 'prometheus.yml': config, 'tsmacvlan-alerts.yml': rules });
    expect(promtool('check', 'config', join(prometheus.dir, 'prometheus.yml'))).toMatch(/SUCCESS/);
    const server = prometheus;
    const value = async (expr: string) => (await server.query(expr)).map((r) => r.value);
    const range = `subnet="${SUBNET}",range="${RANGE}",scope="host"`;

    await server.until(async () => {
      expect(await value('up{job="tsmacvlan"}')).toEqual([1]);
      expect(await value(`tsmacvlan_ipam_addresses_allocated{${range}}`)).toEqual([CONTAINERS]);
    });
    expect(await value(`tsmacvlan_ipam_addresses_capacity{${range}}`)).toEqual([CAPACITY]);
    expect(await value('tsmacvlan_networks')).toEqual([2]);
    expect(await value(`tsmacvlan_endpoints{network="${LAN.slice(0, 12)}"}`)).toEqual([CONTAINERS]);
    expect(await value(`tsmacvlan_endpoints{network="${DHCP_NET.slice(0, 12)}"}`)).toEqual([2]);
    const leases = await server.query('tsmacvlan_dhcp_leases');
    expect(Object.fromEntries(leases.map((r) => [r.metric.state, r.value]))).toEqual({
      acquiring: 0,
      bound: 2,
      renewing: 0,
      rebinding: 0,
      lost: 0,
    });
    expect(
      await value('tsmacvlan_request_duration_seconds_count{method="NetworkDriver.Join",outcome="error"}'),
    ).toEqual([1]);
    expect(await value('tsmacvlan_request_duration_seconds_count{method="NetworkDriver.Join",outcome="ok"}')).toEqual([
      CONTAINERS,
    ]);
    expect(await value('sum(tsmacvlan_dhcp_failures_total)')).toEqual([0]);
    expect(await value('tsmacvlan_state_fsync_duration_seconds_count > 0')).toHaveLength(1);
    expect(await value('process_resident_memory_bytes > 0')).toHaveLength(1);
    expect(await value('nodejs_eventloop_lag_seconds >= 0')).toHaveLength(1);

    // The rules loaded, all healthy; none fires yet.
    const loaded = await server.rules();
    expect(loaded.map((r) => r.name).sort()).toEqual(
      [...readFileSync(join(DOCS, 'alerts.yml'), 'utf8').matchAll(/- alert: (\w+)/g)].map((m) => m[1]).sort(),
    );
    await server.until(async () => expect(loaded.filter((r) => r.health !== 'ok')).toEqual([]));
    expect((await server.alerts()).filter((a) => a.labels.alertname.startsWith('TsmacvlanRange'))).toEqual([]);

    // Fill the range: both range alerts fire, for this range.
    for (let i = CONTAINERS; i < CAPACITY; i++)
      await call('IpamDriver.RequestAddress', { PoolID: poolId, Options: {} });
    expect((await post(socket, 'IpamDriver.RequestAddress', { PoolID: poolId, Options: {} })).json.Err).toMatch(
      /no free address left in range 10\.78\.0\.0\/28/,
    );
    await server.until(async () => {
      const firing = (await server.alerts()).filter((a) => a.state === 'firing').map((a) => a.labels);
      expect(firing).toEqual(
        expect.arrayContaining(
          ['TsmacvlanRangeAlmostFull', 'TsmacvlanRangeFull'].map((alertname) =>
            expect.objectContaining({ alertname, subnet: SUBNET, range: RANGE, instance: metricsAt }),
          ),
        ),
      );
    });
  });

  it("the docs' files pass promtool, and every query of the Grafana dashboard is valid PromQL with an answer", async () => {
    expect(promtool('check', 'rules', join(DOCS, 'alerts.yml'))).toMatch(/SUCCESS: 7 rules found/);
    const dashboard = JSON.parse(readFileSync(join(DOCS, 'grafana-dashboard.json'), 'utf8')) as {
      panels: { title: string; targets?: { expr: string }[] }[];
    };
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
    expect(exprs.length).toBeGreaterThan(15);
    const server = prometheus!;
    const answered: string[] = [];
    for (const { panel, expr } of exprs) {
      // Grafana's variables, as Grafana fills them in.
      const query = expr.replaceAll('$__rate_interval', '1m').replaceAll('$instance', '.*');
      await server.query(query).then(
        (result) => result.length > 0 && answered.push(panel),
        (err: Error) => {
          throw new Error(`panel '${panel}': ${expr}: ${err.message}`);
        },
      );
    }
    // Without etcd the etcd panels are empty; the others show this plugin.
    const unanswered = exprs.map((e) => e.panel).filter((p) => !answered.includes(p));
    expect([...new Set(unanswered)].sort()).toEqual(
      ['Pending cluster releases', 'etcd call latency', 'etcd up'].sort(),
    );
  });
});
