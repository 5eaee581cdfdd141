import { describe, expect, it } from 'vitest';
import { leaseCells, leaseRows } from '../../../src/inspect/lease-rows';

describe('lease rows of status', () => {
  const now = Date.now();
  const lease = {
    mac: '02:00:00:00:00:01',
    address: '10.77.0.100',
    prefixLength: 24,
    serverId: '10.77.0.1',
    serverMac: '02:00:00:00:00:fe',
    routers: [],
    dnsServers: [],
    classlessRoutes: [],
    leaseSeconds: 120,
    obtainedAt: now - 70_000,
    renewAt: now - 10_000,
    rebindAt: now + 35_000,
    expiresAt: now + 50_000,
  };
  const endpoints = [
    { id: 'e1', networkId: 'n', mac: lease.mac, ipv4: '10.77.0.100/24', lease },
    {
      id: 'e2',
      networkId: 'n',
      mac: '02:00:00:00:00:02',
      leaseLost: { address: '10.77.0.101', reason: 'nak', at: now },
    },
    { id: 'e3', networkId: 'n', mac: '02:00:00:00:00:03', ipv4: '10.1.0.5/24' },
  ];

  it('one per DHCP endpoint: address, MAC, server, expiry and the next renewal (T2 once T1 is past); lost ones say why', () => {
    const rows = leaseRows(endpoints);
    expect(rows).toEqual([
      {
        endpointId: 'e1',
        mac: lease.mac,
        address: '10.77.0.100/24',
        server: '10.77.0.1',
        expires: new Date(lease.expiresAt).toISOString(),
        nextRenewal: new Date(lease.rebindAt).toISOString(),
        lost: null,
      },
      {
        endpointId: 'e2',
        mac: '02:00:00:00:00:02',
        address: '10.77.0.101',
        server: null,
        expires: null,
        nextRenewal: null,
        lost: 'nak',
      },
    ]);
    expect(leaseCells(rows)[1]).toEqual(['e2', '10.77.0.101', '02:00:00:00:00:02', '-', 'lost (nak)', '-']);
  });

  it('a DHCPv6 lease is a row of its own, the DUID as its server', () => {
    const lease6 = {
      mac: '02:00:00:00:00:04',
      duid: '00:03:00:01:02:00:00:00:00:04',
      iaid: 1,
      address: 'fd00:77::10',
      serverId: '00:01:00:01:aa:bb',
      preferredSeconds: 120,
      validSeconds: 240,
      dnsServers: [],
      obtainedAt: now,
      renewAt: now + 60_000,
      rebindAt: now + 96_000,
      expiresAt: now + 240_000,
    };
    const rows = leaseRows([
      {
        id: 'e4',
        networkId: 'n',
        mac: lease6.mac,
        ipv6: 'fd00:77::10/64',
        dhcp6: { lease: lease6, router: 'fe80::1' },
      },
    ]);
    expect(rows).toEqual([
      {
        endpointId: 'e4',
        mac: lease6.mac,
        address: 'fd00:77::10/64',
        server: lease6.serverId,
        expires: new Date(lease6.expiresAt).toISOString(),
        nextRenewal: new Date(lease6.renewAt).toISOString(),
        lost: null,
      },
    ]);
  });
});
