/**
 * What a refused join is answered with, over HTTP and WebSocket alike: the error (one table,
 * src/protocol/errors.ts) and, for a socket, the close code that follows it.
 */
import type { Refusal } from '../core/types.js';
import type { ErrorCode } from '../protocol/errors.js';
import type { CloseName } from '../protocol/ws.js';
import { ApiError } from './api-error.js';

const REFUSALS: Readonly<Record<Refusal, ErrorCode>> = {
  closing: 'shutting_down',
  full: 'server_full',
  ip_limit: 'too_many_waiting_from_ip',
  code_used: 'code_used',
  code_taken: 'code_taken',
};

/** The close code after a refused join's error. */
export const REFUSAL_CLOSE: Readonly<Record<Refusal, CloseName>> = {
  closing: 'going_away',
  full: 'try_again_later',
  ip_limit: 'refused',
  code_used: 'refused',
  code_taken: 'refused',
};

/** The error a refused join is answered with. */
export function refusalError(refusal: Refusal, limits: { readonly maxWaiting: number; readonly maxWaitingPerIp: number }): ApiError {
  const code = REFUSALS[refusal];
  const args = refusal === 'full' ? [limits.maxWaiting] : refusal === 'ip_limit' ? [limits.maxWaitingPerIp] : [];
  return new ApiError(code, args, refusal === 'code_used' || refusal === 'code_taken' ? 'code' : undefined);
}
