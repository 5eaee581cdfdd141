// /IpamDriver.*: parse and validate what Docker sends, hand it to the IPAM service, answer in Docker's shape.
import type { FastifyPluginAsync } from 'fastify';
import { GLOBAL_ADDRESS_SPACE, LOCAL_ADDRESS_SPACE, type IpamService } from '../ipam/service';
import { body } from './schemas';

const POOL_ID = { type: 'string', minLength: 1, maxLength: 200 } as const;
const ADDRESS = { type: 'string', maxLength: 64 } as const;
const CIDR = { type: 'string', maxLength: 64 } as const;

interface RequestPoolBody {
  AddressSpace?: string;
  Pool?: string;
  SubPool?: string;
  Options?: Record<string, string> | null;
  V6?: boolean;
}

interface RequestAddressBody {
  PoolID: string;
  Address?: string;
  Options?: Record<string, unknown> | null;
}

export const ipamRoutes: FastifyPluginAsync<{ ipam: IpamService }> = async (app, { ipam }) => {
  app.post('/IpamDriver.GetCapabilities', async () => ({ RequiresMACAddress: false, RequiresRequestReplay: false }));

  app.post('/IpamDriver.GetDefaultAddressSpaces', async () => ({
    LocalDefaultAddressSpace: LOCAL_ADDRESS_SPACE,
    GlobalDefaultAddressSpace: GLOBAL_ADDRESS_SPACE,
  }));

  app.post<{ Body: RequestPoolBody }>(
    '/IpamDriver.RequestPool',
    {
      schema: body(
        {
          AddressSpace: { type: 'string', maxLength: 64 },
          Pool: CIDR,
          SubPool: CIDR,
          // --ipam-opt: strings only.
          Options: {
            type: ['object', 'null'],
            additionalProperties: { type: 'string', maxLength: 1024 },
            maxProperties: 64,
          },
          V6: { type: 'boolean' },
        },
        [],
      ),
    },
    async (request) => {
      const { Pool, SubPool, Options, V6 } = request.body;
      const answer = await ipam.requestPool({
        pool: Pool ?? '',
        ...(SubPool && { subPool: SubPool }),
        options: Options ?? null,
        v6: V6 === true,
      });
      return { PoolID: answer.poolId, Pool: answer.pool, Data: {} };
    },
  );

  app.post<{ Body: { PoolID: string } }>(
    '/IpamDriver.ReleasePool',
    { schema: body({ PoolID: POOL_ID }, ['PoolID']) },
    async (request) => {
      await ipam.releasePool(request.body.PoolID);
      return {};
    },
  );

  app.post<{ Body: RequestAddressBody }>(
    '/IpamDriver.RequestAddress',
    { schema: body({ PoolID: POOL_ID, Address: ADDRESS, Options: { type: ['object', 'null'] } }, ['PoolID']) },
    async (request) => {
      const { PoolID, Address, Options } = request.body;
      const address = await ipam.requestAddress(PoolID, Address, Options);
      return { Address: address, Data: {} };
    },
  );

  app.post<{ Body: { PoolID: string; Address: string } }>(
    '/IpamDriver.ReleaseAddress',
    { schema: body({ PoolID: POOL_ID, Address: { ...ADDRESS, minLength: 1 } }, ['PoolID', 'Address']) },
    async (request) => {
      await ipam.releaseAddress(request.body.PoolID, request.body.Address);
      return {};
    },
  );
};
