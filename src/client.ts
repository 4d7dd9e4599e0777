/**
 * The pairup client: `findPeer()` asks a pairup server for a partner and resolves to the match.
 * It waits as long as its own deadline allows, asking again when a wait ends in 408, and honours
 * Retry-After on 429 and 503. HTTP/2 when the server offers it, HTTP/1.1 otherwise.
 *
 *   import { findPeer } from 'pairup/client';
 *   const match = await findPeer({ url: 'https://pairup.example:3030', code: 'purple-otter-42' });
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';

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

/** The server's answer: where the partner is, and what the two now share. */
export interface Match {
  readonly matchId: string;
  /** Where the two met: a pool, or a code (exactly one of them). */
  readonly pool?: string;
  readonly code?: string;
  /** 32 random bytes, base64url, known only to the two partners. */
  readonly secret: string;
  /** This client's address as the server saw it. */
  readonly self: string;
  /** The partner's address. */
  readonly peer: string;
  readonly via: 'socket' | 'x-forwarded-for';
  readonly portIsSource: boolean;
  /** True for exactly one of the two: the one that was waiting. */
  readonly initiator: boolean;
  readonly waitedMs: number;
  /** The partner's `meta`, or null. */
  readonly peerMeta: Record<string, unknown> | null;
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
/** Retry-After assumed when a 429 or 503 does not say. */
const DEFAULT_RETRY_S = 1;

interface ErrorBody {
  readonly error?: unknown;
  readonly message?: unknown;
  /** With invalid_timeout: the longest wait the server allows. */
  readonly maxTimeoutS?: unknown;
}

/** Finds a partner through the pairup server at `options.url`. */
export async function findPeer(options: FindPeerOptions): Promise<Match> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!(timeoutMs > 0)) throw new RangeError('timeoutMs must be greater than 0');
  if (options.pool !== undefined && options.code !== undefined) throw new TypeError('give either pool or code, not both');
  options.signal?.throwIfAborted();
  const deadline = performance.now() + timeoutMs;
  const ca = options.ca as string | Buffer | (string | Buffer)[] | undefined;
  const own = options.dispatcher === undefined ? new Agent({ allowH2: true, connect: ca === undefined ? {} : { ca } }) : undefined;
  const dispatcher: Dispatcher = options.dispatcher ?? (own as Agent);
  const endpoint = new URL('/', options.url);
  // The most the server lets one request wait, once it has said (its 400 invalid_timeout carries it).
  let serverMaxS: number | undefined;
  try {
    for (;;) {
      const remainingMs = deadline - performance.now();
      if (remainingMs <= 0) throw new NoPeerError(timeoutMs);
      // Each request asks to wait just what is left, so the server ends it with a clean 408.
      const waitS = Math.min(Math.max(Math.floor(remainingMs) / 1000, 0.001), serverMaxS ?? Infinity);
      const body = JSON.stringify({ pool: options.pool, code: options.code, timeout: waitS, meta: options.meta });
      const local = AbortSignal.timeout(Math.ceil(waitS * 1000) + 10_000);
      const signal = options.signal === undefined ? local : AbortSignal.any([options.signal, local]);
      let answer: Awaited<ReturnType<typeof request>>;
      try {
        answer = await request(endpoint, {
          dispatcher,
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json' },
          body,
          signal,
        });
      } catch (error) {
        options.signal?.throwIfAborted();
        if (local.aborted) throw new PairupError(0, 'no_answer', `${endpoint.origin} did not answer in time`, { cause: error });
        throw new PairupError(0, 'unreachable', `cannot reach ${endpoint.origin}: ${(error as Error).message}`, { cause: error });
      }
      const text = await answer.body.text();
      const { statusCode: status } = answer;
      const parsed = parseJson(text);
      if (status === 200 && parsed !== undefined) return parsed as unknown as Match;
      const { error: code, message, maxTimeoutS } = (parsed ?? {}) as ErrorBody;
      const errorCode = typeof code === 'string' ? code : `http_${status}`;
      const errorMessage = typeof message === 'string' ? message : `${endpoint.origin} answered ${status}`;
      if (status === 408 && errorCode === 'timeout') continue;
      if (status === 400 && errorCode === 'invalid_timeout' && serverMaxS === undefined && typeof maxTimeoutS === 'number') {
        serverMaxS = maxTimeoutS;
        if (serverMaxS > 0) continue;
      }
      if (status === 429 || status === 503) {
        const retryMs = retryAfterS(answer.headers['retry-after']) * 1000;
        if (performance.now() + retryMs < deadline) {
          await sleep(retryMs, undefined, { signal: options.signal }).catch((error: unknown) => {
            options.signal?.throwIfAborted(); // the signal's own reason, not the timer's AbortError
            throw error;
          });
          continue;
        }
      }
      throw new PairupError(status, errorCode, errorMessage);
    }
  } finally {
    await own?.destroy();
  }
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function retryAfterS(header: string | string[] | undefined): number {
  const value = Number(Array.isArray(header) ? header[0] : header);
  return Number.isFinite(value) && value >= 0 ? value : DEFAULT_RETRY_S;
}
