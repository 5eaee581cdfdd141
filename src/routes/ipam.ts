// STUB: replaced by the IPAM implementation.
import type { FastifyPluginAsync } from 'fastify';
import type { IpamService } from '../ipam/service';
export const ipamRoutes: FastifyPluginAsync<{ ipam: IpamService }> = async (app) => {
  app.post('/IpamDriver.GetCapabilities', async () => ({ RequiresMACAddress: false, RequiresRequestReplay: false }));
};
