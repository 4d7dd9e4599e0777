import cors, { type FastifyCorsOptions } from '@fastify/cors';
import Fastify, { LogController } from 'fastify';
import fastifyPlugin from 'fastify-plugin';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { DestinationStream } from 'pino';
import type { Config } from '../config.js';
import type { Lobby } from '../core/lobby.js';
import { RelayHub } from '../core/relay.js';
import { compileTrust } from '../net/address.js';
import { SECURE_CONTEXT_OPTIONS } from '../net/certificates.js';
import { guardConnections } from '../net/connection-guards.js';
import { acceptProxyProtocol } from '../net/proxy-protocol.js';
import type { Metrics } from '../ops/metrics.js';
import { watchEventLoop } from '../ops/overload.js';
import { MAX_HEADER_BYTES } from '../protocol/index.js';
import { ApiError } from './api-error.js';
import { clientErrorHandler, createErrorHandler, sendError } from './error-handler.js';
import { wsRoutes } from './routes/ws.js';
import { clientBundleRoutes } from './routes/client-bundle.js';
import { demoRoutes } from './routes/demo.js';
import { healthRoutes } from './routes/health.js';
import { matchRoutes } from './routes/match.js';
import { MemoryLedger } from '../queue/memory-ledger.js';
import { MemoryCounter } from '../queue/memory-counter.js';
import type { WindowCounter } from '../queue/counter-seam.js';
import type { AppKeys } from '../net/app-keys.js';
import { Access } from './access.js';
import type { OutcomeLedger } from '../queue/ledger-seam.js';
import { iceServersOf, type IceSettings } from './ice-servers.js';
import { outcomeRecorder } from './outcomes.js';
import { outcomeRoutes } from './routes/outcome.js';
import { securityHeaders } from './security-headers.js';
import type { App } from './types.js';

export interface TlsMaterial {
  readonly key: string | Buffer;
  readonly cert: string | Buffer;
}

export interface AppOptions {
  /** The waiting room, over whichever queue backend main.ts chose. */
  readonly lobby: Lobby;
  readonly tls: TlsMaterial;
  /** Where log lines go; standard output when absent. */
  readonly logStream?: DestinationStream;
  /** How often the event-loop delay is sampled (default 1000 ms); tests sample faster. */
  readonly pressureSampleMs?: number;
  /** Where to count requests, outcomes and connections; nothing is counted without it. */
  readonly metrics?: Metrics;
  /** Where the built demo page is; dist/demo by default. */
  readonly demoDir?: URL;
  /** Where the built browser client (pairup.js and its map) is; dist/browser by default. */
  readonly clientDir?: URL;
  /** The WebSocket relay (with a shared backend, linked to the other processes); one of this process's own by default. */
  readonly relay?: RelayHub;
  /** The STUN responder's port while it runs (for the matches' iceServers); none by default. */
  readonly stunPort?: () => number | undefined;
  /** The TURN secrets when main.ts read them from TURN_SECRET_FILE; else the config's TURN_SECRET. */
  readonly turnSecrets?: readonly string[];
  /** Which sides reported their connection (shared by processes with a shared backend); this process's own by default. */
  readonly ledger?: OutcomeLedger;
  /** App keys (APP_KEYS_FILE, reloaded by main.ts); none: the server is open to every client. */
  readonly appKeys?: AppKeys;
  /** Where apps' pairings per minute are counted (shared by processes with a shared backend); this process's own by default. */
  readonly counter?: WindowCounter;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The waiting room, for health reporting and for tests that inspect live state. */
    readonly lobby: Lobby;
  }
}

function createInstance(config: Config, options: AppOptions, security: Readonly<Record<string, string>>): App {
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
    // X-Forwarded-For is read by the match route itself (src/net/address.ts), only valid addresses.
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

export type { App } from './types.js';

/** The server, ready to listen but not listening: only main.ts binds ports and handles signals. */
/** TURN as configured, signing with the first secret; undefined when TURN_URLS is empty. */
function turnSettings(config: Config, options: AppOptions): IceSettings['turn'] {
  if (config.turnUrls.length === 0) return undefined;
  const secret = (options.turnSecrets ?? config.turnSecrets)?.[0];
  if (secret === undefined) throw new Error('TURN_URLS is set but no TURN secret was given to buildApp');
  return { urls: config.turnUrls, secret, ttlS: config.turnTtlS };
}

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
  // Requests whose body never came would hold the close until their deadline: nobody waits on them.
  app.addHook('preClose', (done) => {
    guards.endUnfinished();
    done();
  });
  const { metrics, lobby } = options;
  app.decorate('lobby', lobby);
  if (metrics !== undefined) {
    metrics.watchConnections(app.server);
    app.addHook('onResponse', (_request, reply, done) => {
      metrics.response(reply.statusCode);
      done();
    });
  }

  // One hook for everything every request goes through first.
  // - The overload check refuses new requests (503 overloaded, through the error handler) while the
  //   event loop lags; requests already waiting keep their place and are answered as usual.
  // - HTTP/1.1 headers are bounded by Node's parser (MAX_HEADER_BYTES); HTTP/2's advertised limit
  //   binds only once the client has acknowledged it, so a first flight of requests is checked here.
  const loop = config.maxEventLoopDelayMs > 0 ? watchEventLoop(config.maxEventLoopDelayMs, options.pressureSampleMs ?? 1000) : undefined;
  // CORS first, so that every answer carries its headers, this hook's own refusals included.
  const access = options.appKeys === undefined ? undefined : new Access(options.appKeys, options.counter ?? new MemoryCounter());
  void app.register(cors, corsOptions(config.corsOrigins, access !== undefined));
  void app.register(
    fastifyPlugin((instance: App, _options: object, done: (error?: Error) => void) => {
      instance.addHook('onRequest', (request, reply, next) => {
        void reply.headers(security);
        const raw = request.raw;
        if (raw.httpVersionMajor === 2 && headerListBytes(raw.rawHeaders) > MAX_HEADER_BYTES) next(new ApiError('headers_too_large'));
        else if (loop?.overloaded === true) next(new ApiError('overloaded'));
        else next();
      });
      done();
    }),
  );
  if (loop !== undefined) {
    app.addHook('onClose', (_instance, done) => {
      loop.stop();
      done();
    });
  }
  // Fastify parses text/plain bodies too; pairup takes JSON only (415 for anything else).
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(createErrorHandler({ maxTimeoutS: config.matchTimeoutMs / 1000, maxGroupSize: config.maxGroupSize }));
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?', 1)[0] ?? '/';
    sendError(reply, new ApiError('not_found', [request.method, path.slice(0, 256)]));
  });

  const iceServers = iceServersOf({ publicHost: config.publicHost, stunPort: options.stunPort ?? (() => undefined), turn: turnSettings(config, options) });
  // Each route group is a plugin owning its routes, its 405s and its shutdown.
  const recordOutcome = outcomeRecorder(options.ledger ?? new MemoryLedger(), metrics);
  void app.register(matchRoutes, { lobby, iceServers, access, ...config });
  void app.register(healthRoutes, { lobby });
  void app.register(outcomeRoutes, { lobby, recordOutcome, access });
  void app.register(wsRoutes, { lobby, iceServers, access, recordOutcome, relay: options.relay ?? new RelayHub(lobby.owner), ...config });
  void app.register(clientBundleRoutes, { dir: options.clientDir ?? CLIENT_DIR });
  if (config.demo) void app.register(demoRoutes, { dir: options.demoDir ?? DEMO_DIR });
  return app;
}

/** dist/demo and dist/browser, from src/http or dist/http alike. */
const DEMO_DIR = new URL('../../dist/demo/', import.meta.url);
const CLIENT_DIR = new URL('../../dist/browser/', import.meta.url);

/**
 * CORS for browsers on other origins: `*` (the default: pairup uses no cookies or credentials, so any
 * page may call it), a list of origins, or off. Preflights (any OPTIONS) are answered 204 here.
 */
function corsOptions(origins: Config['corsOrigins'], keys: boolean): FastifyCorsOptions {
  return {
    origin: origins === 'off' ? false : origins === '*' ? '*' : [...origins],
    methods: ['GET', 'POST'],
    // With app keys a page sends its key as a bearer token.
    allowedHeaders: keys ? ['content-type', 'accept', 'authorization'] : ['content-type', 'accept'],
    exposedHeaders: ['retry-after'],
    maxAge: 600,
    strictPreflight: false,
  };
}

/**
 * An HTTP/2 header list's size as SETTINGS_MAX_HEADER_LIST_SIZE counts it: each name and value, plus
 * 32 per field (counted here as 16 for each of the name and the value that `rawHeaders` alternates).
 */
function headerListBytes(rawHeaders: readonly string[]): number {
  let bytes = 0;
  for (const field of rawHeaders) bytes += field.length + 16;
  return bytes;
}
