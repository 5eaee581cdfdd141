import type { FastifyPluginAsync } from 'fastify';
import { VERSION } from '../version';

export const activateRoutes: FastifyPluginAsync = async (app) => {
  app.post('/Plugin.Activate', async () => ({ Implements: ['NetworkDriver', 'IpamDriver'] }));
  // Not Docker's: the operator's CLI (doctor) asks which version answers on the socket.
  app.post('/Tsmacvlan.Version', async () => ({ Version: VERSION }));
};
