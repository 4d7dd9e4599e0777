/**
 * `GET /ws`: wait for a partner over a WebSocket, then relay signals to it (protocol: src/protocol/ws.ts).
 *
 * One {@link WsSession} owns each socket's life: its timers, its listeners, its ticket while it
 * waits, its relay endpoint once matched. `end` is the only code that ends any of them, it runs once
 * (later calls do nothing), and it is the only place that tells the partner `left` or closes the
 * socket. Nothing is sent on a socket that is not open; nothing is closed twice.
 */
import websocket from '@fastify/websocket';
import type * as Ws from 'ws';
import type { RelayHub } from '../../core/relay.js';
import type { Ticket } from '../../core/ticket.js';
import type { Outcome, Partner, Refusal } from '../../core/types.js';
import { clientAddressOf, formatAddress, limitKey } from '../../net/address.js';
import { refusalError, type MatchRouteOptions } from './match.js';
import { errorMessage, type ErrorCode } from '../../protocol/errors.js';
import { DEFAULT_POOL } from '../../protocol/schemas.js';
import { CLOSE_CODES, isBadMessage, parseClientMessage, WS_PATH, type CloseName, type ServerMessage } from '../../protocol/ws.js';
import { BackendUnavailableError, type RelayMessage } from '../../queue/seam.js';
import { ApiError } from '../api-error.js';
import { connectionId } from '../connection.js';
import { sendError } from '../error-handler.js';
import { matchAnswer } from '../match-answer.js';
import { methodNotAllowed } from '../method-not-allowed.js';
import type { AnyRequest, App } from '../types.js';

/** What the match routes need (the lobby, addresses, limits), and the WebSocket's own. */
export interface WsRouteOptions extends MatchRouteOptions {
  readonly relay: RelayHub;
  /** How long the relay stays open after the match. */
  readonly relayTtlMs: number;
  readonly wsMaxMessageBytes: number;
  readonly wsMaxMessagesPerS: number;
  readonly wsMaxBufferedBytes: number;
  /** Ping interval; a socket whose previous ping is unanswered is dropped. 0: no pings. */
  readonly keepaliveMs: number;
  /** Time to send `join` after the upgrade. */
  readonly headersTimeoutMs: number;
  /** Pages of these origins may open a socket (besides pairup's own, the demo); `*`: any. */
  readonly corsOrigins: '*' | 'off' | readonly string[];
}

/** The close code after a refused join's error (the error itself is the HTTP routes': refusalError). */
const REFUSAL_CLOSE: Readonly<Record<Refusal, CloseName>> = {
  closing: 'going_away',
  full: 'try_again_later',
  ip_limit: 'refused',
  code_used: 'refused',
  code_taken: 'refused',
};

/** After a close frame, how long the client has to answer it before its connection is cut. */
const CLOSE_GRACE_MS = 1000;

type State = 'new' | 'waiting' | 'relaying' | 'ended';

/** What a session uses of its `ws` socket. */
type Socket = Pick<Ws.WebSocket, 'readyState' | 'OPEN' | 'CLOSED' | 'CLOSING' | 'bufferedAmount' | 'send' | 'close' | 'terminate' | 'ping' | 'on' | 'off' | 'once'>;

/** What the sessions of this process share: the open ones, whether it is shutting down, how a client's address is read. */
interface Sessions {
  readonly open: Set<WsSession>;
  closing: boolean;
  readonly clientAddress: ReturnType<typeof clientAddressOf>;
}

class WsSession {
  #state: State = 'new';
  #ticket: Ticket | undefined;
  /** Tells the lobby the client went (set while the ticket waits). */
  #onGone: (() => void) | undefined;
  #peer: Partner | undefined;
  #detach: (() => void) | undefined;
  #deadline: NodeJS.Timeout | undefined;
  #ping: NodeJS.Timeout | undefined;
  #unanswered = false;
  #window = 0;
  #inWindow = 0;

  constructor(
    readonly socket: Socket,
    readonly request: AnyRequest,
    readonly options: WsRouteOptions,
    readonly sessions: Sessions,
  ) {
    sessions.open.add(this);
    socket.on('message', this.#onMessage);
    socket.on('close', this.#onClose);
    socket.on('pong', this.#onPong);
    // The join must come as soon as a request's body would.
    this.#deadline = setTimeout(() => this.#fail('request_timeout', [], 'protocol_error'), options.headersTimeoutMs);
    if (options.keepaliveMs > 0) this.#ping = setInterval(this.#probe, options.keepaliveMs);
  }

  get state(): State {
    return this.#state;
  }

  readonly #onClose = (): void => this.end();

  readonly #onPong = (): void => {
    this.#unanswered = false;
  };

  /** A peer that vanished without closing answers no ping: dropped (no close frame can reach it). */
  readonly #probe = (): void => {
    if (this.#unanswered) {
      this.end(undefined, true);
      return;
    }
    this.#unanswered = true;
    this.socket.ping();
  };

  readonly #onMessage = (data: Ws.RawData, isBinary: boolean): void => {
    if (this.#state === 'ended') return;
    const now = Math.floor(performance.now() / 1000);
    if (now !== this.#window) {
      this.#window = now;
      this.#inWindow = 0;
    }
    if (++this.#inWindow > this.options.wsMaxMessagesPerS) {
      this.#fail('too_many_messages', [this.options.wsMaxMessagesPerS], 'too_many_messages');
      return;
    }
    if (isBinary) {
      this.#fail('invalid_message', ['binary frames are not part of the protocol; send JSON text'], 'protocol_error');
      return;
    }
    // ws hands whole messages over as Buffers (its default binaryType).
    const text = (data as Buffer).toString('utf8');
    const message = parseClientMessage(text, this.options.matchTimeoutMs / 1000);
    if (isBadMessage(message)) {
      this.#send({ type: 'error', ...message });
      this.end('protocol_error');
      return;
    }
    switch (message.type) {
      case 'join':
        if (this.#state !== 'new') this.#fail('unexpected_message', ['join', 'twice'], 'protocol_error');
        else this.#join(message.code === undefined ? { kind: 'pool', name: message.pool ?? DEFAULT_POOL } : { kind: 'code', name: message.code }, message.meta, message.timeout);
        return;
      case 'signal':
        if (this.#state !== 'relaying' || this.#peer === undefined) {
          this.#fail('unexpected_message', ['signal', 'before the match'], 'protocol_error');
          return;
        }
        this.options.relay.send(this.#peer.owner, this.#peer.id, { t: 'signal', data: JSON.stringify(message.data) });
        return;
      case 'leave':
        this.end('normal');
        return;
    }
  };

  #join(room: { kind: 'pool' | 'code'; name: string }, meta: Record<string, unknown> | undefined, seconds: number | undefined): void {
    clearTimeout(this.#deadline);
    const { request, options } = this;
    const { ip, via } = this.sessions.clientAddress(request.socket.remoteAddress ?? '', request.headers['x-forwarded-for']);
    this.#state = 'waiting';
    const ticket = options.lobby.join({
      room,
      limitKey: limitKey(ip, options.ipv6PrefixBits),
      address: formatAddress(ip, request.socket.remotePort ?? 0),
      via,
      connection: connectionId(request.raw),
      meta,
      timeoutMs: seconds === undefined ? options.matchTimeoutMs : Math.max(1, Math.round(seconds * 1000)),
      relay: true,
      queued: () => this.#send({ type: 'queued' }),
      isGone: () => this.#state === 'ended' || this.socket.readyState !== this.socket.OPEN,
      watch: (onGone) => {
        this.#onGone = onGone;
        return () => {
          this.#onGone = undefined;
        };
      },
    });
    this.#ticket = ticket;
    const settled = ticket.result;
    if (settled !== undefined) {
      this.#settled(settled);
      return;
    }
    void ticket.outcome.then(this.#settled);
  }

  readonly #settled = (outcome: Outcome): void => {
    const ticket = this.#ticket;
    if (ticket === undefined) return;
    if (this.#state === 'ended') {
      // Ended while its match was being made: the partner is told at once, as if it had left after.
      if (outcome.kind === 'matched') this.options.relay.send(outcome.peer.owner, outcome.peer.id, { t: 'left' });
      return;
    }
    switch (outcome.kind) {
      case 'matched': {
        this.#state = 'relaying';
        this.#peer = outcome.peer;
        this.#detach = this.options.relay.attach(ticket.id, this.#relayed);
        this.#send({ type: 'matched', ...matchAnswer(ticket.room, ticket.address, outcome, true) });
        this.#deadline = setTimeout(() => this.end('relay_over'), this.options.relayTtlMs);
        // A partner that asked over HTTP heard its answer and is gone: there is nobody to relay to.
        if (outcome.peer.relay !== true) this.#relayed({ t: 'left' });
        return;
      }
      case 'timeout':
        this.#fail('timeout', [], 'wait_timed_out');
        return;
      case 'refused': {
        const error = refusalError(outcome.refusal, this.options);
        this.#send({ type: 'error', error: error.code, message: error.message });
        this.end(REFUSAL_CLOSE[outcome.refusal]);
        return;
      }
      case 'shutdown':
        this.#fail('shutting_down', [], 'going_away');
        return;
      case 'failed':
        if (outcome.error instanceof BackendUnavailableError) this.#fail('backend_unavailable', [], 'try_again_later');
        else {
          this.request.log.error({ err: outcome.error }, 'WebSocket wait failed');
          this.#fail('internal_error', [], 'server_error');
        }
        return;
      case 'gone':
        this.end();
        return;
    }
  };

  /** What the partner sent, or word that it left. */
  readonly #relayed = (message: RelayMessage): void => {
    if (this.#state !== 'relaying') return;
    if (message.t === 'signal') {
      this.#sendText(`{"type":"signal","data":${message.data}}`);
      return;
    }
    this.#peer = undefined; // it left: not told again
    // At shutdown every socket of this process is closed with 1001, its partner's leaving or not.
    if (this.sessions.closing) return;
    this.#send({ type: 'peer_left' });
    this.end('partner_left');
  };

  /** At shutdown: a waiting client hears why. */
  shutdown(): void {
    if (this.#state === 'waiting' || this.#state === 'new') this.#fail('shutting_down', [], 'going_away');
    else this.end('going_away');
  }

  #fail(code: ErrorCode, args: readonly unknown[], close: CloseName): void {
    this.#send({ type: 'error', error: code, message: errorMessage(code, args) });
    this.end(close);
  }

  #send(message: ServerMessage): void {
    this.#sendText(JSON.stringify(message));
  }

  #sendText(text: string): void {
    if (this.#state === 'ended' || this.socket.readyState !== this.socket.OPEN) return;
    // A client that does not read: past the bound, it is closed rather than buffered for.
    if (this.socket.bufferedAmount + text.length > this.options.wsMaxBufferedBytes) {
      this.end('not_reading');
      return;
    }
    this.socket.send(text);
  }

  /**
   * The one ending: out of the lobby (if waiting), out of the relay (the partner told once, if
   * matched), timers cleared, listeners off, the socket closed with `close` (or cut, `cut`). Once.
   */
  end(close?: CloseName, cut = false): void {
    if (this.#state === 'ended') return;
    const was = this.#state;
    this.#state = 'ended';
    this.sessions.open.delete(this);
    clearTimeout(this.#deadline);
    clearInterval(this.#ping);
    this.socket.off('message', this.#onMessage);
    this.socket.off('pong', this.#onPong);
    this.socket.off('close', this.#onClose);
    if (was === 'waiting') this.#onGone?.();
    this.#detach?.();
    const peer = this.#peer;
    if (was === 'relaying' && peer !== undefined) this.options.relay.send(peer.owner, peer.id, { t: 'left' });
    const { socket } = this;
    if (cut || close === undefined) {
      if (socket.readyState !== socket.CLOSED) socket.terminate();
      return;
    }
    if (socket.readyState === socket.OPEN) {
      socket.close(CLOSE_CODES[close]);
      // A client that does not answer the close frame is cut.
      const late = setTimeout(() => socket.terminate(), CLOSE_GRACE_MS);
      late.unref();
      socket.once('close', () => clearTimeout(late));
    }
  }
}

/** Registers `GET /ws`; at shutdown every socket is closed with 1001 (going away), once. */
export async function wsRoutes(app: App, options: WsRouteOptions): Promise<void> {
  const sessions: Sessions = { open: new Set(), closing: false, clientAddress: clientAddressOf(options.proxyProtocol ? false : options.trustProxy) };
  await app.register(websocket, {
    options: { maxPayload: options.wsMaxMessageBytes, perMessageDeflate: false },
    // A socket's errors (a bad frame, an oversize message, a reset) end that socket only; ws closes
    // it with the code the error calls for (1002, 1009), and its session ends on 'close'.
    errorHandler: (error, socket, request) => {
      request.log.debug({ err: error }, 'WebSocket error');
      if (socket.readyState !== socket.CLOSED && socket.readyState !== socket.CLOSING) socket.terminate();
    },
    preClose: (done) => {
      sessions.closing = true;
      for (const session of [...sessions.open]) session.shutdown();
      const closing = [...app.websocketServer.clients].filter((socket) => socket.readyState !== socket.CLOSED);
      let left = closing.length;
      app.websocketServer.close();
      if (left === 0) return done();
      for (const socket of closing) socket.once('close', () => --left === 0 && done());
    },
  });
  app.route({
    method: 'GET',
    url: WS_PATH,
    exposeHeadRoute: false,
    // Browsers do not ask before opening a WebSocket to another origin: its Origin is checked here.
    preHandler: (request, reply, done) => {
      const origin = request.headers.origin;
      if (origin === undefined || options.corsOrigins === '*' || origin === `https://${request.headers.host ?? ''}`) return done();
      if (options.corsOrigins !== 'off' && options.corsOrigins.includes(origin)) return done();
      sendError(reply, new ApiError('origin_not_allowed', [JSON.stringify(origin.slice(0, 200))]));
    },
    // A plain GET (no Upgrade): say what is needed.
    handler: (request, reply) => sendError(reply, new ApiError('upgrade_required', [request.headers.upgrade ?? 'none'])),
    wsHandler: (socket, request) => {
      new WsSession(socket, request, options, sessions);
    },
  });
  methodNotAllowed(app, WS_PATH, ['GET']);
}
