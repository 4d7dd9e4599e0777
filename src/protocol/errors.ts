import { CODE_PATTERN, POOL_PATTERN } from './schemas.js';

/**
 * Every error the server answers, in one table: its code (the `error` field of the JSON body),
 * HTTP status, message (`%s` filled by the caller), and Retry-After in seconds where retrying helps.
 * README.md lists the same table; test/errors.test.ts keeps each key equal to its code.
 */
export interface ErrorDef {
  readonly code: string;
  readonly status: number;
  readonly message: string;
  readonly retryAfterS?: number;
}

function def<const C extends string>(code: C, status: number, message: string, retryAfterS?: number) {
  return Object.freeze({ code, status, message, ...(retryAfterS === undefined ? {} : { retryAfterS }) });
}

export const errors = Object.freeze({
  invalid_pool: def('invalid_pool', 400, `pool must match ${POOL_PATTERN}`),
  invalid_code: def('invalid_code', 400, `code must match ${CODE_PATTERN}`),
  pool_and_code: def('pool_and_code', 400, 'give either pool or code, not both'),
  invalid_timeout: def(
    'invalid_timeout',
    400,
    'timeout must be a decimal number of seconds greater than 0 and at most %s',
  ),
  invalid_meta: def('invalid_meta', 400, 'meta must be a JSON object'),
  invalid_size: def('invalid_size', 400, 'size must be a whole number from 2 to %s (MAX_GROUP_SIZE)'),
  invalid_min: def('invalid_min', 400, 'min must be a whole number from 2 to size (%s)'),
  meta_too_large: def('meta_too_large', 400, 'meta must be at most %s bytes serialised as JSON, got %s'),
  meta_too_deep: def('meta_too_deep', 400, 'meta may nest objects and arrays at most %s levels deep (itself included)'),
  invalid_body: def('invalid_body', 400, 'body must be a JSON object with optional pool or code, timeout, meta, size and min'),
  unknown_field: def('unknown_field', 400, 'body has unknown field %s; allowed: pool, code, timeout, meta, size, min'),
  unknown_parameter: def('unknown_parameter', 400, 'unknown query parameter %s; allowed: pool, code, timeout, size, min'),
  query_not_allowed: def('query_not_allowed', 400, 'POST %s takes its parameters in the JSON body, not the query string: got %s'),
  invalid_json: def('invalid_json', 400, 'body is not valid JSON: %s'),
  body_too_large: def('body_too_large', 400, 'body must be at most %s bytes'),
  invalid_request: def('invalid_request', 400, '%s'),
  invalid_url: def('invalid_url', 400, 'the URL is not valid: %s'),
  malformed_request: def('malformed_request', 400, 'malformed HTTP request (%s)'),
  invalid_outcome: def('invalid_outcome', 400, 'outcome report is not valid: %s'),
  invalid_message: def('invalid_message', 400, 'WebSocket message is not valid: %s'),
  unexpected_message: def('unexpected_message', 400, 'WebSocket message %s is not expected %s'),
  key_required: def('key_required', 401, 'this server takes requests with an app key: send Authorization: Bearer KEY, or ?key=KEY'),
  unknown_key: def('unknown_key', 401, 'this app key is not valid here'),
  bad_proof: def('bad_proof', 403, 'proof is not base64url(HMAC-SHA256(secret, matchId)) for this match'),
  origin_not_allowed: def('origin_not_allowed', 403, 'pages of origin %s may not use this server (%s)'),
  not_found: def('not_found', 404, 'no route %s %s; try GET / or POST /'),
  method_not_allowed: def('method_not_allowed', 405, 'method %s not allowed on %s; allowed: %s'),
  not_acceptable: def('not_acceptable', 406, 'cannot answer in any type the Accept header allows; offered: %s'),
  timeout: def('timeout', 408, 'timeout waiting for peer', 0),
  request_timeout: def('request_timeout', 408, 'the request was not received in time'),
  code_used: def('code_used', 409, 'this code has already been used by a pair or a group; choose a new one (codes stay used for CODE_TTL_MS)'),
  code_taken: def('code_taken', 409, 'this connection is already waiting with this code; the partner must come from another connection'),
  unsupported_media_type: def('unsupported_media_type', 415, 'Content-Type must be application/json, got %s'),
  upgrade_required: def('upgrade_required', 426, 'GET /ws is a WebSocket: send Connection: Upgrade and Upgrade: websocket over HTTP/1.1 (got Upgrade: %s)'),
  too_many_waiting_from_ip: def(
    'too_many_waiting_from_ip',
    429,
    'this address already has %s requests waiting (MAX_WAITING_PER_IP)',
    1,
  ),
  too_many_pipelined: def(
    'too_many_pipelined',
    429,
    'the answers pipelined behind this request filled its connection; send requests for a peer on a connection of their own, or wait for answers before sending more',
  ),
  too_many_punches: def('too_many_punches', 429, 'a match has at most %s punch attempts (the first included)'),
  too_many_messages: def('too_many_messages', 429, 'more than %s WebSocket messages a second (WS_MAX_MESSAGES_PER_S; bursts of twice as many pass)', 1),
  too_many_relays_from_ip: def(
    'too_many_relays_from_ip',
    429,
    'this address already has %s WebSocket clients waiting or relaying here (MAX_RELAYS_PER_IP)',
    1,
  ),
  app_over_quota: def('app_over_quota', 429, 'this app already has %s clients waiting (its maxWaiting in APP_KEYS_FILE)', 1),
  too_many_pairings: def('too_many_pairings', 429, 'this app has made its %s pairings of this minute (its pairingsPerMinute in APP_KEYS_FILE)', 60),
  headers_too_large: def('headers_too_large', 431, 'request headers are too large'),
  internal_error: def('internal_error', 500, 'internal server error'),
  server_full: def('server_full', 503, 'server has %s requests waiting (MAX_WAITING); try again shortly', 1),
  shutting_down: def('shutting_down', 503, 'server shutting down', 5),
  backend_unavailable: def('backend_unavailable', 503, 'the shared queue (Redis) cannot be reached; try again shortly', 1),
  overloaded: def('overloaded', 503, 'server overloaded (event loop delay over MAX_EVENT_LOOP_DELAY_MS); try again shortly', 1),
});

export type ErrorCode = keyof typeof errors;

/** An entry's message with its `%s` filled in order by `args`. */
export function errorMessage(code: ErrorCode, args: readonly unknown[] = []): string {
  let next = 0;
  return errors[code].message.replace(/%s/g, () => String(args[next++]));
}
