import { errorMessage, errors, type ErrorCode } from '../protocol/errors.js';

/** An answer that is an error: thrown by routes, written by the app's error handler. */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  readonly retryAfterS: number | undefined;
  /** The request field the error is about, when there is one. */
  readonly field: string | undefined;
  /** Figures a program can act on without reading the message (invalid_timeout: maxTimeoutS). */
  readonly details: Readonly<Record<string, number>> | undefined;

  /** `retryAfterS`: when the table's Retry-After is not the right one (a quota window that ends sooner). */
  constructor(code: ErrorCode, args: readonly unknown[] = [], field?: string, details?: Readonly<Record<string, number>>, retryAfterS?: number) {
    const entry = errors[code];
    super(errorMessage(code, args));
    this.name = 'ApiError';
    this.code = code;
    this.statusCode = entry.status;
    this.retryAfterS = retryAfterS ?? entry.retryAfterS;
    this.field = field;
    this.details = details;
  }

  toJSON(): { error: string; message: string; field?: string } {
    return {
      error: this.code,
      message: this.message,
      ...(this.field === undefined ? {} : { field: this.field }),
      ...this.details,
    };
  }
}
