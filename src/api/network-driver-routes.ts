// /NetworkDriver.*: parse and validate what Docker sends, hand it to the driver, answer in Docker's shape.
import type { FastifyPluginAsync } from 'fastify';
import type { NetworkDriver } from '../driver/driver';
import { PluginError } from '../errors';
import { auxAddresses, ipData } from '../driver/network-options';
import { ID, OPTIONS, body } from './schemas';

const IPAM_DATA = {
  type: 'array',
  maxItems: 16,
  items: {
    type: 'object',
    properties: {
      AddressSpace: { type: 'string' },
      Pool: { type: 'string', maxLength: 64 },
      Gateway: { type: 'string', maxLength: 64 },
      AuxAddresses: { type: ['object', 'null'] },
    },
    required: ['Pool'],
  },
} as const;

interface CreateNetworkBody {
  NetworkID: string;
  Options?: Record<string, unknown> | null;
  IPv4Data?:
    { AddressSpace?: string; Pool: string; Gateway?: string; AuxAddresses?: Record<string, unknown> | null }[] | null;
  IPv6Data?: { AddressSpace?: string; Pool: string; Gateway?: string }[] | null;
}

interface EndpointBody {
  NetworkID: string;
  EndpointID: string;
  Interface?: { Address?: string; AddressIPv6?: string; MacAddress?: string } | null;
  /** Join: the container's network namespace file. */
  SandboxKey?: string;
}

export const networkDriverRoutes: FastifyPluginAsync<{ driver: NetworkDriver }> = async (app, { driver }) => {
  app.post('/NetworkDriver.GetCapabilities', async () => ({ Scope: 'local', ConnectivityScope: 'global' }));

  app.post<{ Body: CreateNetworkBody }>(
    '/NetworkDriver.CreateNetwork',
    {
      schema: body(
        {
          NetworkID: ID,
          Options: OPTIONS,
          IPv4Data: { ...IPAM_DATA, type: ['array', 'null'] },
          IPv6Data: { ...IPAM_DATA, type: ['array', 'null'] },
        },
        ['NetworkID'],
      ),
    },
    async (request) => {
      const { NetworkID, Options, IPv4Data, IPv6Data } = request.body;
      const generic = Options?.['com.docker.network.generic'] ?? {};
      if (typeof generic !== 'object' || generic === null || Array.isArray(generic)) {
        throw new PluginError('driver options (com.docker.network.generic) must be an object of strings');
      }
      const ipv4 = ipData(IPv4Data?.[0]);
      const ipv6 = ipData(IPv6Data?.[0]);
      await driver.createNetwork({
        networkId: NetworkID,
        generic: generic as Record<string, unknown>,
        internal: Options?.['com.docker.network.internal'] === true,
        reserved: auxAddresses(IPv4Data?.[0]),
        ...(ipv4 && { ipv4 }),
        ...(ipv6 && { ipv6 }),
      });
      return {};
    },
  );

  app.post<{ Body: { NetworkID: string } }>(
    '/NetworkDriver.DeleteNetwork',
    { schema: body({ NetworkID: ID }, ['NetworkID']) },
    async (request) => {
      await driver.deleteNetwork(request.body.NetworkID);
      return {};
    },
  );

  const endpointSchema = body(
    {
      NetworkID: ID,
      EndpointID: ID,
      Interface: {
        type: ['object', 'null'],
        properties: {
          Address: { type: 'string', maxLength: 64 },
          AddressIPv6: { type: 'string', maxLength: 64 },
          MacAddress: { type: 'string', pattern: '^$|^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$' },
        },
      },
      SandboxKey: { type: 'string', maxLength: 4096 },
      Options: OPTIONS,
    },
    ['NetworkID', 'EndpointID'],
  );

  app.post<{ Body: EndpointBody }>('/NetworkDriver.CreateEndpoint', { schema: endpointSchema }, async (request) => {
    const { NetworkID, EndpointID, Interface } = request.body;
    const filled = await driver.createEndpoint({
      networkId: NetworkID,
      endpointId: EndpointID,
      ...(Interface?.MacAddress && { mac: Interface.MacAddress.toLowerCase() }),
      ...(Interface?.Address && { ipv4: Interface.Address }),
      ...(Interface?.AddressIPv6 && { ipv6: Interface.AddressIPv6 }),
    });
    // Only fields Docker left empty: echoing one it set makes Docker roll the endpoint back.
    if (!filled.mac && !filled.ipv4 && !filled.ipv6) return {};
    return {
      Interface: {
        ...(filled.ipv4 && { Address: filled.ipv4 }),
        ...(filled.ipv6 && { AddressIPv6: filled.ipv6 }),
        ...(filled.mac && { MacAddress: filled.mac }),
      },
    };
  });

  app.post<{ Body: EndpointBody }>('/NetworkDriver.Join', { schema: endpointSchema }, async (request) => {
    const { NetworkID, EndpointID, SandboxKey } = request.body;
    const answer = await driver.join(NetworkID, EndpointID, SandboxKey);
    return {
      InterfaceName: { SrcName: answer.linkName, DstPrefix: 'eth' },
      ...(answer.gateway && { Gateway: answer.gateway }),
      ...(answer.gatewayIpv6 && { GatewayIPv6: answer.gatewayIpv6 }),
      StaticRoutes: answer.staticRoutes,
      // Without this Docker silently adds the container to docker_gwbridge.
      DisableGatewayService: !answer.gateway && !answer.gatewayIpv6,
    };
  });

  // Docker moves the link back to the host itself; DeleteEndpoint removes it.
  app.post('/NetworkDriver.Leave', { schema: endpointSchema }, async () => ({}));

  app.post<{ Body: EndpointBody }>('/NetworkDriver.DeleteEndpoint', { schema: endpointSchema }, async (request) => {
    await driver.deleteEndpoint(request.body.NetworkID, request.body.EndpointID);
    return {};
  });

  app.post('/NetworkDriver.EndpointOperInfo', { schema: endpointSchema }, async () => ({ Value: {} }));

  app.post<{ Body: { Options?: unknown } }>('/NetworkDriver.AllocateNetwork', async (request) => ({
    Options: request.body.Options ?? {},
  }));
  for (const method of [
    'FreeNetwork',
    'DiscoverNew',
    'DiscoverDelete',
    'ProgramExternalConnectivity',
    'RevokeExternalConnectivity',
  ]) {
    app.post(`/NetworkDriver.${method}`, async () => ({}));
  }
};
