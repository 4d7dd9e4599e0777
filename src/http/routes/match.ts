import { Type } from 'typebox';
import { groupRoom, type Outcome, type Room } from '../../core/types.js';
import type { AppKey } from '../../net/app-keys.js';
import { errors } from '../../protocol/errors.js';
import { joinProblem } from '../../protocol/join.js';
import { BackendUnavailableError } from '../../queue/seam.js';
import { ApiError } from '../api-error.js';
import { refusalError } from '../refusals.js';
import type { MatchRouteOptions } from '../route-options.js';
import { groupAnswer, groupText, matchAnswer } from '../match-answer.js';
import { matchRecord } from '../match-record.js';
import { clientReader } from '../join-request.js';
import { connectionNotRead, responseGone, wasLetGoUnread, watchResponse, type RawResponse } from '../connection.js';
import { sendError } from '../error-handler.js';
import { methodNotAllowed } from '../method-not-allowed.js';
import { answerFormat, OFFERED_TYPES, type AnswerFormat } from '../negotiate.js';
import { refuseOtherOrigins } from '../origin.js';
import type { AnyReply, AnyRequest, App } from '../types.js';
import {
  BODY_LIMIT_BYTES,
  CODE_PATTERN,
  DEFAULT_POOL,
  Match,
  MatchWithMeta,
  Meta,
  POOL_PATTERN,
  TIMEOUT_PATTERN,
} from '../../protocol/schemas.js';

const Pool = Type.String({ pattern: POOL_PATTERN });
const Code = Type.String({ pattern: CODE_PATTERN });

const QUERY_FIELDS = {
  pool: Type.Optional(Pool),
  code: Type.Optional(Code),
  timeout: Type.Optional(Type.String({ pattern: TIMEOUT_PATTERN })),
  // Any text here: protocol/join.ts says what is wrong with it, naming the field.
  size: Type.Optional(Type.String()),
  min: Type.Optional(Type.String()),
};
// A misspelt parameter (`?Pool=chess`) must not wait in the default pool with strangers.
const Query = Type.Object(QUERY_FIELDS, { additionalProperties: false });
/** With app keys, `?key=` too (curl, and pages that would rather not send a header). */
const QueryWithKey = Type.Object({ ...QUERY_FIELDS, key: Type.Optional(Type.String()) }, { additionalProperties: false });

const Body = Type.Object(
  {
    pool: Type.Optional(Pool),
    code: Type.Optional(Code),
    timeout: Type.Optional(Type.Number()),
    meta: Type.Optional(Meta),
    // Any JSON here (no coercion of "3" to 3): protocol/join.ts says what is wrong with it.
    size: Type.Optional(Type.Unknown()),
    min: Type.Optional(Type.Unknown()),
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

/**
 * `GET /` and `POST /`: wait for a partner in a pool, answer with its address. At shutdown it answers
 * every waiter itself (a long-poll would otherwise hold `fastify.close()` for its whole timeout).
 */
export function matchRoutes(app: App, options: MatchRouteOptions, done: (error?: Error) => void): void {
  const { lobby, matchTimeoutMs, maxGroupSize } = options;
  const clientOf = clientReader(options);
  const maxTimeoutS = matchTimeoutMs / 1000;
  const shutdownWrites: Promise<void>[] = [];
  // A page CORS_ORIGINS does not allow is refused before it joins the lobby; with `*` (the default)
  // no hook is added, so a request pays nothing for it.
  const { access } = options;
  const record = matchRecord(app.log, lobby.owner, access);
  // With app keys, each request names its app before anything else is read of it (its body included).
  const admit =
    access === undefined
      ? undefined
      : (request: AnyRequest, _reply: AnyReply, next: (error?: Error) => void) => {
          try {
            access.admit(request);
            next();
          } catch (error) {
            next(error as Error);
          }
        };
  const hooks = [...(options.corsOrigins === '*' ? [] : [refuseOtherOrigins(options.corsOrigins)]), ...(admit === undefined ? [] : [admit])];
  const origin = hooks.length === 0 ? {} : { onRequest: hooks };

  /** What the request asks for, once its fields pass the rules every transport shares (protocol/join.ts). */
  function wanted(fields: { pool?: string; code?: string; timeout?: number; meta?: Record<string, unknown>; size?: unknown; min?: unknown }, answerMeta: boolean): Wanted {
    const problem = joinProblem(fields, maxTimeoutS, maxGroupSize);
    if (problem !== undefined) throw new ApiError(problem.error, problem.args, problem.field, problem.error === 'invalid_timeout' ? { maxTimeoutS } : undefined);
    const { pool, code, timeout, meta } = fields;
    const room: Room = code === undefined ? { kind: 'pool', name: pool ?? DEFAULT_POOL } : { kind: 'code', name: code };
    return {
      room: groupRoom(room, fields.size as number | undefined, fields.min as number | undefined),
      timeoutMs: timeout === undefined ? matchTimeoutMs : Math.max(1, Math.round(timeout * 1000)),
      meta,
      answerMeta,
    };
  }

  /**
   * The whole life of one request: join the lobby, wait for the outcome, write this request's own
   * reply. Nothing else ever writes it, so a reply can neither be written twice nor after its
   * handler has finished.
   */
  async function findPeer(request: AnyRequest, reply: AnyReply, wanted: Wanted, format: AnswerFormat) {
    const app = access?.appOf(request);
    if (access === undefined || app === undefined) return answer(request, reply, wanted, format, undefined);
    const entered = access.enter(app);
    const release = entered instanceof Promise ? await entered : entered;
    try {
      return await answer(request, reply, { ...wanted, room: { ...wanted.room, app: app.app } }, format, app);
    } finally {
      release();
    }
  }

  async function answer(request: AnyRequest, reply: AnyReply, wanted: Wanted, format: AnswerFormat, app: AppKey | undefined) {
    const res = reply.raw;
    // A client that left while its body was read is not queued: nobody could be told of the match.
    if (responseGone(res)) return reply.hijack();
    // A group is recorded answered or not (its client may have left as the group was committed).
    const groupFormed = (outcome: Extract<Outcome, { kind: 'grouped' }>): void => record.group(wanted.room, outcome, app, request.log);
    const joined = lobby.join({
      room: wanted.room,
      lateGroup: groupFormed,
      ...clientOf(request),
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
        record.pair(wanted.room, joined.address, outcome, app, request.log);
        // Text answers end with a newline, so that a shell prompt after curl starts on a line of its own.
        if (format === 'text') return reply.type('text/plain; charset=utf-8').send(`${outcome.peer.address}\n`);
        return reply.send(matchAnswer(wanted.room, joined.address, outcome, options.iceServers(request.hostname, outcome.matchId, app?.turn), wanted.answerMeta));
      }
      case 'grouped': {
        groupFormed(outcome);
        if (format === 'text') return reply.type('text/plain; charset=utf-8').send(groupText(outcome));
        // Not the pairs' answer schema (whose serializer stays theirs alone): this answer's own fields.
        return reply
          .serializer(JSON.stringify)
          .type('application/json; charset=utf-8')
          .send(groupAnswer(wanted.room, joined.address, outcome, options.iceServers(request.hostname, outcome.matchId, app?.turn), wanted.answerMeta));
      }
      case 'timeout': {
        const entry = errors.timeout;
        void reply.header('retry-after', String(entry.retryAfterS));
        if (format === 'text') return reply.code(entry.status).type('text/plain; charset=utf-8').send(`${entry.message}\n`);
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
          .send(`${entry.message}\n`);
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
    ...origin,
    schema: { querystring: access === undefined ? Query : QueryWithKey, response: { 200: Match } },
    handler: (request, reply) => {
      const format = answerFormat(request.headers.accept);
      if (format === undefined) throw new ApiError('not_acceptable', [OFFERED_TYPES]);
      const { pool, code, timeout, size, min } = request.query;
      return findPeer(request, reply, wanted({ pool, code, timeout: timeout === undefined ? undefined : Number(timeout), size: whole(size), min: whole(min) }, false), format);
    },
  });

  app.route({
    method: 'POST',
    url: '/',
    bodyLimit: BODY_LIMIT_BYTES,
    ...origin,
    preValidation: (request, _reply, done) => {
      // `POST /?timeout=0.2` would otherwise wait the default time: say where parameters go.
      // With app keys, `?key=` is the one parameter POST / takes in its query (a key is not part of the ask).
      const names = Object.keys(request.query as object).filter((name) => access === undefined || name !== 'key');
      if (names.length > 0) return done(new ApiError('query_not_allowed', ['/', names.map((name) => JSON.stringify(name)).join(', ')]));
      // An empty POST (curl -X POST) asks with every default.
      const parsed = request as { body?: unknown };
      if (parsed.body === undefined) parsed.body = {};
      done();
    },
    schema: { body: Body, response: { 200: MatchWithMeta } },
    handler: (request, reply) => {
      return findPeer(request, reply, wanted(request.body, true), 'json');
    },
  });

  methodNotAllowed(app, '/', ['GET', 'POST']);

  // The lobby was closed first, by whoever made it (main.ts): every waiter has its `shutdown` outcome.
  // Let those answers reach the wire before connections close.
  app.addHook('preClose', async () => {
    // Handlers resume from their settled outcome in microtasks: all have written by the next turn.
    await new Promise(setImmediate);
    await Promise.all(shutdownWrites.splice(0));
  });
  done();
}

/** A query's whole number as a number; anything else as it came (the join's rules refuse it). */
function whole(text: string | undefined): number | string | undefined {
  return text !== undefined && /^[0-9]{1,6}$/.test(text) ? Number(text) : text;
}

/** Resolves when the response has been handed to the connection, or can no longer be. */
function written(res: RawResponse): Promise<void> {
  return new Promise((resolve) => {
    if (res.writableFinished || res.destroyed) return resolve();
    res.once('finish', () => resolve());
    res.once('close', () => resolve());
  });
}
