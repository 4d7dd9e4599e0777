/**
 * One WebSocket client of `GET /ws`, from its upgrade to its end (protocol: src/protocol/ws.ts).
 *
 * A {@link WsSession} owns its socket's life: its timers, its listeners, its ticket while it waits,
 * its relaying once matched (ws-pair.ts, ws-group.ts). `end` is the only code that ends any of them,
 * once (later calls do nothing), and the only place that stops the relaying (which tells the others
 * `left`) or closes the socket. Nothing is sent on a socket that is not open; nothing closed twice.
 */
import type * as Ws from 'ws';
import type { Ticket } from '../../core/ticket.js';
import { groupRoom, type Outcome, type Room } from '../../core/types.js';
import type { AppKey } from '../../net/app-keys.js';
import { admitJoin } from '../access.js';
import { ApiError } from '../api-error.js';
import { errorMessage, type ErrorCode } from '../../protocol/errors.js';
import { DEFAULT_POOL } from '../../protocol/schemas.js';
import { CLOSE_CODES, isBadMessage, parseClientMessage, type CloseName, type JoinMessage, type ServerMessage } from '../../protocol/ws.js';
import { BackendUnavailableError } from '../../queue/seam.js';
import type { ClientFields } from '../join-request.js';
import { groupAnswer, matchAnswer } from '../match-answer.js';
import type { MatchRecord } from '../match-record.js';
import { pairSide } from '../outcomes.js';
import { REFUSAL_CLOSE, refusalError } from '../refusals.js';
import type { WsRouteOptions } from '../route-options.js';
import { closeOrCut, MessageAllowance, type KeyCounts } from '../ws-limits.js';
import { GroupRelay } from '../ws-group.js';
import { PairRelay } from '../ws-pair.js';
import type { Relaying, RelayingHost } from '../ws-relaying.js';
import type { AnyRequest } from '../types.js';

type State = 'new' | 'waiting' | 'relaying' | 'ended';

/** What a session uses of its `ws` socket. */
type Socket = Pick<Ws.WebSocket, 'readyState' | 'OPEN' | 'CLOSED' | 'CLOSING' | 'bufferedAmount' | 'send' | 'close' | 'terminate' | 'ping' | 'on' | 'off' | 'once'>;

/**
 * What the sessions of this process share: the open ones, whether it is shutting down, how a client's
 * address is read, how many have joined per limit key, the record of matches and groups.
 */
export interface Sessions {
  readonly open: Set<WsSession>;
  closing: boolean;
  readonly clientOf: (request: AnyRequest) => ClientFields;
  readonly joined: KeyCounts;
  readonly record: MatchRecord;
}

export class WsSession {
  #state: State = 'new';
  #ticket: Ticket | undefined;
  /** Tells the lobby the client went (set while the ticket waits). */
  #onGone: (() => void) | undefined;
  /** Its relaying with its partner or its group's other members, once matched. */
  #relaying: Relaying | undefined;
  #deadline: NodeJS.Timeout | undefined;
  #idle: NodeJS.Timeout | undefined;
  #ping: NodeJS.Timeout | undefined;
  #unanswered = false;
  /** Gives back its place under its address (MAX_RELAYS_PER_IP) once it joined. */
  #leaveAddress: (() => void) | undefined;
  readonly #allowance: MessageAllowance;
  /** Its app (APP_KEYS_FILE), once it joined with a key. */
  #app: AppKey | undefined;
  /** Ends its count as one of its app's waiting clients. */
  #release: (() => void) | undefined;
  /** Its join's `punch`. */
  #punchRequest: JoinMessage['punch'];
  /** What its relaying may ask of it. */
  readonly #host: RelayingHost = {
    send: (message) => this.#send(message),
    sendText: (text) => {
      // Relayed to it: the relay is not idle.
      this.#sendText(text);
      this.#idle?.refresh();
    },
    fail: (code, args, close, field) => this.#fail(code, args, close, field),
    end: (close) => this.end(close),
    closing: () => this.sessions.closing,
  };

  constructor(
    readonly socket: Socket,
    readonly request: AnyRequest,
    readonly options: WsRouteOptions,
    readonly sessions: Sessions,
  ) {
    sessions.open.add(this);
    this.#allowance = new MessageAllowance(options.wsMaxMessagesPerS);
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
    if (!this.#allowance.take()) {
      this.#fail('too_many_messages', [this.options.wsMaxMessagesPerS], 'too_many_messages');
      return;
    }
    if (isBinary) {
      this.#fail('invalid_message', ['binary frames are not part of the protocol; send JSON text'], 'protocol_error');
      return;
    }
    // ws hands whole messages over as Buffers (its default binaryType).
    const text = (data as Buffer).toString('utf8');
    const message = parseClientMessage(text, this.options.matchTimeoutMs / 1000, this.options.maxGroupSize);
    if (isBadMessage(message)) {
      this.#send({ type: 'error', ...message });
      this.end('protocol_error');
      return;
    }
    switch (message.type) {
      case 'join':
        if (this.#state !== 'new') {
          this.#fail('unexpected_message', ['join', 'twice'], 'protocol_error');
          return;
        }
        this.#punchRequest = message.punch;
        this.#join(
          groupRoom(message.code === undefined ? { kind: 'pool', name: message.pool ?? DEFAULT_POOL } : { kind: 'code', name: message.code }, message.size, message.min),
          message.meta,
          message.timeout,
        );
        return;
      case 'leave':
        this.end('normal');
        return;
    }
    const relaying = this.#relaying;
    if (this.#state !== 'relaying' || relaying === undefined) {
      this.#fail('unexpected_message', [message.type, 'before the match'], 'protocol_error');
      return;
    }
    if (message.type === 'signal') {
      this.#idle?.refresh();
      relaying.signal(message.to, message.data, text);
    } else if (message.type === 'punch_again') relaying.punchAgain();
    else relaying.report(message);
  };

  #join(room: Room, meta: Record<string, unknown> | undefined, seconds: number | undefined): void {
    clearTimeout(this.#deadline);
    const enter = (admitted: Room, app?: AppKey, release?: () => void): void => {
      this.#app = app;
      this.#release = release;
      // Ended while its app's count was read: its place is given back at once.
      if (this.#state === 'ended') release?.();
      else this.#enter(admitted, meta, seconds);
    };
    // A second join while the quota is looked up is the same protocol error as after it.
    if (admitJoin(this.options.access, this.request, room, enter, (error) => this.#refuse(error))) this.#state = 'waiting';
  }

  /** A join its app's quota refused (or whose count could not be read). */
  #refuse(error: unknown): void {
    if (error instanceof ApiError) {
      this.#send({ type: 'error', ...error.toJSON() });
      this.end('try_again_later');
    } else if (error instanceof BackendUnavailableError) this.#fail('backend_unavailable', [], 'try_again_later');
    else {
      this.request.log.error({ err: error }, 'WebSocket join failed');
      this.#fail('internal_error', [], 'server_error');
    }
  }

  #enter(room: Room, meta: Record<string, unknown> | undefined, seconds: number | undefined): void {
    const { request, options, sessions } = this;
    const client = sessions.clientOf(request);
    const key = client.limitKey;
    // Matched sockets hold memory and a descriptor until they end: one address may hold so many.
    this.#leaveAddress = sessions.joined.enter(key, options.maxRelaysPerIp);
    if (this.#leaveAddress === undefined) {
      this.#send({ type: 'error', error: 'too_many_relays_from_ip', message: errorMessage('too_many_relays_from_ip', [options.maxRelaysPerIp]) });
      this.end('refused');
      return;
    }
    this.#state = 'waiting';
    const ticket = options.lobby.join({
      room,
      ...client,
      meta,
      timeoutMs: seconds === undefined ? options.matchTimeoutMs : Math.max(1, Math.round(seconds * 1000)),
      relay: true,
      queued: () => this.#send({ type: 'queued' }),
      lateGroup: (outcome) => this.#leftGroup(outcome),
      isGone: () => this.#state === 'ended' || this.socket.readyState !== this.socket.OPEN,
      watch: (onGone) => {
        this.#onGone = onGone;
        return () => (this.#onGone = undefined);
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
    // No longer waiting: its app's count of waiting clients goes down whatever the outcome.
    this.#release?.();
    const { relay } = this.options;
    if (this.#state === 'ended') {
      // Ended while its match was being made: the others are told at once, as if it had left after.
      if (outcome.kind === 'matched') relay.send(outcome.peer.owner, outcome.peer.id, { t: 'left' });
      if (outcome.kind === 'grouped') this.#leftGroup(outcome);
      return;
    }
    switch (outcome.kind) {
      case 'matched':
      case 'grouped': {
        this.#state = 'relaying';
        const iceServers = this.options.iceServers(this.request.hostname, outcome.matchId, this.#app?.turn);
        let relaying: GroupRelay | PairRelay;
        if (outcome.kind === 'grouped') {
          this.#send({ type: 'matched', ...groupAnswer(ticket.room, ticket.address, outcome, iceServers, true) });
          relaying = new GroupRelay(this.#host, relay, ticket.id, outcome.members, outcome.index, {
            matchId: outcome.matchId,
            app: ticket.room.app,
            recordOutcome: this.options.recordOutcome,
            log: this.request.log,
          });
          this.#groupFormed(outcome);
        } else {
          // Sent before any message held for it is: `matched` comes first.
          this.#send({ type: 'matched', ...matchAnswer(ticket.room, ticket.address, outcome, iceServers, true) });
          const { peer, matchId, initiator } = outcome;
          relaying = new PairRelay(this.#host, {
            hub: relay,
            id: ticket.id,
            peer,
            match: { matchId, side: pairSide(initiator), app: ticket.room.app },
            recordOutcome: this.options.recordOutcome,
            log: this.request.log,
            socket: this.socket,
            observed: ticket.address,
            punch: this.#punchRequest,
          });
          this.sessions.record.pair(ticket.room, ticket.address, outcome, this.#app, this.request.log);
        }
        this.#deadline = setTimeout(() => this.end('relay_over'), this.options.relayTtlMs);
        this.#idle = setTimeout(() => this.end('relay_idle'), this.options.relayIdleMs);
        this.#relaying = relaying;
        relaying.start();
        return;
      }
      case 'timeout':
        this.#fail('timeout', [], 'wait_timed_out');
        return;
      case 'refused': {
        const error = refusalError(outcome.refusal, this.options);
        this.#send({ type: 'error', ...error.toJSON() });
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

  #groupFormed(outcome: Extract<Outcome, { kind: 'grouped' }>): void {
    this.sessions.record.group((this.#ticket as Ticket).room, outcome, this.#app, this.request.log);
  }

  /** A group formed with this member after it ended: the others are told it left. */
  #leftGroup(outcome: Extract<Outcome, { kind: 'grouped' }>): void {
    this.#groupFormed(outcome);
    new GroupRelay(this.#host, this.options.relay, (this.#ticket as Ticket).id, outcome.members, outcome.index).stop();
  }

  /** At shutdown: a waiting client hears why. */
  shutdown(): void {
    if (this.#state === 'waiting' || this.#state === 'new') this.#fail('shutting_down', [], 'going_away');
    else this.end('going_away');
  }

  #fail(code: ErrorCode, args: readonly unknown[], close: CloseName, field?: string): void {
    this.#send({ type: 'error', error: code, message: errorMessage(code, args), ...(field === undefined ? {} : { field }) });
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
    clearTimeout(this.#idle);
    clearInterval(this.#ping);
    this.#release?.();
    this.#leaveAddress?.();
    this.socket.off('message', this.#onMessage);
    this.socket.off('pong', this.#onPong);
    this.socket.off('close', this.#onClose);
    if (was === 'waiting') this.#onGone?.();
    this.#relaying?.stop();
    closeOrCut(this.socket, cut || close === undefined ? undefined : CLOSE_CODES[close]);
  }
}

