/**
 * The WebSocket protocol on `GET /ws`: JSON text frames. A client joins a pool or a code, waits, is
 * matched, and then exchanges signals with its partner through the server until either leaves.
 * Shared by the server and every client; no Node imports.
 *
 *   client → server   {"type":"join","pool":"chess"} | {"type":"join","code":"…"}, optional "meta", "timeout" (seconds),
 *                     "size" and "min" (a group of more than two, as over HTTP),
 *                     "punch": {"mapping":"ip:port","nat":"independent"|"dependent"|"unknown"} (src/protocol/punch.ts; pairs only)
 *                     {"type":"signal","data":ANY}    after "matched": relayed to the partner, in order
 *                     {"type":"signal","to":I,"data":ANY}   in a group: to member I (required there, refused in a pair)
 *                     {"type":"leave"}                 ends the socket (the partner is told "peer_left")
 *                     {"type":"connected","via":"direct"|"relay","ms":N} | {"type":"failed"}
 *                                                      after "matched": how the connection to the partner went
 *                                                      (in a group, with "to":I: the link to member I)
 *                     {"type":"punch_again"}           after a "punch": another attempt, timed afresh (3 in all)
 *   server → client   {"type":"queued"}                it waits
 *                     {"type":"matched", …}            the fields of POST /'s answer (a pair's or a group's)
 *                     {"type":"signal","data":ANY}    from the partner
 *                     {"type":"signal","from":I,"data":ANY}   in a group: from member I
 *                     {"type":"punch", …}              when to send, to where, how (a join with "punch" only)
 *                     {"type":"peer_left"}             once; the socket then closes (4002)
 *                     {"type":"peer_left","member":I}  in a group: member I left; after the last other
 *                                                      member, the socket closes (4002)
 *                     {"type":"error","error":CODE,"message":…}   then the socket closes
 */
import { errorMessage, type ErrorCode } from './errors.js';
import { CONNECT_MAX_MS, isConnectMs } from './outcome.js';
import { joinProblem } from './join.js';
import { punchProblem, type NatKind, type PunchMessage, type PunchRequest } from './punch.js';
import type { GroupMatch, Match } from './schemas.js';

export const WS_PATH = '/ws';

/** Close codes the server uses (1000–1015 are the standard ones; 4000–4999 pairup's own). */
export const CLOSE_CODES = Object.freeze({
  /** The client left (`leave`). */
  normal: 1000,
  /** The server is shutting down. */
  going_away: 1001,
  /** A message over the size limit. */
  message_too_big: 1009,
  /** A bug (the error message says `internal_error`). */
  server_error: 1011,
  /** server_full, overloaded, backend_unavailable: try again after a second. */
  try_again_later: 1013,
  /** A message that is not JSON, has an unknown type, comes at the wrong time, or has bad fields. */
  protocol_error: 4000,
  /** Nobody came within the wait's timeout (error `timeout`). */
  wait_timed_out: 4001,
  /** The partner left; `peer_left` was sent just before. */
  partner_left: 4002,
  /** RELAY_TTL_MS passed since the match. */
  relay_over: 4003,
  /** More than WS_MAX_MESSAGES_PER_S messages a second (bursts of twice as many pass). */
  too_many_messages: 4004,
  /** The join was refused: code_used, code_taken, too_many_waiting_from_ip, too_many_relays_from_ip (the error says which). */
  refused: 4005,
  /** The client did not read what the server sent (more than WS_MAX_BUFFERED_BYTES waiting to go out). */
  not_reading: 4006,
  /** No signal either way for RELAY_IDLE_MS. */
  relay_idle: 4007,
  /** The app key was missing or unknown, or the page's origin is not one its key allows (the error says which). */
  unauthorized: 4008,
});
export type CloseName = keyof typeof CLOSE_CODES;

export interface JoinMessage {
  readonly type: 'join';
  readonly pool?: string;
  readonly code?: string;
  readonly meta?: Record<string, unknown>;
  /** Seconds. */
  readonly timeout?: number;
  /** This client will punch a UDP path: the server times it (src/protocol/punch.ts). A pair's alone. */
  readonly punch?: PunchRequest;
  /** Members of the group asked for (more than two; a pair leaves it out), and the fewest it may form with. */
  readonly size?: number;
  readonly min?: number;
}
export interface SignalMessage {
  readonly type: 'signal';
  readonly data: unknown;
  /** In a group: the index of the member it is for. */
  readonly to?: number;
}
export interface LeaveMessage {
  readonly type: 'leave';
}
/** How this side's connection to its partner went (counted once per side of a match). */
export interface ConnectedMessage {
  readonly type: 'connected';
  readonly via: 'direct' | 'relay';
  /** From the match to the connection. */
  readonly ms: number;
  /** In a group: the index of the member this link is to. */
  readonly to?: number;
}
export interface FailedMessage {
  readonly type: 'failed';
  readonly to?: number;
}
/** After a `punch`: another attempt (at most MAX_PUNCH_ATTEMPTS in all), timed afresh for both sides. */
export interface PunchAgainMessage {
  readonly type: 'punch_again';
}
export type ClientMessage = JoinMessage | SignalMessage | LeaveMessage | ConnectedMessage | FailedMessage | PunchAgainMessage;

export type ServerMessage =
  | { readonly type: 'queued' }
  | ({ readonly type: 'matched' } & Match)
  | ({ readonly type: 'matched' } & GroupMatch)
  | { readonly type: 'signal'; readonly data: unknown; readonly from?: number }
  | PunchMessage
  | { readonly type: 'peer_left'; readonly member?: number }
  | { readonly type: 'error'; readonly error: string; readonly message: string; readonly field?: string };

/** A message the server refuses: the error to send before closing with `protocol_error`. */
export interface BadMessage {
  readonly error: ErrorCode;
  readonly message: string;
  readonly field?: string;
}

const FIELDS: Readonly<Record<ClientMessage['type'], readonly string[]>> = {
  join: ['type', 'pool', 'code', 'meta', 'timeout', 'punch', 'size', 'min'],
  signal: ['type', 'data', 'to'],
  leave: ['type'],
  connected: ['type', 'via', 'ms', 'to'],
  failed: ['type', 'to'],
  punch_again: ['type'],
};

function bad(error: ErrorCode, args: readonly unknown[] = [], field?: string): BadMessage {
  return { error, message: errorMessage(error, args), ...(field === undefined ? {} : { field }) };
}

/**
 * Reads one text frame from a client: the message, or what is wrong with it, with the same codes
 * (and limits) as `POST /` for a join's fields. `maxTimeoutS` is MATCH_TIMEOUT_MS in seconds;
 * `maxGroupSize` is MAX_GROUP_SIZE. Whether a signal's `to` names a member is the session's to say.
 */
export function parseClientMessage(text: string, maxTimeoutS: number, maxGroupSize = 2): ClientMessage | BadMessage {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return bad('invalid_message', [`not JSON (${(error as Error).message})`]);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return bad('invalid_message', ['not a JSON object']);
  const message = value as Record<string, unknown>;
  const type = message.type;
  if (typeof type !== 'string' || !Object.hasOwn(FIELDS, type)) {
    return bad('invalid_message', [`unknown type ${type === undefined ? 'none' : JSON.stringify(type)}; expected ${Object.keys(FIELDS).join(', ')}`], 'type');
  }
  const fields = FIELDS[type as ClientMessage['type']];
  const unknown = Object.keys(message).find((key) => !fields.includes(key));
  if (unknown !== undefined) return bad('invalid_message', [`${type} has unknown field ${JSON.stringify(unknown)}; allowed: ${fields.join(', ')}`], unknown);
  if (type === 'leave' || type === 'punch_again') return { type };
  const to = message.to;
  if (!(to === undefined || (typeof to === 'number' && Number.isSafeInteger(to) && to >= 0))) {
    // The value itself only when it is a number: anything else could be large, or nested deep.
    const got = typeof to === 'number' ? String(to) : to === null ? 'null' : Array.isArray(to) ? 'an array' : `a ${typeof to}`;
    return bad('invalid_message', [`${type}'s to must be a member's index, a whole number from 0; got ${got}`], 'to');
  }
  const addressed = to === undefined ? {} : { to };
  if (type === 'failed') return { type, ...addressed };
  if (type === 'connected') {
    const { via, ms } = message;
    if (via !== 'direct' && via !== 'relay') return bad('invalid_message', ['connected needs via: direct or relay'], 'via');
    if (!isConnectMs(ms)) return bad('invalid_message', [`connected needs ms: whole milliseconds from the match, 0 to ${CONNECT_MAX_MS}`], 'ms');
    return { type, via, ms, ...addressed };
  }
  if (type === 'signal') {
    if (!('data' in message)) return bad('invalid_message', ['signal needs data'], 'data');
    return { type, data: message.data, ...addressed };
  }
  const { pool, code, meta, timeout, punch, size, min } = message;
  const problem = joinProblem(message, maxTimeoutS, maxGroupSize) ?? (punch === undefined ? undefined : punchProblem(punch));
  if (problem !== undefined) return bad(problem.error, problem.args, problem.field);
  // `size` 2 (and `min` 2) is a pair, as without them.
  const group = size !== undefined && size !== 2;
  if (group && punch !== undefined) return bad('invalid_message', ['punch is for pairs: a join with size above 2 cannot punch'], 'punch');
  return {
    type: 'join',
    ...(pool === undefined ? {} : { pool: pool as string }),
    ...(code === undefined ? {} : { code: code as string }),
    ...(meta === undefined ? {} : { meta: meta as Record<string, unknown> }),
    ...(timeout === undefined ? {} : { timeout: timeout as number }),
    ...(punch === undefined ? {} : { punch: { mapping: (punch as PunchRequest).mapping, nat: (punch as { nat?: NatKind }).nat ?? 'unknown' } }),
    ...(group ? { size: size as number, ...(min === undefined ? {} : { min: min as number }) } : {}),
  };
}

export function isBadMessage(parsed: ClientMessage | BadMessage): parsed is BadMessage {
  return 'error' in parsed;
}
