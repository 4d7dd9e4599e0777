/**
 * `connectPeer()`: waits for a partner over the server's WebSocket (`/ws`), then keeps the socket
 * as a channel to it: `send(data)` relays to the partner, received signals come as an async
 * iterator, `close()` leaves. The same options and errors as `findPeer`.
 *
 *   const peer = await connectPeer({ url: 'https://pairup.example:3030', code: 'amber-lynx-17' });
 *   peer.send({ sdp: offer });
 *   for await (const data of peer) console.log('partner says', data);
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Compile } from 'typebox/compile';
import { request, WebSocket, type Dispatcher } from 'undici';
import { errors, MatchWithMeta, MAX_PUNCH_ATTEMPTS, WS_PATH, type Match, type PunchMessage, type PunchRequest } from '../protocol/index.js';
import { DEFAULT_TIMEOUT_MS, httpsHint, keyHeader, reachFailure, retryFloorMs, startCall, type FindPeerOptions } from './call.js';
import { NoPeerError, PairupError } from './errors.js';

const isMatch = Compile(MatchWithMeta);

/** Why a channel ended: the partner left, this side closed it, or the socket closed (its code). */
export interface ChannelEnd {
  readonly reason: 'peer_left' | 'closed';
  readonly code: number;
}

export interface ConnectPeerOptions extends FindPeerOptions {
  /**
   * This side will punch a UDP path (`punch()`): its socket's mapping and NAT (`discoverNat()`). The
   * server then times an attempt for both sides once matched: `nextPunch()` gives its `punch`.
   */
  readonly punch?: PunchRequest;
}

export interface PeerChannel extends AsyncIterable<unknown> {
  readonly match: Match;
  /**
   * The server's next `punch` (a join with `punch` only): the first attempt's, then one per
   * `punchAgain()`. Rejects once the channel has ended without it.
   */
  nextPunch(): Promise<PunchMessage>;
  /** Asks for another attempt, timed afresh for both sides (3 attempts in all; a fourth is a protocol error). */
  punchAgain(): void;
  /** Relays `data` (any JSON value) to the partner. Ignored once the channel has ended. */
  send(data: unknown): void;
  /** Leaves: the partner is told `peer_left`. */
  close(): void;
  /** Resolves once the channel has ended. */
  readonly ended: Promise<ChannelEnd>;
}

type ServerMessage = { type?: unknown; error?: unknown; message?: unknown; data?: unknown } & Record<string, unknown>;

/** Waits for a partner over `/ws` and returns the channel to it. */
export async function connectPeer(options: ConnectPeerOptions): Promise<PeerChannel> {
  const { timeoutMs, deadline, dispatcher, own } = startCall(options, false);
  const url = new URL(WS_PATH, options.url);
  url.protocol = url.protocol === 'http:' ? 'ws:' : 'wss:';
  let startedAt = -Infinity;
  try {
    for (;;) {
      if (performance.now() >= deadline) throw new NoPeerError(timeoutMs);
      startedAt = performance.now();
      const attempt = await join(url, dispatcher, options, deadline);
      if (attempt.kind === 'matched') return attempt.channel;
      if (attempt.kind === 'retry') {
        // The server's own wait ended (timeout), or it asked to come back (1013): ask again.
        const floorMs = retryFloorMs(startedAt);
        const waitMs = Math.max(attempt.afterMs, floorMs, 0);
        if (performance.now() + waitMs >= deadline) throw new NoPeerError(timeoutMs);
        await sleep(waitMs, undefined, { signal: options.signal });
        continue;
      }
      throw attempt.error;
    }
  } catch (error) {
    await own?.destroy();
    throw error;
  }
  // On success the channel owns `own`: it is destroyed when the channel ends.
}

type Attempt =
  | { readonly kind: 'matched'; readonly channel: PeerChannel }
  | { readonly kind: 'retry'; readonly afterMs: number }
  | { readonly kind: 'failed'; readonly error: Error };

function join(url: URL, dispatcher: Dispatcher, options: ConnectPeerOptions, deadline: number): Promise<Attempt> {
  const socket = new WebSocket(url, { dispatcher, headers: keyHeader(options) });
  const origin = url.origin;
  return new Promise<Attempt>((resolve) => {
    let decided = false;
    const decide = (attempt: Attempt): void => {
      if (decided) return;
      decided = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if (attempt.kind !== 'matched') socket.close();
      resolve(attempt);
    };
    const onAbort = (): void => decide({ kind: 'failed', error: (options.signal?.reason as Error | undefined) ?? new Error('aborted') });
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => decide({ kind: 'failed', error: new NoPeerError(options.timeoutMs ?? DEFAULT_TIMEOUT_MS) }), Math.max(0, deadline - performance.now()));
    socket.addEventListener('open', () => {
      // Only the fields of the protocol's punch: a NatReport (discoverNat) may be passed as it is.
      const punch = options.punch === undefined ? undefined : { mapping: options.punch.mapping, nat: options.punch.nat };
      socket.send(JSON.stringify({ type: 'join', pool: options.pool, code: options.code, meta: options.meta, punch }));
    });
    let erred = false;
    socket.addEventListener('error', () => {
      erred = true;
      void whyUnreachable(url, dispatcher).then((why) =>
        decide({ kind: 'failed', error: new PairupError(0, 'unreachable', `cannot open a WebSocket to ${origin}${why === undefined ? '' : `: ${why}`}${httpsHint(url)}`) }),
      );
    });
    socket.addEventListener('close', (event) => {
      if (!erred) decide({ kind: 'failed', error: new PairupError(0, 'closed', `${origin} closed the WebSocket (${event.code}) before a match`) });
    });
    const onMessage = (event: { readonly data: unknown }): void => {
      const message = parse(event.data);
      if (message?.type === 'queued') return;
      if (message?.type === 'matched') {
        const match: Record<string, unknown> = { ...message };
        delete match.type;
        if (!isMatch.Check(match)) {
          decide({ kind: 'failed', error: new PairupError(200, 'invalid_answer', `${origin} sent a match that is not one`) });
          return;
        }
        socket.removeEventListener('message', onMessage);
        decide({ kind: 'matched', channel: channel(socket, match, dispatcher, options.dispatcher === undefined) });
        return;
      }
      const code = typeof message?.error === 'string' && /^[a-z0-9_]{1,64}$/.test(message.error) ? message.error : 'invalid_answer';
      const entry = (errors as Record<string, { status: number; retryAfterS?: number } | undefined>)[code];
      if (code === 'timeout') return decide({ kind: 'retry', afterMs: 0 });
      if (entry?.status === 503 || entry?.status === 429) return decide({ kind: 'retry', afterMs: (entry.retryAfterS ?? 1) * 1000 });
      const text = typeof message?.message === 'string' ? message.message.slice(0, 500) : `${origin} sent something that is not pairup's protocol`;
      decide({ kind: 'failed', error: new PairupError(entry?.status ?? 0, code, text) });
    };
    socket.addEventListener('message', onMessage);
  });
}

/**
 * Why a WebSocket to `url` could not be opened, as findPeer would say it (an untrusted certificate:
 * how to trust it): its error event carries no cause, so one plain HTTPS request over the same
 * dispatcher asks. Undefined when that request gets an answer, or for `ws:` (httpsHint says it).
 */
async function whyUnreachable(url: URL, dispatcher: Dispatcher): Promise<string | undefined> {
  if (url.protocol !== 'wss:') return undefined;
  try {
    const answer = await request(new URL('/healthz', `https://${url.host}`), { dispatcher, headersTimeout: 5000, bodyTimeout: 5000 });
    await answer.body.dump();
    return undefined;
  } catch (error) {
    return reachFailure(error);
  }
}

function parse(data: unknown): ServerMessage | undefined {
  if (typeof data !== 'string') return undefined;
  try {
    const value: unknown = JSON.parse(data);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as ServerMessage) : undefined;
  } catch {
    return undefined;
  }
}

/** The matched socket as a channel: one owner of its end (the first of peer_left, close(), a closed socket). */
function channel(socket: WebSocket, match: Match, dispatcher: Dispatcher, ownsDispatcher: boolean): PeerChannel {
  const received: unknown[] = [];
  const punches: PunchMessage[] = [];
  let punchesHeard = 0;
  const punchWaiters: { resolve: (message: PunchMessage) => void; reject: (error: Error) => void }[] = [];
  let wake: (() => void) | undefined;
  let end: ChannelEnd | undefined;
  let resolveEnded!: (end: ChannelEnd) => void;
  const ended = new Promise<ChannelEnd>((resolve) => (resolveEnded = resolve));
  const finish = (how: ChannelEnd): void => {
    if (end !== undefined) return;
    end = how;
    resolveEnded(how);
    wake?.();
    for (const waiter of punchWaiters.splice(0)) waiter.reject(new PairupError(0, 'closed', `the channel ended (${how.reason}, ${how.code}) before a punch`));
    if (ownsDispatcher) void dispatcher.destroy().catch(() => undefined);
  };
  socket.addEventListener('message', (event) => {
    const message = parse(event.data);
    if (message?.type === 'signal') {
      received.push(message.data);
      wake?.();
    } else if (message?.type === 'punch') {
      // At most one a match's attempts (a server cannot queue more); checked by punch() when used.
      if (++punchesHeard > MAX_PUNCH_ATTEMPTS) return;
      const waiter = punchWaiters.shift();
      if (waiter !== undefined) waiter.resolve(message as unknown as PunchMessage);
      else punches.push(message as unknown as PunchMessage);
    } else if (message?.type === 'peer_left') finish({ reason: 'peer_left', code: 4002 });
  });
  socket.addEventListener('close', (event) => finish({ reason: 'closed', code: event.code }));
  return {
    match,
    ended,
    send(data) {
      if (end === undefined && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'signal', data }));
    },
    nextPunch() {
      const queued = punches.shift();
      if (queued !== undefined) return Promise.resolve(queued);
      if (end !== undefined) return Promise.reject(new PairupError(0, 'closed', `the channel ended (${end.reason}, ${end.code}) before a punch`));
      return new Promise<PunchMessage>((resolve, reject) => punchWaiters.push({ resolve, reject }));
    },
    punchAgain() {
      if (end === undefined && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'punch_again' }));
    },
    close() {
      if (end === undefined && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'leave' }));
      finish({ reason: 'closed', code: 1000 });
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        if (received.length > 0) {
          yield received.shift();
          continue;
        }
        if (end !== undefined) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    },
  };
}
