import { Type } from 'typebox';
import type { Lobby } from '../../core/lobby.js';
import type { Refusal, Room } from '../../core/types.js';
import { clientAddressOf, formatAddress, limitKey, type ProxyTrust } from '../../net/address.js';
import { errors, type ErrorCode } from '../../protocol/errors.js';
import { pairingLog } from '../../ops/pairing-log.js';
import { BackendUnavailableError } from '../../queue/seam.js';
import { ApiError } from '../api-error.js';
import { matchAnswer } from '../match-answer.js';
import { connectionId, connectionNotRead, responseGone, wasLetGoUnread, watchResponse, type RawResponse } from '../connection.js';
import { sendError } from '../error-handler.js';
import { methodNotAllowed } from '../method-not-allowed.js';
import { answerFormat, OFFERED_TYPES, type AnswerFormat } from '../negotiate.js';
import type { AnyReply, AnyRequest, App } from '../types.js';
import {
  BODY_LIMIT_BYTES,
  CODE_PATTERN,
  DEFAULT_POOL,
  Match,
  MatchWithMeta,
  Meta,
  META_MAX_BYTES,
  POOL_PATTERN,
  TIMEOUT_PATTERN,
} from '../../protocol/schemas.js';

const Pool = Type.String({ pattern: POOL_PATTERN });
const Code = Type.String({ pattern: CODE_PATTERN });

const Query = Type.Object(
  {
    pool: Type.Optional(Pool),
    code: Type.Optional(Code),
    timeout: Type.Optional(Type.String({ pattern: TIMEOUT_PATTERN })),
  },
  // A misspelt parameter (`?Pool=chess`) must not wait in the default pool with strangers.
  { additionalProperties: false },
);

const Body = Type.Object(
  {
    pool: Type.Optional(Pool),
    code: Type.Optional(Code),
    timeout: Type.Optional(Type.Number()),
    meta: Type.Optional(Meta),
  },
  { additionalProperties: false },
);

interface Wanted {
  readonly room: Room;
  readonly timeoutMs: number;
  readonly meta: Record<string, unknown> | undefined;
  /** POST answers carry the partner's meta; GET answers do not. */
  readonly answerMeta: boolean;
}

const REFUSALS: Readonly<Record<Refusal, ErrorCode>> = {
  closing: 'shutting_down',
  full: 'server_full',
  ip_limit: 'too_many_waiting_from_ip',
  code_used: 'code_used',
  code_taken: 'code_taken',
};

/** The error a refused join is answered with, over HTTP and WebSocket alike. */
export function refusalError(refusal: Refusal, limits: Pick<MatchRouteOptions, 'maxWaiting' | 'maxWaitingPerIp'>): ApiError {
  const code = REFUSALS[refusal];
  const args = refusal === 'full' ? [limits.maxWaiting] : refusal === 'ip_limit' ? [limits.maxWaitingPerIp] : [];
  return new ApiError(code, args, refusal === 'code_used' || refusal === 'code_taken' ? 'code' : undefined);
}

export interface MatchRouteOptions {
  readonly lobby: Lobby;
  /** Proxies whose X-Forwarded-For is believed (TRUST_PROXY). */
  readonly trustProxy: ProxyTrust;
  /** With PROXY protocol the connection's address is already the client's: X-Forwarded-For is never read. */
  readonly proxyProtocol: boolean;
  /** IPv6 clients are counted for MAX_WAITING_PER_IP by their network of this many bits. */
  readonly ipv6PrefixBits: number;
  readonly matchTimeoutMs: number;
  readonly maxWaiting: number;
  readonly maxWaitingPerIp: number;
}

/**
 * `GET /` and `POST /`: wait for a partner in a pool, answer with its address. At shutdown it answers
 * every waiter itself (a long-poll would otherwise hold `fastify.close()` for its whole timeout).
 */
export function matchRoutes(app: App, options: MatchRouteOptions, done: (error?: Error) => void): void {
  const { lobby, matchTimeoutMs, ipv6PrefixBits } = options;
  const clientAddress = clientAddressOf(options.proxyProtocol ? false : options.trustProxy);
  const maxTimeoutS = matchTimeoutMs / 1000;
  const shutdownWrites: Promise<void>[] = [];
  const logPairing = pairingLog(app.log);

  function timeoutMs(seconds: number | undefined): number {
    if (seconds === undefined) return matchTimeoutMs;
    if (!(seconds > 0 && seconds <= maxTimeoutS)) throw new ApiError('invalid_timeout', [maxTimeoutS], 'timeout', { maxTimeoutS });
    return Math.max(1, Math.round(seconds * 1000));
  }

  function roomOf(pool: string | undefined, code: string | undefined): Room {
    if (code === undefined) return { kind: 'pool', name: pool ?? DEFAULT_POOL };
    if (pool !== undefined) throw new ApiError('pool_and_code', [], 'code');
    return { kind: 'code', name: code };
  }

  /**
   * The whole life of one request: join the lobby, wait for the outcome, write this request's own
   * reply. Nothing else ever writes it, so a reply can neither be written twice nor after its
   * handler has finished.
   */
  async function findPeer(request: AnyRequest, reply: AnyReply, wanted: Wanted, format: AnswerFormat) {
    const res = reply.raw;
    // A client that left while its body was read is not queued: nobody could be told of the match.
    if (responseGone(res)) return reply.hijack();
    const { ip, via } = clientAddress(request.socket.remoteAddress ?? '', request.headers['x-forwarded-for']);
    const joined = lobby.join({
      room: wanted.room,
      limitKey: limitKey(ip, ipv6PrefixBits),
      address: formatAddress(ip, request.socket.remotePort ?? 0),
      via,
      connection: connectionId(request.raw),
      meta: wanted.meta,
      timeoutMs: wanted.timeoutMs,
      // A connection Node no longer reads would not show its client leaving: a request on it does
      // not wait (nor is handed out), it is answered too_many_pipelined.
      isGone: () => responseGone(res) || connectionNotRead(res),
      watch: (onGone) => watchResponse(res, onGone),
    });
    // Paired or refused at once (the common case with the in-memory queue): answered in this turn.
    const outcome = joined.result ?? (await joined.outcome);
    switch (outcome.kind) {
      case 'refused':
        throw refusalError(outcome.refusal, options);
      case 'failed':
        throw outcome.error instanceof BackendUnavailableError ? new ApiError('backend_unavailable') : outcome.error;
      case 'matched': {
        const { peer } = outcome;
        if (!outcome.initiator) {
          logPairing({ room: wanted.room, matchId: outcome.matchId, waiter: peer.address, arrival: joined.address, across: peer.owner !== lobby.owner });
        }
        if (format === 'text') return reply.type('text/plain; charset=utf-8').send(peer.address);
        return reply.send(matchAnswer(wanted.room, joined.address, outcome, wanted.answerMeta));
      }
      case 'timeout': {
        const entry = errors.timeout;
        void reply.header('retry-after', String(entry.retryAfterS));
        if (format === 'text') return reply.code(entry.status).type('text/plain; charset=utf-8').send(entry.message);
        return reply
          .code(entry.status)
          .send({ error: entry.code, message: entry.message, waitedMs: Math.round(outcome.waitedMs) });
      }
      case 'shutdown': {
        const entry = errors.shutting_down;
        shutdownWrites.push(written(res));
        if (format === 'json') return sendError(reply, new ApiError('shutting_down'));
        return reply
          .code(entry.status)
          .header('retry-after', String(entry.retryAfterS))
          .type('text/plain; charset=utf-8')
          .send(entry.message);
      }
      case 'gone':
        // Its connection is not read (it is answered), or its client is gone: nobody to answer.
        if (wasLetGoUnread(res) && !responseGone(res)) throw new ApiError('too_many_pipelined');
        return reply.hijack();
    }
  }

  app.route({
    method: 'GET',
    url: '/',
    exposeHeadRoute: false,
    schema: { querystring: Query, response: { 200: Match } },
    handler: (request, reply) => {
      const format = answerFormat(request.headers.accept);
      if (format === undefined) throw new ApiError('not_acceptable', [OFFERED_TYPES]);
      const { pool, code, timeout } = request.query;
      const seconds = timeout === undefined ? undefined : Number(timeout);
      const wanted = { room: roomOf(pool, code), timeoutMs: timeoutMs(seconds), meta: undefined, answerMeta: false };
      return findPeer(request, reply, wanted, format);
    },
  });

  app.route({
    method: 'POST',
    url: '/',
    bodyLimit: BODY_LIMIT_BYTES,
    preValidation: (request, _reply, done) => {
      // `POST /?timeout=0.2` would otherwise wait the default time: say where parameters go.
      const names = Object.keys(request.query as object);
      if (names.length > 0) return done(new ApiError('query_not_allowed', [names.map((name) => JSON.stringify(name)).join(', ')]));
      // An empty POST (curl -X POST) asks with every default.
      const parsed = request as { body?: unknown };
      if (parsed.body === undefined) parsed.body = {};
      done();
    },
    schema: { body: Body, response: { 200: MatchWithMeta } },
    handler: (request, reply) => {
      const { pool, code, timeout, meta } = request.body;
      const room = roomOf(pool, code);
      if (meta !== undefined) {
        const bytes = Buffer.byteLength(JSON.stringify(meta));
        if (bytes > META_MAX_BYTES) throw new ApiError('meta_too_large', [META_MAX_BYTES, bytes], 'meta');
      }
      return findPeer(request, reply, { room, timeoutMs: timeoutMs(timeout), meta, answerMeta: true }, 'json');
    },
  });

  methodNotAllowed(app, '/', ['GET', 'POST']);

  // Answer every waiter now, and let those answers reach the wire before connections close.
  app.addHook('preClose', async () => {
    const answered = lobby.close();
    app.log.info({ waiters: answered }, 'shutting down: answered every waiter');
    // Handlers resume from their settled outcome in microtasks: all have written by the next turn.
    await new Promise(setImmediate);
    await Promise.all(shutdownWrites.splice(0));
  });
  done();
}

/** Resolves when the response has been handed to the connection, or can no longer be. */
function written(res: RawResponse): Promise<void> {
  return new Promise((resolve) => {
    if (res.writableFinished || res.destroyed) return resolve();
    res.once('finish', () => resolve());
    res.once('close', () => resolve());
  });
}
