// DHCP leases across a kill -9 of the real daemon: renewals resume on the recorded schedule (the server sees them),
// a renewal the server refuses (NAK) removes the container's interface from the host side, and so does a lease that
// expires because the server is gone.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endpointLinkName, type EndpointRecord } from '../../../src/driver/endpoint-naming';
import { DhcpLab, SUBNET, inNs } from '../../helpers/dhcp-lab';
import { assertPrivateNetns, ip } from '../../helpers/net';
import { CLI, post, spawnDaemon, waitForSocket, type Daemon } from '../../helpers/serve';
import { freePort, sample, scrape } from '../../helpers/prometheus';
import { execFileSync } from 'node:child_process';

const id = () => randomBytes(32).toString('hex');
/** Every address of the server's dynamic range (SUBNET.first to SUBNET.last, in one /24). */
const rangeAddresses = () => {
  const last = (a: string) => Number(a.split('.')[3]);
  const base = SUBNET.first.slice(0, SUBNET.first.lastIndexOf('.') + 1);
  return Array.from(
    { length: last(SUBNET.last) - last(SUBNET.first) + 1 },
    (_, i) => `${base}${last(SUBNET.first) + i}`,
  );
};
const NETWORK = id();

// Each case starts the daemon twice and waits on a real server: on a busy 2-core machine that took over 60 s.
describe('DHCP leases across a kill -9 of the daemon', { timeout: 240_000 }, () => {
  let lab: DhcpLab;
  let dir: string;
  let daemon: Daemon | undefined;
  let metricsAt: string;
  const namespaces: string[] = [];
  const socket = () => join(dir, 'p.sock');
  const recordFile = (endpointId: string) => join(dir, 'state', 'endpoints', `${endpointId}.json`);
  const record = (endpointId: string) => JSON.parse(readFileSync(recordFile(endpointId), 'utf8')) as EndpointRecord;

  async function start(): Promise<Daemon> {
    daemon = spawnDaemon([
      'serve',
      ...['--socket', socket(), '--state-dir', join(dir, 'state'), '--log-level', 'info'],
      ...['--metrics-address', metricsAt],
    ]);
    await waitForSocket(socket(), daemon);
    return daemon;
  }

  /** CreateEndpoint and Join as Docker does them: the link moves into a namespace of the test's, with the lease's address. */
  async function container(
    name: string,
    sandboxKey = (ns: string) => `/run/netns/${ns}`,
    network = NETWORK,
  ): Promise<{ endpointId: string; ns: string; address: string; mac: string }> {
    const endpointId = id();
    const ns = `${lab.prefix}${name}`;
    ip('netns', 'add', ns);
    namespaces.push(ns);
    const created = await post(socket(), 'NetworkDriver.CreateEndpoint', {
      NetworkID: network,
      EndpointID: endpointId,
      Interface: {},
    });
    expect(created.status, JSON.stringify(created.json)).toBe(200);
    const { Address, MacAddress } = created.json.Interface as { Address: string; MacAddress: string };
    const joined = await post(socket(), 'NetworkDriver.Join', {
      NetworkID: network,
      EndpointID: endpointId,
      SandboxKey: sandboxKey(ns),
    });
    expect(joined.status, JSON.stringify(joined.json)).toBe(200);
    const link = endpointLinkName(endpointId);
    ip('link', 'set', link, 'netns', ns);
    inNs(ns, 'ip', 'link', 'set', link, 'name', 'eth0');
    inNs(ns, 'ip', 'addr', 'add', Address, 'dev', 'eth0');
    inNs(ns, 'ip', 'link', 'set', 'eth0', 'up');
    return { endpointId, ns, address: Address.split('/')[0]!, mac: MacAddress };
  }

  /** As if T1 passed while the plugin was down (and with `times`, T2 too, and the lease's end is near). */
  function renewalDue(endpointId: string, times: { rebindAt?: number; expiresAt?: number } = {}): void {
    const r = record(endpointId);
    const lease = { ...r.lease, renewAt: Date.now() - 1000, ...times };
    writeFileSync(recordFile(endpointId), JSON.stringify({ ...r, lease }));
  }

  async function eventually(check: () => void, ms = 15_000): Promise<void> {
    const deadline = Date.now() + ms;
    for (;;) {
      try {
        return check();
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  beforeAll(async () => {
    assertPrivateNetns();
    lab = await DhcpLab.create('tmvH');
    await lab.startServer();
    dir = mkdtempSync(join(tmpdir(), 'tmvH-restart-'));
    metricsAt = `127.0.0.1:${await freePort()}`;
  });
  afterAll(async () => {
    daemon?.child.kill('SIGKILL');
    for (const ns of namespaces) ip('netns', 'del', ns);
    await lab?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("renewals resume on schedule after kill -9; a NAK removes the container's interface", async () => {
    await start();
    const network = await post(socket(), 'NetworkDriver.CreateNetwork', {
      NetworkID: NETWORK,
      Options: { 'com.docker.network.generic': { parent: lab.parent, dhcp: 'true' } },
      IPv4Data: [{ AddressSpace: 'null', Pool: '0.0.0.0/0' }],
    });
    expect(network.status, JSON.stringify(network.json)).toBe(200);
    const kept = await container('c1');
    const refused = await container('c2');
    // Docker's namespace file out of the plugin's sight, as in the managed plugin's mount namespace.
    const unseen = await container('c3', (ns) => `/var/run/docker/netns/${ns}`);
    const before = record(kept.endpointId).lease!;

    daemon!.child.kill('SIGKILL');
    await daemon!.exited;
    renewalDue(kept.endpointId);
    renewalDue(refused.endpointId);
    renewalDue(unseen.endpointId);
    // The server now gives c2's and c3's MACs other addresses: their renewals get a NAK. Two addresses of the whole
    // range that nobody holds: any three the server may have given the containers leave 18.
    const held = new Set([kept, refused, unseen].map((c) => c.address));
    const free = rangeAddresses().filter((a) => !held.has(a));
    const [other, elsewhere] = [free.at(-1)!, free.at(-2)!];
    await lab.reserve(refused.mac, other);
    await lab.reserve(unseen.mac, elsewhere);
    const acks = (c: { address: string; mac: string }) =>
      lab.serverLog().split(`DHCPACK(br0) ${c.address} ${c.mac}`).length;
    const acksBefore = acks(kept);

    const restarted = await start();
    // The kept lease renews at once (its T1 is past), by unicast: the server ACKs and the record takes the new times.
    await eventually(() => expect(acks(kept)).toBe(acksBefore + 1));
    await eventually(() => expect(record(kept.endpointId).lease!.obtainedAt).toBeGreaterThan(before.obtainedAt));
    expect(record(kept.endpointId).lease!.address).toBe(kept.address);
    expect(inNs(kept.ns, 'ip', '-br', 'link', 'show', 'eth0')).toMatch(/\bUP\b/);

    // The refused one: NAK, the record loses its lease, the container's interface is deleted, no new lease is kept.
    await eventually(() => expect(lab.serverLog()).toContain(`DHCPNAK(br0) ${refused.address} ${refused.mac}`));
    await eventually(() =>
      expect(record(refused.endpointId).leaseLost).toMatchObject({ address: refused.address, reason: 'nak' }),
    );
    expect(record(refused.endpointId).lease).toBeUndefined();
    await eventually(() => expect(inNs(refused.ns, 'ip', '-br', 'link', 'show')).not.toContain('eth0'));
    // Without its namespace file, the link is found by the id its move gave the namespace here. What the server and the
    // plugin said of that MAC goes into a failure.
    const about = (text: string) =>
      text
        .split('\n')
        .filter((line) => line.includes(unseen.mac))
        .join('\n');
    await eventually(() =>
      expect(
        record(unseen.endpointId).leaseLost,
        `${about(lab.serverLog())}\n${about(restarted.output())}`,
      ).toMatchObject({ reason: 'nak' }),
    );
    await eventually(() => expect(inNs(unseen.ns, 'ip', '-br', 'link', 'show')).not.toContain('eth0'));
    // The log line goes out through the daemon's stdout pipe, which may lag the state the test can see.
    await eventually(() =>
      expect(restarted.output()).toMatch(
        /DHCP lease of [\d.]+ lost \(nak\): the container's interface on this network is removed/,
      ),
    );
    // The client stopped at the NAK: the address the server now offers that MAC is never taken (the NAK'd one stays
    // in the server's file until it expires: a NAK does not end a lease there, and a RELEASE would name an address
    // the server has disowned).
    await eventually(() => expect(lab.serverLog()).toContain(`DHCPOFFER(br0) ${other} ${refused.mac}`));
    expect(lab.serverLog()).not.toContain(`DHCPREQUEST(br0) ${other} ${refused.mac}`);
    expect(lab.serverLeases()).not.toContainEqual(expect.objectContaining({ mac: refused.mac, address: other }));

    // The metrics count what happened since the restart: one renewal granted, two NAKs, two containers cut off.
    const metrics = await scrape(metricsAt);
    expect(sample(metrics, 'tsmacvlan_dhcp_renewals_total')).toBe(1);
    expect(sample(metrics, 'tsmacvlan_dhcp_failures_total{reason="nak"}')).toBe(2);
    expect(sample(metrics, 'tsmacvlan_dhcp_failures_total{reason="timeout"}')).toBe(0);
    expect(sample(metrics, 'tsmacvlan_dhcp_leases{state="bound"}')).toBe(1);
    expect(sample(metrics, 'tsmacvlan_dhcp_leases{state="lost"}')).toBe(2);

    // `tsmacvlan status` lists both: the kept lease with its server and times, the lost one with its reason.
    const statusJson = execFileSync(
      process.execPath,
      [CLI, 'status', '--json', '--socket', socket(), '--state-dir', join(dir, 'state')],
      {
        encoding: 'utf8',
      },
    );
    const leases = (JSON.parse(statusJson) as { leases: { endpointId: string }[] }).leases;
    const renewed = record(kept.endpointId).lease!;
    expect(leases).toEqual(
      expect.arrayContaining([
        {
          endpointId: kept.endpointId,
          mac: kept.mac,
          address: `${kept.address}/24`,
          server: '10.77.0.1',
          expires: new Date(renewed.expiresAt).toISOString(),
          nextRenewal: new Date(renewed.renewAt).toISOString(),
          lost: null,
        },
        expect.objectContaining({ endpointId: refused.endpointId, address: refused.address, lost: 'nak' }),
      ]),
    );

    // Join refuses an endpoint whose lease is gone, saying what to do.
    const rejoin = await post(socket(), 'NetworkDriver.Join', { NetworkID: NETWORK, EndpointID: refused.endpointId });
    expect(rejoin.json.Err).toMatch(/lost its DHCP lease.*disconnect and connect the container again/);

    // Docker's removal: the links come back to the host, DeleteEndpoint releases what is leased.
    for (const c of [kept, refused, unseen]) {
      if (c !== kept) {
        expect(
          (await post(socket(), 'NetworkDriver.DeleteEndpoint', { NetworkID: NETWORK, EndpointID: c.endpointId }))
            .status,
        ).toBe(200);
        continue;
      }
      inNs(c.ns, 'ip', 'link', 'set', 'eth0', 'down');
      inNs(c.ns, 'ip', 'link', 'set', 'eth0', 'name', endpointLinkName(c.endpointId));
      inNs(c.ns, 'ip', 'link', 'set', endpointLinkName(c.endpointId), 'netns', String(process.pid)); // back to the test's own namespace
      const deleted = await post(socket(), 'NetworkDriver.DeleteEndpoint', {
        NetworkID: NETWORK,
        EndpointID: c.endpointId,
      });
      expect(deleted.status).toBe(200);
    }
    expect(await lab.released([kept])).toEqual({ unlogged: [], kept: [] });
    expect((await post(socket(), 'NetworkDriver.DeleteNetwork', { NetworkID: NETWORK })).status).toBe(200);
  });

  it("a lease that expires, its server gone, removes the container's interface", async () => {
    const network = id();
    if (!daemon || daemon.child.exitCode !== null || daemon.child.signalCode !== null) await start();
    const created = await post(socket(), 'NetworkDriver.CreateNetwork', {
      NetworkID: network,
      Options: { 'com.docker.network.generic': { parent: lab.parent, dhcp: 'true' } },
      IPv4Data: [{ AddressSpace: 'null', Pool: '0.0.0.0/0' }],
    });
    expect(created.status, JSON.stringify(created.json)).toBe(200);
    const c = await container('c4', undefined, network);
    // The server goes away for good; the plugin is down while the lease's T1 and T2 pass, 4 s of it are left.
    await lab.stopServer();
    daemon!.child.kill('SIGKILL');
    await daemon!.exited;
    renewalDue(c.endpointId, { rebindAt: Date.now() - 500, expiresAt: Date.now() + 4000 });

    const restarted = await start();
    // It rebinds (no server answers), and when the lease ends the container loses its interface.
    await eventually(
      () => expect(record(c.endpointId).leaseLost).toMatchObject({ address: c.address, reason: 'expired' }),
      60_000,
    );
    expect(record(c.endpointId).lease).toBeUndefined();
    await eventually(() => expect(inNs(c.ns, 'ip', '-br', 'link', 'show')).not.toContain('eth0'), 60_000);
    await eventually(
      () =>
        expect(restarted.output()).toMatch(
          new RegExp(`DHCP lease of ${c.address.replace(/\./g, '\\.')} lost \\(expired\\)`),
        ),
      60_000,
    );
    const gone = await post(socket(), 'NetworkDriver.DeleteEndpoint', { NetworkID: network, EndpointID: c.endpointId });
    expect(gone.status).toBe(200);
    expect((await post(socket(), 'NetworkDriver.DeleteNetwork', { NetworkID: network })).status).toBe(200);
  });
});
