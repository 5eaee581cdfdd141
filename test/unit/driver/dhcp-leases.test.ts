import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DhcpClients } from '../../../src/dhcp/clients';
import type { Lease } from '../../../src/dhcp/lease';
import { DhcpLeases } from '../../../src/driver/dhcp-leases';
import { DriverState } from '../../../src/driver/driver-state';
import type { EndpointRecord } from '../../../src/driver/endpoint-naming';
import type { Links } from '../../../src/kernel/links';
import { KeyedMutex } from '../../../src/state/keyed-mutex';

const MAC = '02:00:00:00:00:01';
const lease = (address: string, obtainedAt = 1000): Lease => ({
  mac: MAC,
  address,
  prefixLength: 24,
  serverId: '10.77.0.1',
  serverMac: '02:00:00:00:00:fe',
  routers: ['10.77.0.1'],
  dnsServers: [],
  classlessRoutes: [],
  leaseSeconds: 120,
  obtainedAt,
  renewAt: obtainedAt + 60_000,
  rebindAt: obtainedAt + 105_000,
  expiresAt: obtainedAt + 120_000,
});

/** Records what the leases ask of the DHCP service; lease events are emitted by the test. */
class FakeClients extends EventEmitter {
  calls: string[] = [];
  resume(ifindex: number, l: Lease) {
    this.calls.push(`resume ${ifindex} ${l.address}`);
  }
  release(mac: string) {
    this.calls.push(`release ${mac}`);
  }
}

describe('DHCP leases of the driver', { timeout: 30_000 }, () => {
  let dir: string;
  let state: DriverState;
  let clients: FakeClients;
  let leases: DhcpLeases;
  const endpoint: EndpointRecord = {
    id: 'e1',
    networkId: 'n1',
    mac: MAC,
    ipv4: '10.77.0.100/24',
    lease: lease('10.77.0.100'),
  };
  /** The record on disk, without the format every record carries. */
  const onDisk = (): EndpointRecord => {
    const { format, ...record } = JSON.parse(readFileSync(join(dir, 'endpoints', 'e1.json'), 'utf8'));
    expect(format).toBe(3);
    return record;
  };
  /**
   * The record is written under the endpoint's lock after the event: waits (bounded, 20 s: a write and its fsyncs
   * took over 5 s on this shared VM while other suites ran) until `check` holds.
   */
  async function until(check: () => void): Promise<void> {
    for (let i = 0; ; i++) {
      try {
        return check();
      } catch (err) {
        if (i >= 800) throw err;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    }
  }

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tmvH-leases-'));
    state = new DriverState(dir);
    state.addNetwork({
      id: 'n1',
      parent: 'eth9',
      ownsParent: false,
      kind: 'macvlan',
      mode: 'bridge',
      internal: false,
      dhcp: { timeoutSeconds: 1 },
    });
    await state.endpointStore.put(endpoint.id, endpoint);
    state.addEndpoint(endpoint);
    clients = new FakeClients();
    const links = { get: async () => ({ index: 7 }) } as unknown as Links;
    const open = () => ({ clients: clients as unknown as DhcpClients, close: () => undefined });
    leases = new DhcpLeases(links, state, new KeyedMutex(), pino({ level: 'silent' }), open);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('resumes answered leases at start and releases those of unanswered endpoints', async () => {
    const unanswered: EndpointRecord = {
      id: 'e2',
      networkId: 'n1',
      mac: '02:00:00:00:00:02',
      unanswered: true,
      lease: { ...lease('10.77.0.101'), mac: '02:00:00:00:00:02' },
    };
    await leases.resumeAtStart([endpoint], [unanswered]);
    expect(clients.calls).toEqual(['resume 7 10.77.0.100', 'resume 7 10.77.0.101', 'release 02:00:00:00:00:02']);
  });

  it('a renewal updates the record on disk', async () => {
    await leases.resumeAtStart([endpoint], []);
    const renewed = lease('10.77.0.100', 50_000);
    clients.emit('lease', { ifindex: 7, mac: MAC, event: { kind: 'renewed', lease: renewed } });
    await until(() => expect(onDisk().lease).toEqual(renewed));
    // Memory follows once the write is durable (the directory sync after the rename the file shows).
    await until(() => expect(state.endpoints.get('e1')?.lease).toEqual(renewed));
  });

  it.each([
    ['changed', { kind: 'changed', previous: lease('10.77.0.100'), lease: lease('10.77.0.105') }],
    ['nak', { kind: 'lost', lease: lease('10.77.0.100'), reason: 'nak' }],
    ['expired', { kind: 'lost', lease: lease('10.77.0.100'), reason: 'expired' }],
  ])('a lease %s: the client stops at once, the record keeps the endpoint without its lease', async (reason, event) => {
    await leases.resumeAtStart([endpoint], []);
    clients.calls = [];
    clients.emit('lease', { ifindex: 7, mac: MAC, event });
    expect(clients.calls).toEqual([`release ${MAC}`]); // before any await: no new address can be bound meanwhile
    // The record reaches the disk (rename) before memory takes it: wait for both.
    await until(() => expect(state.endpoints.get('e1')?.leaseLost?.reason).toBe(reason));
    expect(onDisk().lease).toBeUndefined();
    expect(onDisk().leaseLost).toMatchObject({ address: '10.77.0.100', reason });
  });

  it('events for a MAC no endpoint holds change nothing', async () => {
    await leases.resumeAtStart([endpoint], []);
    clients.calls = [];
    clients.emit('lease', {
      ifindex: 7,
      mac: '02:00:00:00:00:09',
      event: { kind: 'lost', lease: lease('10.77.0.9'), reason: 'nak' },
    });
    await Promise.resolve();
    expect(clients.calls).toEqual([]);
    expect(onDisk()).toEqual(endpoint);
  });
});
