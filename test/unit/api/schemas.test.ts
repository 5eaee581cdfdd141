// The routes' schemas are valid JSON Schema: the server does not check them against the meta-schema at start
// (src/api/server.ts), so this does, and proves that requests are still validated with them.
import Ajv from 'ajv';
import pino from 'pino';
import { expect, it } from 'vitest';
import { buildServer, type Services } from '../../../src/api/server';

it('every route schema is valid against the meta-schema, and a request that breaks one is refused', async () => {
  const app = buildServer({} as Services, pino({ level: 'silent' }));
  const schemas: { url: string; schema: object }[] = [];
  app.addHook('onRoute', (route) => {
    if (route.schema?.body) schemas.push({ url: route.url, schema: route.schema.body as object });
  });
  await app.ready();
  try {
    expect(schemas.length).toBeGreaterThan(5);
    const ajv = new Ajv({ strict: true });
    for (const { url, schema } of schemas) {
      const valid = ajv.validateSchema(schema);
      expect({ url, errors: ajv.errors ?? null, valid }).toEqual({ url, errors: null, valid: true });
    }
    const bad = await app.inject({ method: 'POST', url: '/NetworkDriver.Leave', payload: { NetworkID: 'not valid!' } });
    expect(bad.statusCode).toBe(400);
    expect(JSON.parse(bad.body).Err).toMatch(/^invalid NetworkDriver.Leave request: /);
  } finally {
    await app.close();
  }
});
