/**
 * What every WebSocket join of the browser client shares (`connectPeer` for a pair, `openMesh` for a
 * group): the socket's address, the loop that joins again each time the server's own wait ends, and
 * what an error frame means for that loop.
 */
import { errors, WS_PATH } from '../protocol/index.js';
import { serverError } from './errors.js';

/** Two joins start at least this long apart: a server that ends waits at once is not hammered. */
const MIN_RETRY_INTERVAL_MS = 1000;
/** The longest delay setTimeout takes; a deadline further away than this is no deadline. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export type Attempt<T> =
  | { readonly kind: 'matched'; readonly value: T }
  | { readonly kind: 'retry'; readonly afterMs: number }
  | { readonly kind: 'failed'; readonly error: Error };

/** `wss://HOST/ws` of the server at `url`; the app's key as `?key=` (a browser's WebSocket sends no headers). */
export function wsUrl(url: string | URL, key: string | undefined): URL {
  const ws = new URL(WS_PATH, url);
  if (key !== undefined) ws.searchParams.set('key', key);
  ws.protocol = ws.protocol === 'http:' ? 'ws:' : 'wss:';
  return ws;
}

/**
 * An error frame before the match: the server's own wait ended (join again at once), it is full or
 * overloaded (come back when it says), or the join was refused (fail with its code and message).
 */
export function errorAttempt(message: Record<string, unknown>, origin: string): Attempt<never> {
  const error = serverError(message, 0, origin);
  const entry = (errors as Record<string, { status: number; retryAfterS?: number } | undefined>)[error.code];
  if (error.code === 'timeout') return { kind: 'retry', afterMs: 0 };
  if (error.status === 503 || error.status === 429) return { kind: 'retry', afterMs: (entry?.retryAfterS ?? 1) * 1000 };
  return { kind: 'failed', error };
}

/**
 * Joins until one attempt is matched or fails, or the deadline (`timeoutMs` from now; `Infinity`:
 * none) passes. An attempt asks for no timeout of its own: the server waits as long as it allows
 * (MATCH_TIMEOUT_MS), and when that wait ends, the client joins again.
 */
export async function joinUntil<T>(
  timeoutMs: number,
  signal: AbortSignal | undefined,
  noMatch: () => Error,
  attempt: (deadline: number) => Promise<Attempt<T>>,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    signal?.throwIfAborted();
    if (performance.now() >= deadline) throw noMatch();
    const startedAt = performance.now();
    const result = await attempt(deadline);
    if (result.kind === 'matched') return result.value;
    if (result.kind === 'failed') throw result.error;
    const waitMs = Math.max(result.afterMs, MIN_RETRY_INTERVAL_MS * (0.5 + Math.random()) - (performance.now() - startedAt), 0);
    if (performance.now() + waitMs >= deadline) throw noMatch();
    await pause(waitMs, signal);
  }
}

/** Sleeps `ms`, or rejects with the signal's reason when it aborts first. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** What one join's socket does with the server's frames (an error frame decides the attempt on its own). */
export interface AttemptHandlers<T> {
  /** A frame that is not an error: `decide` settles the attempt (once; later calls do nothing). */
  message(message: Record<string, unknown>, decide: (attempt: Attempt<T>) => void): void;
  /** The socket closed: before the match, the attempt fails; after it, the relay has ended. */
  closed(code: number, decide: (attempt: Attempt<T>) => void): void;
}

/**
 * One socket, one join: opens `url`, sends `join` once it is open, hands each frame to the handlers
 * made for the socket, and settles once: matched, told to come back (the server's wait ended, 429,
 * 503), failed, aborted by `signal`, or past `deadline` (`timedOut`). A socket not matched is
 * closed; a matched one is its caller's from then on.
 */
export function socketAttempt<T>(
  url: URL,
  join: Record<string, unknown>,
  deadline: number,
  signal: AbortSignal | undefined,
  timedOut: () => Error,
  handlersFor: (socket: WebSocket) => AttemptHandlers<T>,
): Promise<Attempt<T>> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url);
    let decided = false;
    const decide = (attempt: Attempt<T>): void => {
      if (decided) return;
      decided = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (attempt.kind !== 'matched') socket.close();
      resolve(attempt);
    };
    const onAbort = (): void => decide({ kind: 'failed', error: signal?.reason as Error });
    signal?.addEventListener('abort', onAbort, { once: true });
    const left = deadline - performance.now();
    const timer = left <= MAX_TIMER_MS ? setTimeout(() => decide({ kind: 'failed', error: timedOut() }), left) : undefined;
    const handlers = handlersFor(socket);
    socket.addEventListener('open', () => socket.send(JSON.stringify(join)));
    socket.addEventListener('message', (event: MessageEvent<string>) => {
      let message: Record<string, unknown>;
      try {
        message = JSON.parse(event.data) as Record<string, unknown>;
      } catch {
        return;
      }
      if (message.type === 'error') decide(errorAttempt(message, url.origin));
      else handlers.message(message, decide);
    });
    socket.addEventListener('close', (event) => handlers.closed(event.code, decide));
  });
}
