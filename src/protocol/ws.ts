/**
 * The WebSocket protocol on `GET /ws`: JSON text frames. A client joins a pool or a code, waits, is
 * matched, and then exchanges signals with its partner through the server until either leaves.
 * Shared by the server and every client; no Node imports.
 *
 *   client → server   {"type":"join","pool":"chess"} | {"type":"join","code":"…"}, optional "meta", "timeout" (seconds)
 *                     {"type":"signal","data":ANY}    after "matched": relayed to the partner, in order
 *                     {"type":"leave"}                 ends the socket (the partner is told "peer_left")
 *   server → client   {"type":"queued"}                it waits
 *                     {"type":"matched", …}            the fields of POST /'s answer
 *                     {"type":"signal","data":ANY}    from the partner
 *                     {"type":"peer_left"}             once; the socket then closes (4002)
 *                     {"type":"error","error":CODE,"message":…}   then the socket closes
 */
import { errorMessage, type ErrorCode } from './errors.js';
import { CODE_PATTERN, META_MAX_BYTES, POOL_PATTERN, type Match } from './schemas.js';

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
  /** More than WS_MAX_MESSAGES_PER_S messages in a second. */
  too_many_messages: 4004,
  /** The join was refused: code_used, code_taken, too_many_waiting_from_ip (the error says which). */
  refused: 4005,
  /** The client did not read what the server sent (more than WS_MAX_BUFFERED_BYTES waiting to go out). */
  not_reading: 4006,
});
export type CloseName = keyof typeof CLOSE_CODES;

export interface JoinMessage {
  readonly type: 'join';
  readonly pool?: string;
  readonly code?: string;
  readonly meta?: Record<string, unknown>;
  /** Seconds. */
  readonly timeout?: number;
}
export interface SignalMessage {
  readonly type: 'signal';
  readonly data: unknown;
}
export interface LeaveMessage {
  readonly type: 'leave';
}
export type ClientMessage = JoinMessage | SignalMessage | LeaveMessage;

export type ServerMessage =
  | { readonly type: 'queued' }
  | ({ readonly type: 'matched' } & Match)
  | { readonly type: 'signal'; readonly data: unknown }
  | { readonly type: 'peer_left' }
  | { readonly type: 'error'; readonly error: string; readonly message: string; readonly field?: string };

/** A message the server refuses: the error to send before closing with `protocol_error`. */
export interface BadMessage {
  readonly error: ErrorCode;
  readonly message: string;
  readonly field?: string;
}

const POOL = new RegExp(POOL_PATTERN);
const CODE = new RegExp(CODE_PATTERN);
const FIELDS: Readonly<Record<ClientMessage['type'], readonly string[]>> = {
  join: ['type', 'pool', 'code', 'meta', 'timeout'],
  signal: ['type', 'data'],
  leave: ['type'],
};

function bad(error: ErrorCode, args: readonly unknown[] = [], field?: string): BadMessage {
  return { error, message: errorMessage(error, args), ...(field === undefined ? {} : { field }) };
}

/**
 * Reads one text frame from a client: the message, or what is wrong with it, with the same codes
 * (and limits) as `POST /` for a join's fields. `maxTimeoutS` is MATCH_TIMEOUT_MS in seconds.
 */
export function parseClientMessage(text: string, maxTimeoutS: number): ClientMessage | BadMessage {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return bad('invalid_message', [`not JSON (${(error as Error).message})`]);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return bad('invalid_message', ['not a JSON object']);
  const message = value as Record<string, unknown>;
  const type = message.type;
  if (type !== 'join' && type !== 'signal' && type !== 'leave') {
    return bad('invalid_message', [`unknown type ${type === undefined ? 'none' : JSON.stringify(type)}; expected join, signal or leave`], 'type');
  }
  const unknown = Object.keys(message).find((key) => !FIELDS[type].includes(key));
  if (unknown !== undefined) return bad('invalid_message', [`${type} has unknown field ${JSON.stringify(unknown)}; allowed: ${FIELDS[type].join(', ')}`], unknown);
  if (type === 'leave') return { type };
  if (type === 'signal') return 'data' in message ? { type, data: message.data } : bad('invalid_message', ['signal needs data'], 'data');
  const { pool, code, meta, timeout } = message;
  if (pool !== undefined && (typeof pool !== 'string' || !POOL.test(pool))) return bad('invalid_pool', [], 'pool');
  if (code !== undefined && (typeof code !== 'string' || !CODE.test(code))) return bad('invalid_code', [], 'code');
  if (pool !== undefined && code !== undefined) return bad('pool_and_code', [], 'code');
  if (timeout !== undefined && !(typeof timeout === 'number' && timeout > 0 && timeout <= maxTimeoutS)) {
    return bad('invalid_timeout', [maxTimeoutS], 'timeout');
  }
  if (meta !== undefined) {
    if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) return bad('invalid_meta', [], 'meta');
    const bytes = new TextEncoder().encode(JSON.stringify(meta)).length;
    if (bytes > META_MAX_BYTES) return bad('meta_too_large', [META_MAX_BYTES, bytes], 'meta');
  }
  return {
    type,
    ...(pool === undefined ? {} : { pool }),
    ...(code === undefined ? {} : { code }),
    ...(meta === undefined ? {} : { meta: meta as Record<string, unknown> }),
    ...(timeout === undefined ? {} : { timeout }),
  };
}

export function isBadMessage(parsed: ClientMessage | BadMessage): parsed is BadMessage {
  return 'error' in parsed;
}
