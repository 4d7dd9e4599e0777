/** The browser client's one error. */
import { errors } from '../protocol/index.js';

/** A failure: the server's status and error code (status 0 when it was not reached). */
export class PairupError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'PairupError';
  }
}

/** The server's error (an HTTP body or a WebSocket error frame): its table's status for the code, and its message. */
export function serverError(body: unknown, status: number, origin: string): PairupError {
  const { error, message } = (body ?? {}) as { error?: unknown; message?: unknown };
  const code = typeof error === 'string' ? error : `http_${status}`;
  const entry = (errors as Record<string, { status: number } | undefined>)[code];
  return new PairupError(status || (entry?.status ?? 0), code, typeof message === 'string' ? message : `${origin} answered ${status}`);
}
