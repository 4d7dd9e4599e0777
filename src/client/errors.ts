/** The errors the client's calls end with. */

/** A failure: the server's status, error code and message (status 0 when it was not reached). */
export class PairupError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'PairupError';
  }
}

/** Nobody came before the deadline. */
export class NoPeerError extends PairupError {
  constructor(timeoutMs: number) {
    super(408, 'timeout', `no peer came within ${timeoutMs / 1000} s`);
    this.name = 'NoPeerError';
  }
}
