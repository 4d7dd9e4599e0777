/**
 * The rules of a join's fields, once for every transport: `GET /` (query), `POST /` (JSON body) and
 * the WebSocket's `join` all ask here what is wrong, and answer with the same code, arguments and
 * field. (The HTTP routes' schemas check only the shape first: which fields, of which JSON type.)
 */
import type { ErrorCode } from './errors.js';
import { CODE_PATTERN, META_MAX_BYTES, META_MAX_DEPTH, nestsDeeperThan, POOL_PATTERN } from './schemas.js';

export interface JoinFields {
  readonly pool?: unknown;
  readonly code?: unknown;
  /** Seconds. */
  readonly timeout?: unknown;
  readonly meta?: unknown;
  /** Members of the group asked for, 2 (a pair, the default) to MAX_GROUP_SIZE. */
  readonly size?: unknown;
  /** Fewest members the group may form with after FILL_WAIT_MS (2 to size). */
  readonly min?: unknown;
}

/** What is wrong: the error table's code, its message's arguments, the field it is about. */
export interface JoinProblem {
  readonly error: ErrorCode;
  readonly args: readonly unknown[];
  readonly field: string;
}

const POOL = new RegExp(POOL_PATTERN);
const CODE = new RegExp(CODE_PATTERN);
const utf8 = new TextEncoder();

const isWhole = (value: unknown): value is number => typeof value === 'number' && Number.isInteger(value);

/**
 * The first thing wrong with a join's fields, or undefined. `maxTimeoutS` is MATCH_TIMEOUT_MS in
 * seconds; `maxGroupSize` is MAX_GROUP_SIZE (a transport that makes pairs alone checks no size).
 */
export function joinProblem(fields: JoinFields, maxTimeoutS: number, maxGroupSize = 2): JoinProblem | undefined {
  const { pool, code, timeout, meta, size, min } = fields;
  if (pool !== undefined && (typeof pool !== 'string' || !POOL.test(pool))) return { error: 'invalid_pool', args: [], field: 'pool' };
  if (code !== undefined && (typeof code !== 'string' || !CODE.test(code))) return { error: 'invalid_code', args: [], field: 'code' };
  if (pool !== undefined && code !== undefined) return { error: 'pool_and_code', args: [], field: 'code' };
  if (timeout !== undefined && !(typeof timeout === 'number' && timeout > 0 && timeout <= maxTimeoutS)) {
    return { error: 'invalid_timeout', args: [maxTimeoutS], field: 'timeout' };
  }
  if (size !== undefined && !(isWhole(size) && size >= 2 && size <= maxGroupSize)) return { error: 'invalid_size', args: [maxGroupSize], field: 'size' };
  if (min !== undefined) {
    const most = size ?? 2;
    if (!(isWhole(min) && min >= 2 && min <= most)) return { error: 'invalid_min', args: [most], field: 'min' };
  }
  if (meta !== undefined) {
    if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) return { error: 'invalid_meta', args: [], field: 'meta' };
    const bytes = utf8.encode(JSON.stringify(meta)).length;
    if (bytes > META_MAX_BYTES) return { error: 'meta_too_large', args: [META_MAX_BYTES, bytes], field: 'meta' };
    if (nestsDeeperThan(meta, META_MAX_DEPTH)) return { error: 'meta_too_deep', args: [META_MAX_DEPTH], field: 'meta' };
  }
  return undefined;
}
