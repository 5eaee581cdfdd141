import type { FastifyPluginAsync } from 'fastify';

export const activateRoutes: FastifyPluginAsync = async (app) => {
  app.post('/Plugin.Activate', async () => ({ Implements: ['NetworkDriver', 'IpamDriver'] }));
};
