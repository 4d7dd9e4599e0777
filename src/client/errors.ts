/** What the client's calls share: their options, their errors, the default deadline. */
import { Agent, type Dispatcher } from 'undici';

export interface FindPeerOptions {
  /** The server, e.g. `https://pairup.example:3030`. Its path is ignored. */
  readonly url: string | URL;
  /** Pool to meet in (default: the server's `default` pool). Not with `code`. */
  readonly pool?: string;
  /** Rendezvous code: meet the one other client presenting it. Not with `pool`. */
  readonly code?: string;
  /** A JSON object for the partner (at most 2048 bytes serialised); the partner's is `peerMeta`. */
  readonly meta?: Record<string, unknown>;
  /** How long to look for a partner in all, in milliseconds; default 60000. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  /** Certificate(s) to trust besides the system's, PEM: a self-signed or development server. */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  /** An undici dispatcher to send through instead of a connection of its own (then `ca` is unused). */
  readonly dispatcher?: Dispatcher;
}

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

export const DEFAULT_TIMEOUT_MS = 60_000;

/** What findPeer and connectPeer check and set up alike: the deadline and the dispatcher (its own, unless given). */
export function startCall(options: FindPeerOptions, allowH2: boolean): { timeoutMs: number; deadline: number; dispatcher: Dispatcher; own: Agent | undefined } {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!(timeoutMs > 0)) throw new RangeError('timeoutMs must be greater than 0');
  if (options.pool !== undefined && options.code !== undefined) throw new TypeError('give either pool or code, not both');
  options.signal?.throwIfAborted();
  const ca = options.ca as string | Buffer | (string | Buffer)[] | undefined;
  const own = options.dispatcher === undefined ? new Agent({ allowH2, connect: ca === undefined ? {} : { ca } }) : undefined;
  return { timeoutMs, deadline: performance.now() + timeoutMs, dispatcher: options.dispatcher ?? (own as Agent), own };
}
