/**
 * The punch attempts of one matched WebSocket session (protocol: src/protocol/punch.ts). Its session
 * owns it: creates it when matched (or when the partner's first part comes), feeds it the client's
 * `punch_again` and the partner's parts, and calls `stop` from its one ending; nothing here closes
 * or ends anything else.
 *
 * An attempt: this side's round trip is sampled with WebSocket pings ({@link RTT_SAMPLES}, the
 * quickest kept), its part goes to the partner (round trip, addresses, NAT), and once both parts are
 * here the client is sent its `punch` after half the amount by which the partner's round trip
 * exceeds its own: the farther side is told at once, the nearer later, so both hear it together.
 * Either side's `punch_again` starts the next attempt on both.
 */
import { randomBytes } from 'node:crypto';
import type * as Ws from 'ws';
import type { ErrorCode } from '../protocol/errors.js';
import { MAX_PUNCH_ATTEMPTS, punchMessage, RTT_SAMPLES, type NatKind, type PunchMessage, type PunchSide } from '../protocol/punch.js';
import type { RelayPunch } from '../queue/relay-seam.js';

/** A ping unanswered this long ends the sampling with the samples taken. */
const SAMPLE_TIMEOUT_MS = 2000;

export interface PunchParty {
  readonly socket: Pick<Ws.WebSocket, 'ping' | 'on' | 'off'>;
  /** This side: its observed address, and its mapping and NAT when its join asked to punch. */
  readonly observed: string;
  readonly request: { readonly mapping: string; readonly nat: NatKind } | undefined;
  /** Sends this side's part of an attempt to the partner (through the relay). */
  readonly toPartner: (part: RelayPunch) => void;
  /** Sends the client its `punch`. */
  readonly deliver: (message: PunchMessage) => void;
}

export class PunchAttempts {
  readonly #party: PunchParty;
  /** The attempt under way or last delivered (0: none yet). */
  #attempt = 0;
  /** The last attempt whose `punch` was timed, and the last the client was sent. */
  #timed = 0;
  #delivered = 0;
  #rttMs: number | undefined;
  #partner: RelayPunch | undefined;
  #samples: number[] = [];
  #pingTag = '';
  #pingAt = 0;
  /** The sample under way's timeout. */
  #timer: NodeJS.Timeout | undefined;
  /** Deliveries due: a new attempt begun meanwhile (the partner's punch_again) does not cancel one. */
  readonly #deliveries = new Set<NodeJS.Timeout>();
  #listening = false;
  #stopped = false;

  constructor(party: PunchParty) {
    this.#party = party;
  }

  /** At the match: a side that asked to punch starts the first attempt (unless its partner's part already did). */
  start(): void {
    if (this.#party.request !== undefined && this.#attempt === 0) this.#begin(1);
  }

  /**
   * The client's `punch_again`: undefined once the next attempt has begun (or when the partner's
   * `punch_again` began it already: both may ask at once), else what is wrong.
   */
  again(): { readonly error: ErrorCode; readonly args: readonly unknown[] } | undefined {
    if (this.#party.request === undefined) return { error: 'unexpected_message', args: ['punch_again', 'from a client whose join had no punch'] };
    if (this.#delivered === 0) return { error: 'unexpected_message', args: ['punch_again', 'before the first punch'] };
    if (this.#delivered !== this.#attempt) return undefined;
    if (this.#attempt >= MAX_PUNCH_ATTEMPTS) return { error: 'too_many_punches', args: [MAX_PUNCH_ATTEMPTS] };
    this.#begin(this.#attempt + 1);
    return undefined;
  }

  /** The partner's part of an attempt. */
  fromPartner(part: RelayPunch): void {
    if (this.#stopped || part.attempt > MAX_PUNCH_ATTEMPTS || part.attempt <= 0) return;
    if (this.#party.request === undefined) {
      // Not punching: each attempt answered once, so that the partner hears there is no direct try.
      if (part.attempt <= this.#attempt) return;
      this.#attempt = part.attempt;
      this.#party.toPartner({ t: 'punch', attempt: part.attempt, rttMs: 0, observed: this.#party.observed });
      return;
    }
    if (part.attempt < this.#attempt || (part.attempt === this.#attempt && this.#partner !== undefined)) return;
    // The partner asked again first: this side takes part in the same attempt.
    if (part.attempt > this.#attempt) this.#begin(part.attempt);
    this.#partner = part;
    this.#ready();
  }

  /** Timers cleared and the pong listener off; later calls do nothing. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    for (const delivery of this.#deliveries) clearTimeout(delivery);
    this.#deliveries.clear();
    if (this.#listening) this.#party.socket.off('pong', this.#onPong);
    this.#listening = false;
  }

  #begin(attempt: number): void {
    clearTimeout(this.#timer);
    this.#attempt = attempt;
    this.#rttMs = undefined;
    this.#partner = undefined;
    this.#samples = [];
    if (!this.#listening) {
      this.#party.socket.on('pong', this.#onPong);
      this.#listening = true;
    }
    this.#sample();
  }

  #sample(): void {
    // Unguessable: a client cannot answer a ping before it came (and so seem nearer than it is).
    this.#pingTag = `punch ${this.#attempt}.${this.#samples.length} ${randomBytes(8).toString('hex')}`;
    this.#pingAt = performance.now();
    this.#timer = setTimeout(this.#measured, SAMPLE_TIMEOUT_MS);
    this.#party.socket.ping(this.#pingTag);
  }

  readonly #onPong = (data: Buffer): void => {
    if (this.#stopped || this.#pingTag === '' || data.toString() !== this.#pingTag) return;
    clearTimeout(this.#timer);
    this.#samples.push(performance.now() - this.#pingAt);
    if (this.#samples.length < RTT_SAMPLES) this.#sample();
    else this.#measured();
  };

  readonly #measured = (): void => {
    clearTimeout(this.#timer);
    this.#pingTag = '';
    // A socket that answered no ping in time is taken as near: the partner is then told first.
    const rttMs = this.#samples.length === 0 ? 0 : Math.min(...this.#samples);
    this.#rttMs = rttMs;
    const { request, observed } = this.#party;
    this.#party.toPartner({ t: 'punch', attempt: this.#attempt, rttMs, observed, ...(request === undefined ? {} : request) });
    this.#ready();
  };

  #ready(): void {
    const rttMs = this.#rttMs;
    const partner = this.#partner;
    const { request, observed } = this.#party;
    // Once per attempt (in one process the partner's part can come back while this side's is sent).
    if (rttMs === undefined || partner === undefined || request === undefined || this.#timed === this.#attempt) return;
    const attempt = this.#attempt;
    this.#timed = attempt;
    const self: PunchSide = { ...request, observed };
    const other: PunchSide = { nat: partner.nat ?? 'unknown', observed: partner.observed, ...(partner.mapping === undefined ? {} : { mapping: partner.mapping }) };
    const message = punchMessage(attempt, self, other, Math.round(rttMs));
    const delivery = setTimeout(
      () => {
        this.#deliveries.delete(delivery);
        this.#delivered = Math.max(this.#delivered, attempt);
        this.#party.deliver(message);
      },
      Math.max(0, (partner.rttMs - rttMs) / 2),
    );
    this.#deliveries.add(delivery);
  }
}
