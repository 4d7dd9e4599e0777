/**
 * pairup/browser: the client for pages (an ES module, no Node built-ins): `findPeer()` over fetch,
 * `connectPeer()` over the server's WebSocket, and `openDataChannel()`, which turns a WebSocket
 * match into a WebRTC data channel straight to the partner.
 *
 *   import { connectPeer, openDataChannel } from 'pairup/browser';
 *   const peer = await connectPeer({ url: 'https://pairup.example:3030', code: 'amber-lynx-17' });
 *   const channel = await openDataChannel(peer, { iceServers: [{ urls: 'stun:pairup.example:3030' }] });
 *   channel.send('hello');
 */
import { errors, WS_PATH, type Match } from '../protocol/index.js';

export type { Match } from '../protocol/index.js';

export interface PeerOptions {
  /** The pairup server, e.g. `https://pairup.example:3030`. */
  readonly url: string | URL;
  readonly pool?: string;
  readonly code?: string;
  /** A JSON object for the partner (its `peerMeta`). */
  readonly meta?: Record<string, unknown>;
  /** How long to look for a partner in all; default 60000 ms. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

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

/** The server's error: its table's status for the code, and its message. */
function serverError(body: unknown, status: number, origin: string): PairupError {
  const { error, message } = (body ?? {}) as { error?: unknown; message?: unknown };
  const code = typeof error === 'string' ? error : `http_${status}`;
  const entry = (errors as Record<string, { status: number } | undefined>)[code];
  return new PairupError(status || (entry?.status ?? 0), code, typeof message === 'string' ? message : `${origin} answered ${status}`);
}

/** Asks `POST /` for a partner until one comes or the deadline passes (asking again after each 408). */
export async function findPeer(options: PeerOptions): Promise<Match> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const deadline = performance.now() + timeoutMs;
  const endpoint = new URL('/', options.url);
  for (;;) {
    const left = deadline - performance.now();
    if (left <= 0) throw new PairupError(408, 'timeout', `no peer came within ${timeoutMs / 1000} s`);
    let response: Response;
    try {
      response = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ pool: options.pool, code: options.code, meta: options.meta, timeout: Math.max(0.001, Math.min(left, DEFAULT_TIMEOUT_MS) / 1000) }),
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
    if (response.status === 503 || response.status === 429) {
      const retry = Number(response.headers.get('retry-after') ?? '1');
      await sleep(Math.max(500, (Number.isFinite(retry) ? retry : 1) * 1000));
      continue;
    }
    throw error;
  }
}

export interface PeerChannel {
  readonly match: Match;
  /** Relays `data` (any JSON value) to the partner. */
  send(data: unknown): void;
  /** Called with each signal from the partner (set it before awaiting anything). */
  onSignal: ((data: unknown) => void) | undefined;
  /** Called once when the relay ends: the partner left (`peer_left`) or the socket closed (its code). */
  onEnd: ((reason: 'peer_left' | 'closed', code: number) => void) | undefined;
  /** Leaves: the partner is told. */
  close(): void;
}

/** Waits for a partner over `/ws`, then keeps the socket as a relay to it. */
export function connectPeer(options: PeerOptions): Promise<PeerChannel> {
  const url = new URL(WS_PATH, options.url);
  url.protocol = url.protocol === 'http:' ? 'ws:' : 'wss:';
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    let channel: PeerChannel | undefined;
    let ended = false;
    const end = (reason: 'peer_left' | 'closed', code: number): void => {
      if (ended) return;
      ended = true;
      channel?.onEnd?.(reason, code);
    };
    const timer = setTimeout(() => {
      socket.close();
      reject(new PairupError(408, 'timeout', `no peer came within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    options.signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      socket.close();
      reject(options.signal?.reason as Error);
    });
    socket.addEventListener('open', () => {
      socket.send(JSON.stringify({ type: 'join', pool: options.pool, code: options.code, meta: options.meta, timeout: Math.min(timeoutMs, DEFAULT_TIMEOUT_MS) / 1000 }));
    });
    socket.addEventListener('message', (event: MessageEvent<string>) => {
      let message: Record<string, unknown>;
      try {
        message = JSON.parse(event.data) as Record<string, unknown>;
      } catch {
        return;
      }
      if (message.type === 'matched') {
        clearTimeout(timer);
        const match: Record<string, unknown> = { ...message };
        delete match.type;
        if (!isMatch(match)) {
          socket.close();
          reject(new PairupError(200, 'invalid_answer', 'the server sent a match that is not one'));
          return;
        }
        channel = {
          match,
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
        resolve(channel);
      } else if (message.type === 'signal') {
        channel?.onSignal?.(message.data);
      } else if (message.type === 'peer_left') {
        end('peer_left', 4002);
      } else if (message.type === 'error') {
        clearTimeout(timer);
        reject(serverError(message, 0, url.origin));
      }
    });
    socket.addEventListener('close', (event) => {
      clearTimeout(timer);
      if (channel === undefined) reject(new PairupError(0, 'closed', `the server closed the WebSocket (${event.code}) before a match`));
      else end('closed', event.code);
    });
  });
}

export interface DataChannelOptions {
  /** ICE servers; pairup's own STUN responder is `stun:HOST:STUN_PORT` (the HTTPS port by default). */
  readonly iceServers?: RTCIceServer[];
  /** Only candidates this accepts are sent to the partner (tests keep loopback ones alone). */
  readonly filterCandidate?: (candidate: RTCIceCandidate) => boolean;
  /** Told of each step: `offer sent`, `answer sent`, the ICE connection state, `channel open`. */
  readonly onStep?: (step: string) => void;
  /** How long the whole negotiation may take; default 20000 ms. */
  readonly timeoutMs?: number;
}

/** The data channel, once both sides proved they hold the match's secret. */
export interface PeerDataChannel {
  readonly channel: RTCDataChannel;
  readonly connection: RTCPeerConnection;
}

type Negotiation = { kind: 'description'; description: RTCSessionDescriptionInit } | { kind: 'candidate'; candidate: RTCIceCandidateInit };

/**
 * Opens a WebRTC data channel to the partner of a WebSocket match: the newcomer (`initiator:
 * false`) makes the offer, ICE candidates trickle over the relay, and the first message each side
 * sends on the channel is the match's secret, which the other checks before the channel is handed
 * over (a channel whose partner cannot show it is closed).
 */
export function openDataChannel(peer: PeerChannel, options: DataChannelOptions = {}): Promise<PeerDataChannel> {
  const step = options.onStep ?? (() => undefined);
  const connection = new RTCPeerConnection({ iceServers: options.iceServers ?? [] });
  const filter = options.filterCandidate ?? (() => true);
  const pending: RTCIceCandidateInit[] = [];
  let described = false;
  return new Promise<PeerDataChannel>((resolve, reject) => {
    const fail = (error: Error): void => {
      clearTimeout(timer);
      connection.close();
      reject(error);
    };
    const timer = setTimeout(() => fail(new PairupError(0, 'negotiation_timeout', 'the data channel did not open in time')), options.timeoutMs ?? 20_000);
    connection.addEventListener('icecandidate', (event) => {
      if (event.candidate !== null && event.candidate.candidate !== '' && filter(event.candidate)) {
        peer.send({ kind: 'candidate', candidate: event.candidate.toJSON() } satisfies Negotiation);
      }
    });
    connection.addEventListener('iceconnectionstatechange', () => step(`ICE ${connection.iceConnectionState}`));
    const authenticate = (channel: RTCDataChannel): void => {
      channel.addEventListener('open', () => {
        step('channel open');
        channel.send(JSON.stringify({ pairup: 'hello', secret: peer.match.secret }));
      });
      const onFirst = (event: MessageEvent): void => {
        channel.removeEventListener('message', onFirst);
        let hello: { pairup?: unknown; secret?: unknown } = {};
        try {
          hello = JSON.parse(String(event.data)) as typeof hello;
        } catch {
          // not a hello at all
        }
        if (hello.pairup !== 'hello' || hello.secret !== peer.match.secret) {
          channel.close();
          fail(new PairupError(0, 'bad_secret', 'the partner did not show the match secret'));
          return;
        }
        clearTimeout(timer);
        step('partner authenticated');
        resolve({ channel, connection });
      };
      channel.addEventListener('message', onFirst);
    };
    peer.onSignal = (data) => {
      const message = data as Negotiation;
      if (message.kind === 'candidate') {
        if (described) void connection.addIceCandidate(message.candidate).catch(() => undefined);
        else pending.push(message.candidate);
        return;
      }
      void (async () => {
        await connection.setRemoteDescription(message.description);
        described = true;
        for (const candidate of pending.splice(0)) await connection.addIceCandidate(candidate).catch(() => undefined);
        if (message.description.type === 'offer') {
          await connection.setLocalDescription(await connection.createAnswer());
          peer.send({ kind: 'description', description: connection.localDescription?.toJSON() as RTCSessionDescriptionInit } satisfies Negotiation);
          step('answer sent');
        }
      })().catch((error: unknown) => fail(error as Error));
    };
    if (peer.match.initiator) {
      // The waiter answers: its channel comes from the newcomer.
      connection.addEventListener('datachannel', (event) => authenticate(event.channel));
      step('waiting for the offer');
    } else {
      authenticate(connection.createDataChannel('pairup'));
      void (async () => {
        await connection.setLocalDescription(await connection.createOffer());
        peer.send({ kind: 'description', description: connection.localDescription?.toJSON() as RTCSessionDescriptionInit } satisfies Negotiation);
        step('offer sent');
      })().catch((error: unknown) => fail(error as Error));
    }
  });
}
