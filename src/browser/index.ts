/**
 * pairup/browser: the client for pages (an ES module, no Node built-ins): `findPeer()` over fetch,
 * `connectPeer()` over the server's WebSocket, `openDataChannel()`, which turns a WebSocket
 * match into a WebRTC data channel straight to the partner, and `openMesh()`, which joins a group
 * and opens a data channel to each other member.
 *
 *   import { connectPeer, openDataChannel } from 'pairup/browser';
 *   const peer = await connectPeer({ url: 'https://pairup.example:3030', code: 'amber-lynx-17' });
 *   const channel = await openDataChannel(peer);   // ICE servers: the match's (pairup's STUN, TURN)
 *   channel.send('hello');
 */
import type { Match } from '../protocol/index.js';
import { PairupError, serverError } from './errors.js';
import type { PeerChannel } from './peer-channel.js';
import { joinUntil, socketAttempt, wsUrl, type Attempt } from './ws-join.js';

export type { Match } from '../protocol/index.js';
export { PairupError } from './errors.js';
export type { PeerChannel } from './peer-channel.js';

export interface PeerOptions {
  /** The pairup server, e.g. `https://pairup.example:3030`. */
  readonly url: string | URL;
  readonly pool?: string;
  readonly code?: string;
  /** A JSON object for the partner (its `peerMeta`). */
  readonly meta?: Record<string, unknown>;
  /** How long to look for a partner in all; default 60000 ms (`connectPeer`: `Infinity` waits until a partner comes or `signal` aborts). */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  /**
   * The app's key, for a server with app keys: a bearer token on `fetch`, `?key=` on the WebSocket
   * (whose browser API sends no headers). A key in a page is public: its app's origins protect it.
   */
  readonly key?: string;
}

const DEFAULT_TIMEOUT_MS = 60_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function isMatch(value: unknown): value is Match {
  const m = value as Partial<Match> | null;
  return (
    typeof m === 'object' &&
    m !== null &&
    typeof m.matchId === 'string' &&
    typeof m.secret === 'string' &&
    typeof m.self === 'string' &&
    typeof m.peer === 'string' &&
    typeof m.initiator === 'boolean'
  );
}

/** What the server's error body may carry besides its code: invalid_timeout's longest allowed wait. */
interface ErrorBody {
  readonly maxTimeoutS?: unknown;
}

/**
 * Asks `POST /` for a partner until one comes or the deadline passes, asking again after each 408.
 * Each request asks to wait what is left, but no longer than the server allows: a server whose
 * MATCH_TIMEOUT_MS is shorter says so in its `invalid_timeout` answer (`maxTimeoutS`).
 */
export async function findPeer(options: PeerOptions): Promise<Match> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const deadline = performance.now() + timeoutMs;
  const endpoint = new URL('/', options.url);
  let serverMaxS: number | undefined;
  for (;;) {
    const left = deadline - performance.now();
    if (left <= 0) throw new PairupError(408, 'timeout', `no peer came within ${timeoutMs / 1000} s`);
    const waitS = Math.min(Math.max(0.001, Math.floor(left) / 1000), serverMaxS ?? Infinity);
    let response: Response;
    try {
      response = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', ...(options.key === undefined ? {} : { authorization: `Bearer ${options.key}` }) },
        body: JSON.stringify({ pool: options.pool, code: options.code, meta: options.meta, timeout: waitS }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
    } catch (error) {
      options.signal?.throwIfAborted();
      throw new PairupError(0, 'unreachable', `cannot reach ${endpoint.origin}: ${(error as Error).message}`);
    }
    const body: unknown = await response.json().catch(() => undefined);
    if (response.status === 200 && isMatch(body)) return body;
    const error = serverError(body, response.status, endpoint.origin);
    if (error.code === 'timeout') continue;
    const { maxTimeoutS } = (body ?? {}) as ErrorBody;
    if (error.code === 'invalid_timeout' && serverMaxS === undefined && typeof maxTimeoutS === 'number' && maxTimeoutS > 0) {
      serverMaxS = maxTimeoutS;
      continue;
    }
    if (response.status === 503 || response.status === 429) {
      const retry = Number(response.headers.get('retry-after') ?? '1');
      await sleep(Math.max(500, (Number.isFinite(retry) ? retry : 1) * 1000));
      continue;
    }
    throw error;
  }
}

/**
 * Waits for a partner over `/ws`, then keeps the socket as a relay to it. A join asks for no
 * timeout of its own: the server waits as long as it allows (MATCH_TIMEOUT_MS), and when that
 * wait ends, the client joins again, until its own deadline (`timeoutMs`; `Infinity`: until a
 * partner comes or the signal aborts).
 */
export async function connectPeer(options: PeerOptions): Promise<PeerChannel> {
  const url = wsUrl(options.url, options.key);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const noPeer = (): PairupError => new PairupError(408, 'timeout', `no peer came within ${timeoutMs / 1000} s`);
  return joinUntil(timeoutMs, options.signal, noPeer, (deadline) => join(url, options, deadline, noPeer));
}

/** One socket, one join (socketAttempt): the pair's channel once matched. */
function join(url: URL, options: PeerOptions, deadline: number, noPeer: () => PairupError): Promise<Attempt<PeerChannel>> {
  const joinMessage = { type: 'join', pool: options.pool, code: options.code, meta: options.meta };
  return socketAttempt<PeerChannel>(url, joinMessage, deadline, options.signal, noPeer, (socket) => {
    let channel: PeerChannel | undefined;
    let ended = false;
    const end = (reason: 'peer_left' | 'closed', code: number): void => {
      if (ended) return;
      ended = true;
      channel?.onEnd?.(reason, code);
    };
    return {
      message(message, decide) {
        if (message.type === 'matched') {
          const match: Record<string, unknown> = { ...message };
          delete match.type;
          if (!isMatch(match)) {
            decide({ kind: 'failed', error: new PairupError(200, 'invalid_answer', 'the server sent a match that is not one') });
            return;
          }
          channel = {
            match,
            matchedAt: performance.now(),
            report(outcome) {
              if (ended || socket.readyState !== WebSocket.OPEN) return;
              socket.send(JSON.stringify(outcome.via === 'failed' ? { type: 'failed' } : { type: 'connected', via: outcome.via, ms: Math.max(0, Math.round(outcome.ms)) }));
            },
            onSignal: undefined,
            onEnd: undefined,
            send(data) {
              if (!ended && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'signal', data }));
            },
            close() {
              if (!ended && socket.readyState === WebSocket.OPEN) socket.send('{"type":"leave"}');
              end('closed', 1000);
            },
          };
          decide({ kind: 'matched', value: channel });
        } else if (message.type === 'signal') {
          channel?.onSignal?.(message.data);
        } else if (message.type === 'peer_left') {
          end('peer_left', 4002);
        }
      },
      closed(code, decide) {
        if (channel === undefined) decide({ kind: 'failed', error: new PairupError(0, 'closed', `the server closed the WebSocket (${code}) before a match`) });
        else end('closed', code);
      },
    };
  });
}

export { openDataChannel, type DataChannelOptions, type PeerDataChannel } from './data-channel.js';
export { openMesh } from './mesh.js';
export type { LeaveReason, MemberState, Mesh, MeshEvents, MeshMember, MeshOptions, MessageData } from './mesh-types.js';
