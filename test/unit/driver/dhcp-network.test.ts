import { describe, expect, it } from 'vitest';
import type { Lease } from '../../../src/dhcp/lease';
import { checkDhcpNetwork, joinRoutes, parseDhcpOptions } from '../../../src/driver/dhcp-network';
import type { ChildMode, MacvlanMode } from '../../../src/kernel/link-info';

const lease = (over: Partial<Lease>): Lease => ({
  mac: '02:00:00:00:00:01',
  address: '10.77.0.100',
  prefixLength: 24,
  serverId: '10.77.0.1',
  serverMac: '02:00:00:00:00:fe',
  routers: [],
  dnsServers: [],
  classlessRoutes: [],
  leaseSeconds: 120,
  obtainedAt: 0,
  renewAt: 60_000,
  rebindAt: 105_000,
  expiresAt: 120_000,
  ...over,
});

describe('DHCP network options', () => {
  it('dhcp=true with a default timeout of 10 s, dhcp_timeout in whole seconds from 1 to 25', () => {
    expect(parseDhcpOptions(undefined, undefined)).toBeUndefined();
    expect(parseDhcpOptions('false', undefined)).toBeUndefined();
    expect(parseDhcpOptions('true', undefined)).toEqual({ timeoutSeconds: 10 });
    expect(parseDhcpOptions('true', '25')).toEqual({ timeoutSeconds: 25 });
    for (const bad of ['0', '26', '1.5', '-1', 'ten', ''])
      expect(() => parseDhcpOptions('true', bad)).toThrow(
        /dhcp_timeout '.*' is not valid; give whole seconds from 1 to 25/,
      );
    expect(() => parseDhcpOptions(undefined, '5')).toThrow('dhcp_timeout only applies with dhcp=true');
    expect(() => parseDhcpOptions('1', undefined)).toThrow("dhcp '1' is not a switch; give dhcp=true");
  });

  it('accepts macvlan bridge, private, vepa and passthru and ipvlan l2 on a parent with the null IPAM pool', () => {
    for (const mode of ['bridge', 'private', 'vepa', 'passthru'] as const)
      expect(() => checkDhcpNetwork({ parent: 'eth1', link: macvlan(mode) }, { pool: '0.0.0.0/0' })).not.toThrow();
    for (const flag of ['bridge', 'private', 'vepa'] as const)
      expect(() =>
        checkDhcpNetwork({ parent: 'eth1', link: { kind: 'ipvlan', mode: 'l2', flag } }, { pool: '0.0.0.0/0' }),
      ).not.toThrow();
    expect(() => checkDhcpNetwork({ parent: 'eth1', link: macvlan('bridge') }, undefined)).not.toThrow();
    expect(() => checkDhcpNetwork({ parent: 'eth1', link: macvlan('source') }, { pool: '0.0.0.0/0' })).toThrow(
      /source/,
    );
    expect(() => checkDhcpNetwork({ parent: 'eth1', link: macvlan('bridge') }, { pool: '172.18.0.0/16' })).toThrow(
      /--ipam-driver null/,
    );
  });

  it('refuses ipvlan l3 and l3s, where nothing answers ARP for a leased address of the LAN', () => {
    for (const mode of ['l3', 'l3s'] as const)
      expect(() =>
        checkDhcpNetwork({ parent: 'eth1', link: { kind: 'ipvlan', mode, flag: 'bridge' } }, { pool: '0.0.0.0/0' }),
      ).toThrow(
        `dhcp=true does not work with ipvlan_mode=${mode}: a DHCP server leases addresses of the LAN itself, and in ${mode} mode ` +
          'nothing answers ARP for the containers there (their subnets must be routed to the host); use ipvlan_mode=l2',
      );
  });
});

const macvlan = (mode: MacvlanMode): ChildMode => ({ kind: 'macvlan', mode });

describe("a lease's routes for Join", () => {
  it('the router option is the gateway; classless routes become static routes (connected for a 0.0.0.0 next hop)', () => {
    const routes = joinRoutes(
      lease({
        routers: ['10.77.0.1'],
        classlessRoutes: [
          { destination: '10.99.0.0/16', gateway: '10.77.0.254' },
          { destination: '10.98.0.0/16', gateway: '0.0.0.0' },
        ],
      }),
    );
    expect(routes).toEqual({
      gateway: '10.77.0.1',
      staticRoutes: [
        { Destination: '10.99.0.0/16', RouteType: 0, NextHop: '10.77.0.254' },
        { Destination: '10.98.0.0/16', RouteType: 1 },
      ],
    });
  });

  it('a default route in option 121 wins over the router option; no router and no default: no gateway', () => {
    const viaClassless = lease({
      routers: ['10.77.0.1'],
      classlessRoutes: [{ destination: '0.0.0.0/0', gateway: '10.77.0.9' }],
    });
    expect(joinRoutes(viaClassless)).toEqual({ gateway: '10.77.0.9', staticRoutes: [] });
    expect(joinRoutes(lease({}))).toEqual({ staticRoutes: [] });
  });
});
