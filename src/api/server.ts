// The HTTP face of the plugin: Docker's wire conventions (no Content-Type, {"Err"} failures) and one log line per request.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { NetworkDriver } from '../driver/driver';
import { PluginError } from '../errors';
import type { IpamService } from '../ipam/service';
import { activateRoutes } from './activate-routes';
import { ipamRoutes } from './ipam-routes';
import { networkDriverRoutes } from './network-driver-routes';

/** Docker's bodies are small; anything near this is not Docker. */
export const BODY_LIMIT = 256 * 1024;

export interface Services {
  driver: NetworkDriver;
  ipam: IpamService;
}

/**
 * Told of every answer: Docker's call (the route, e.g. `NetworkDriver.Join`; `unknown` for a path the plugin does not
 * serve, so the values stay bounded), whether it succeeded, and how long it took from arrival to answer.
 */
export type RequestObserver = (method: string, ok: boolean, seconds: number) => void;

/**
 * `ready` holds every request until it settles: the plugin listens at once (Docker dials 500 ms after starting it) but
 * answers only once the kernel agrees with its state. `observe` (the metrics) is told of each answer.
 */
export function buildServer(
  services: Services,
  logger: Logger,
  ready: Promise<unknown> = Promise.resolve(),
  observe?: RequestObserver,
): FastifyInstance {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }), // our own one line per request: mapErrorsAndLog
    bodyLimit: BODY_LIMIT,
    // validateSchema: the routes' own schemas are not checked against JSON Schema's meta-schema at each start (compiling
    // it delays a restart's first answer): a unit test checks them instead (test/unit/api/schemas.test.ts).
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false, validateSchema: false } },
  });

  parseDockerBodies(app);
  app.addHook('onRequest', async () => {
    await ready;
  });

  closeConnectionsWhenClosing(app);
  refuseEmptyRetries(app);
  mapErrorsAndLog(app, observe);
  app.register(activateRoutes);
  app.register(networkDriverRoutes, { driver: services.driver });
  app.register(ipamRoutes, { ipam: services.ipam });
  return app;
}

/** Bodies as Docker sends them: JSON, or nothing. */
function parseDockerBodies(app: FastifyInstance): void {
  // Docker sends JSON without a Content-Type, and calls without arguments with an empty body.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    const text = (body as string).trim();
    if (text === '') return done(null, undefined); // as when no body came at all
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(
        Object.assign(new Error(`body is not valid JSON (${(err as Error).message})`), { statusCode: 400 }),
        undefined,
      );
    }
  });
}

interface RequestInFlight {
  method: string;
  since: number;
  socket: Socket;
}

/** What each app is answering now, kept by closeConnectionsWhenClosing. */
const inFlight = new WeakMap<FastifyInstance, Set<RequestInFlight>>();

/** The requests `app` is still answering, for a stop that does not finish: `/NetworkDriver.Join for 9.8 s`. */
export function requestsInFlight(app: FastifyInstance): string[] {
  const now = Date.now();
  return [...(inFlight.get(app) ?? [])].map(
    ({ method, since }) => `${method} for ${((now - since) / 1000).toFixed(1)} s`,
  );
}

/** Lets a stop wait only for the requests in flight. */
function closeConnectionsWhenClosing(app: FastifyInstance): void {
  // Docker keeps its connections open between requests (fastify keeps an idle one 72 s). Once the server is closing,
  // answers in flight close theirs, and every connection without a request in flight is closed at once, so a stop
  // takes as long as the slowest request. Node closes only connections that have carried a request; Docker's Go
  // client also keeps connections it dialed ahead and never used, which would hold the stop for a minute.
  let closing = false;
  const sockets = new Set<Socket>();
  const requests = new Set<RequestInFlight>();
  inFlight.set(app, requests);
  app.server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  app.server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const entry = { method: request.url ?? '', since: Date.now(), socket: request.socket };
    requests.add(entry);
    response.once('close', () => requests.delete(entry));
  });
  app.addHook('preClose', async () => {
    closing = true;
    const busy = new Set([...requests].map((r) => r.socket));
    for (const socket of sockets) if (!busy.has(socket)) socket.destroy();
  });
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });
}

/** Refuses the empty resend of a request cut short. */
function refuseEmptyRetries(app: FastifyInstance): void {
  // Docker 20.10 resends a request whose connection broke with an empty body: it cannot be carried out. Only the
  // calls without arguments (no body schema) come empty otherwise.
  app.addHook('preValidation', async (request) => {
    if (request.body !== undefined || !request.routeOptions.schema?.body) return;
    const method = request.url.replace(/^\//, '');
    throw Object.assign(
      new Error(
        `${method} arrived with an empty body. Docker sends that when it retries a request that was cut short (tsmacvlan ` +
          `restarted while answering it); the original request did not complete, and tsmacvlan undid its part at restart. Run the command again`,
      ),
      { statusCode: 400, emptyRetry: true },
    );
  });
}

/** The one error mapping (to Docker's `Err` and `Error`), and one log line (and observation) per request. */
function mapErrorsAndLog(app: FastifyInstance, observe: RequestObserver | undefined): void {
  // The failure message of a request, for its log line.
  const failures = new WeakMap<object, string>();

  app.addHook('onResponse', (request, reply, done) => {
    const body = request.body as Record<string, unknown> | undefined;
    request.log.info(
      {
        method: request.url,
        networkId: body?.NetworkID,
        endpointId: body?.EndpointID,
        poolId: body?.PoolID,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 1000) / 1000,
        error: failures.get(request),
      },
      'request',
    );
    observe?.(request.routeOptions.url?.slice(1) ?? 'unknown', reply.statusCode < 400, reply.elapsedTime / 1000);
    done();
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const method = request.url.replace(/^\//, '');
    let status = 500;
    let message: string;
    if (error instanceof PluginError) {
      message = error.message;
    } else if (error.validation) {
      status = 400;
      message = `invalid ${method} request: ${error.message.replace(/^body\//, '')}`;
    } else if ((error as { emptyRetry?: boolean }).emptyRetry) {
      status = 400;
      message = error.message;
    } else if (error.statusCode && error.statusCode < 500) {
      status = error.statusCode;
      message = `invalid ${method} request: ${error.message}`;
    } else {
      request.log.error({ err: error, method }, 'request failed');
      message = `${method} failed: ${error.message}`;
    }
    failures.set(request, message);
    void reply.code(status).send({ Err: message, Error: message });
  });

  app.setNotFoundHandler((request, reply) => {
    const message = `tsmacvlan does not implement ${request.method} ${request.url}`;
    void reply.code(404).send({ Err: message, Error: message });
  });
}
