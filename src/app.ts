import Fastify, { LogController, type FastifyReply, type FastifyRequest, type RouteGenericInterface } from 'fastify';
import type { Http2SecureServer } from 'node:http2';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { DestinationStream } from 'pino';
import { compileTrust } from './address.js';
import { SECURE_CONTEXT_OPTIONS } from './certificates.js';
import type { Config } from './config.js';
import { ApiError, MAX_HEADER_BYTES } from './errors.js';
import { guardConnections } from './connection-guards.js';
import { watchEventLoop } from './overload.js';
import { clientErrorHandler, createErrorHandler, sendError } from './error-handler.js';
import { Lobby, type Ticket } from './lobby.js';
import { Matchmaker } from './matchmaker.js';
import type { Metrics } from './metrics.js';
import { acceptProxyProtocol } from './proxy-protocol.js';
import { registerHealthRoute } from './routes/health.js';
import { registerMatchRoutes } from './routes/match.js';
import { securityHeaders } from './security-headers.js';

export interface TlsMaterial {
  readonly key: string | Buffer;
  readonly cert: string | Buffer;
}

export interface AppOptions {
  readonly tls: TlsMaterial;
  /** Where log lines go; standard output when absent. */
  readonly logStream?: DestinationStream;
  /** How often the event-loop delay is sampled (default 1000 ms); tests sample faster. */
  readonly pressureSampleMs?: number;
  /** Where to count requests, outcomes and connections; nothing is counted without it. */
  readonly metrics?: Metrics;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The waiting room, for health reporting and for tests that inspect live state. */
    readonly lobby: Lobby;
  }
}

function createInstance(config: Config, options: AppOptions, security: Readonly<Record<string, string>>) {
  return Fastify({
    http2: true,
    https: {
      allowHTTP1: true,
      key: options.tls.key,
      cert: options.tls.cert,
      ...SECURE_CONTEXT_OPTIONS,
      handshakeTimeout: config.idleTimeoutMs,
      // Each stream can be a waiter: bound what one connection can hold (Node's default is 2^32-1).
      settings: { maxConcurrentStreams: config.maxStreamsPerConnection, maxHeaderListSize: MAX_HEADER_BYTES },
    },
    logger: {
      level: config.logLevel,
      ...(options.logStream === undefined ? {} : { stream: options.logStream }),
    },
    // Per-request lines would double the cost of a pairing; pairings are logged on their own.
    logController: new LogController({ disableRequestLogging: true }),
    // No child logger per request (a pino child each time is measurable in the benchmark): the few
    // request-level lines (pairings, internal errors) name what they are about themselves.
    childLoggerFactory: (logger) => logger,
    // X-Forwarded-For is read by the match route itself (src/address.ts), only valid addresses.
    trustProxy: false,
    // Waiters are answered in preClose; requests arriving after that get our own 503.
    return503OnClosing: false,
    // Needed for HTTP/2 sessions on Node 20: server.close() does not end them by itself.
    forceCloseConnections: true,
    // An HTTP/2 session is never idle-closed while a long-poll on it can still be waiting.
    http2SessionTimeout: Math.max(72_000, config.matchTimeoutMs + 10_000),
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
    clientErrorHandler,
    // A URL Fastify cannot decode is answered before routing, so before the onRequest hooks.
    frameworkErrors: (error, _request, reply) => {
      void reply.headers(security);
      sendError(reply, new ApiError('invalid_url', [error.message.replace(/ is not a valid url component$/, '')]));
    },
  }).withTypeProvider<TypeBoxTypeProvider>();
}

export type App = ReturnType<typeof createInstance>;
/** Request and reply of any route, whatever its schema. */
export type AnyRequest = FastifyRequest<RouteGenericInterface, Http2SecureServer>;
export type AnyReply = FastifyReply<RouteGenericInterface, Http2SecureServer>;

/** The server, ready to listen but not listening: only main.ts binds ports and handles signals. */
export function buildApp(config: Config, options: AppOptions): App {
  const security = securityHeaders();
  const app = createInstance(config, options, security);
  const guards = guardConnections(app.server, config, app.log);
  if (config.proxyProtocol) {
    const trusted = compileTrust(config.trustProxy);
    acceptProxyProtocol(app.server, {
      trusted: (address) => trusted(address, 0),
      timeoutMs: config.idleTimeoutMs,
      log: app.log,
    });
  }
  const { metrics } = options;
  const lobby = new Lobby(new Matchmaker<Ticket>(), config, metrics);
  app.decorate('lobby', lobby);
  if (metrics !== undefined) {
    metrics.watchConnections(app.server);
    app.addHook('onResponse', (_request, reply, done) => {
      metrics.response(reply.statusCode);
      done();
    });
  }

  app.addHook('onRequest', (request, reply, done) => {
    void reply.headers(security);
    // HTTP/1.1 headers are bounded by Node's parser (MAX_HEADER_BYTES); HTTP/2's advertised limit
    // binds only once the client has acknowledged it, so a first flight of requests is checked here.
    const raw = request.raw;
    if (raw.httpVersionMajor === 2 && headerListBytes(raw.rawHeaders) > MAX_HEADER_BYTES) done(new ApiError('headers_too_large'));
    else done();
  });
  // Refuses new requests (503 overloaded, through the error handler) while the event loop lags;
  // requests already waiting keep their place and are answered as usual.
  if (config.maxEventLoopDelayMs > 0) {
    const loop = watchEventLoop(config.maxEventLoopDelayMs, options.pressureSampleMs ?? 1000);
    app.addHook('onRequest', (_request, _reply, done) => done(loop.overloaded ? new ApiError('overloaded') : undefined));
    app.addHook('onClose', (_instance, done) => {
      loop.stop();
      done();
    });
  }
  // Fastify parses text/plain bodies too; pairup takes JSON only (415 for anything else).
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(createErrorHandler({ maxTimeoutS: config.matchTimeoutMs / 1000 }));
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?', 1)[0] ?? '/';
    sendError(reply, new ApiError('not_found', [request.method, path.slice(0, 256)]));
  });

  const matchRoutes = registerMatchRoutes(app, { lobby, ...config });
  registerHealthRoute(app, lobby);
  methodNotAllowed(app, '/', ['GET', 'POST']);
  methodNotAllowed(app, '/healthz', ['GET', 'HEAD']);

  // fastify.close() waits for in-flight requests, and a long-poll would hold it for its whole
  // timeout: answer every waiter now, and let those answers reach the wire before connections close.
  app.addHook('preClose', async () => {
    const answered = lobby.close();
    app.log.info({ waiters: answered }, 'shutting down: answered every waiter');
    await matchRoutes.shutdownAnswers();
    guards.endUnfinished();
  });
  return app;
}

/** An HTTP/2 header list's size as SETTINGS_MAX_HEADER_LIST_SIZE counts it: each name and value, plus 32. */
function headerListBytes(rawHeaders: readonly string[]): number {
  let bytes = 0;
  for (const field of rawHeaders) bytes += field.length + 16;
  return bytes;
}

/** 405 with an Allow header for every other method on a known path. */
function methodNotAllowed(app: App, url: string, allowed: readonly string[]): void {
  const allow = allowed.join(', ');
  const others = app.supportedMethods.filter((method) => !allowed.includes(method));
  app.route({
    method: others,
    url,
    handler: (request, reply) => {
      sendError(reply.header('allow', allow), new ApiError('method_not_allowed', [request.method, url, allow]));
    },
  });
}
