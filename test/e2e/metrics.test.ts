// The metrics with real containers (issue 25): the plugin under the lab's dockerd with --metrics-address and --etcd,
// scraped by Debian's Prometheus on the lab's loopback with the docs' scrape config and alerting rules. A network with
// the plugin's IPAM kept on this host, one cluster-wide (etcd), one leasing from the LAN's DHCP server, containers on
// each: Prometheus's query API returns the containers as allocated addresses, the ranges' sizes as capacity, the leases
// by state, etcd up; removing the containers brings the figures back down. Runs once (in the 20.10 run): the metrics
// do not depend on the engine.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdCluster } from '../lab/etcd';
import { PrometheusServer, freePort, promtoolCheckMetrics, requirePrometheus, scrape } from '../helpers/prometheus';
import { dockerOk, removeDockerObjects, runSleeper } from './docker';
import { DhcpServer } from './dnsmasq';
import { DRIVER, type PluginDaemon, startPluginDaemon } from './plugin-daemon';
import { createSwitch, destroyAllSwitches, type Switch } from './topology';

const PREFIX = 'tsmv-metrics-';
const DOCS = join(__dirname, '../../docs/metrics');

describe('metrics of containers on the three kinds of networks, through Prometheus', () => {
  let etcd: EtcdCluster;
  let plugin: PluginDaemon;
  let prometheus: PrometheusServer;
  let metricsAt: string;
  let dhcp: DhcpServer;
  const switches: Switch[] = [];

  beforeAll(async () => {
    requirePrometheus();
    await removeDockerObjects(PREFIX);
    etcd = EtcdCluster.onHost('tsmvMe', '127.0.0.1', await freePort(), 1);
    await etcd.start();
    metricsAt = `127.0.0.1:${await freePort()}`;
    plugin = await startPluginDaemon(undefined, ['--metrics-address', metricsAt, '--etcd', etcd.endpoint(0)]);
    const config = readFileSync(join(DOCS, 'prometheus.yml'), 'utf8')
      .replace(/(scrape|evaluation)_interval: 15s/g, '$1_interval: 1s')
      .replace(`['127.0.0.1:9464']`, `['${metricsAt}']`);
    const rules = readFileSync(join(DOCS, 'alerts.yml'), 'utf8');
    prometheus = await PrometheusServer.start({ 'prometheus.yml': config, 'tsmacvlan-alerts.yml': rules });
    for (const third of [60, 61, 62]) switches.push(await createSwitch({ subnetPrefix: `10.232.${third}` }));
    dhcp = new DhcpServer();
    await dhcp.start(switches[2], { range: { first: 100, last: 120 } });
  });

  afterAll(async () => {
    await removeDockerObjects(PREFIX);
    await dhcp?.stop();
    await destroyAllSwitches();
    await prometheus?.stop();
    await plugin?.destroy();
    await etcd?.stop();
  });

  it('allocated = the containers, capacity = the ranges, leases by state, etcd up; and back down when they go', async () => {
    const [local, shared, lan] = switches;
    const network = (name: string, sw: Switch, ...options: string[]) =>
      dockerOk(['network', 'create', '-d', DRIVER, '-o', `parent=${sw.parent}`, ...options, `${PREFIX}${name}`]);
    const ipam = (sw: Switch, range: string) => [
      '--ipam-driver',
      DRIVER,
      '--subnet',
      sw.subnet,
      '--gateway',
      sw.bridgeIp,
      '--ip-range',
      range,
    ];
    await network('local', local, ...ipam(local, '10.232.60.128/28'), '--ipam-opt', 'scope=host');
    await network('shared', shared, ...ipam(shared, '10.232.61.64/28'));
    await network('dhcp', lan, '--ipam-driver', 'null', '-o', 'dhcp=true');
    const containers = { local: 3, shared: 2, dhcp: 2 };
    for (const [name, count] of Object.entries(containers))
      for (let i = 0; i < count; i++) await runSleeper(`${PREFIX}${name}${i}`, { network: `${PREFIX}${name}` });

    expect(promtoolCheckMetrics(await scrape(metricsAt))).toBe('');
    const value = async (expr: string) => (await prometheus.query(expr)).map((r) => r.value);
    const series = (subnet: string, range: string, scope: string) =>
      `{subnet="${subnet}",range="${range}",scope="${scope}"}`;
    const localRange = series('10.232.60.0/24', '10.232.60.128/28', 'host');
    await prometheus.until(async () => {
      expect(await value('up{job="tsmacvlan"}')).toEqual([1]);
      expect(await value(`tsmacvlan_ipam_addresses_allocated${localRange}`)).toEqual([containers.local]);
      expect(await value('tsmacvlan_dhcp_leases{state="bound"}')).toEqual([containers.dhcp]);
    });
    expect(await value(`tsmacvlan_ipam_addresses_capacity${localRange}`)).toEqual([16]);
    for (const scope of ['host', 'cluster']) {
      const sharedRange = series('10.232.61.0/24', '10.232.61.64/28', scope);
      expect(await value(`tsmacvlan_ipam_addresses_allocated${sharedRange}`)).toEqual([containers.shared]);
      expect(await value(`tsmacvlan_ipam_addresses_capacity${sharedRange}`)).toEqual([16]);
    }
    expect(await value('tsmacvlan_networks')).toEqual([3]);
    expect(await value('sum(tsmacvlan_endpoints)')).toEqual([7]);
    expect(await value('tsmacvlan_etcd_up')).toEqual([1]);
    expect(await value('tsmacvlan_etcd_request_duration_seconds_count > 0')).toHaveLength(1);
    expect(await value('sum(tsmacvlan_request_duration_seconds_count{outcome="error"}) or vector(0)')).toEqual([0]);
    expect((await prometheus.rules()).filter((r) => r.health !== 'ok')).toEqual([]);

    await removeDockerObjects(PREFIX);
    await prometheus.until(async () => {
      expect(await value('tsmacvlan_networks')).toEqual([0]);
      expect(await value('tsmacvlan_ipam_addresses_allocated')).toEqual([]);
      expect(await value('tsmacvlan_dhcp_leases{state="bound"}')).toEqual([0]);
    });
  });
});
