/**
 * A matched pair's relaying, for one side's session: signals to the partner as they came, its punch
 * attempts, its outcome report, and word that the partner left.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { RelayHub } from '../core/relay.js';
import type { Partner } from '../core/types.js';
import type { PunchRequest } from '../protocol/punch.js';
import type { ConnectedMessage, FailedMessage } from '../protocol/ws.js';
import type { RelayMessage } from '../queue/relay-seam.js';
import type { Connected, OutcomeRecorder } from './outcomes.js';
import { PunchAttempts, type PunchParty } from './ws-punch.js';
import type { Relaying, RelayingHost } from './ws-relaying.js';

export interface PairParts {
  readonly hub: RelayHub;
  /** This side's waiter id: where the partner's messages come. */
  readonly id: string;
  readonly peer: Partner;
  /** What its outcome report is about. */
  readonly match: Omit<Connected, 'via' | 'ms'>;
  readonly recordOutcome: OutcomeRecorder;
  readonly log: FastifyBaseLogger;
  /** Its socket (pinged to time a punch), its observed address, and its join's `punch`. */
  readonly socket: PunchParty['socket'];
  readonly observed: string;
  readonly punch: PunchRequest | undefined;
}

export class PairRelay implements Relaying {
  readonly #host: RelayingHost;
  readonly #parts: PairParts;
  /** Until it left, or this side stopped. */
  #peer: Partner | undefined;
  #detach: (() => void) | undefined;
  #punch: PunchAttempts | undefined;
  #stopped = false;

  constructor(host: RelayingHost, parts: PairParts) {
    this.#host = host;
    this.#parts = parts;
    this.#peer = parts.peer;
  }

  /**
   * Once its client was sent `matched`: attached to the hub (what came before the match was heard
   * here is delivered now, after it), its first punch begun.
   */
  start(): void {
    const { hub, id, peer, punch } = this.#parts;
    const detach = hub.attach(id, [{ owner: peer.owner }], this.receive);
    // Ended already by what was held for it (its partner left): nothing more of it in the hub.
    if (this.#stopped) return detach();
    this.#detach = detach;
    if (punch !== undefined) this.#punching().start();
    // A partner that asked over HTTP heard its answer and is gone: there is nobody to relay to.
    if (peer.relay !== true) this.receive({ t: 'left' });
  }

  signal(to: number | undefined, _data: unknown, text: string): void {
    const peer = this.#peer;
    if (to !== undefined) this.#host.fail('invalid_message', ["to is for groups: a pair's signal goes to its partner"], 'protocol_error', 'to');
    // The frame as it came: the partner reads the same JSON, never parsed and written again.
    else if (peer !== undefined) this.#parts.hub.send(peer.owner, peer.id, { t: 'signal', text });
  }

  punchAgain(): void {
    const problem = this.#punching().again();
    if (problem !== undefined) this.#host.fail(problem.error, problem.args, 'protocol_error');
  }

  report(message: ConnectedMessage | FailedMessage): void {
    if (message.to !== undefined) {
      this.#host.fail('invalid_message', [`to is for groups: a pair's ${message.type} is about its partner`], 'protocol_error', 'to');
      return;
    }
    const { match } = this.#parts;
    const report = message.type === 'failed' ? { ...match, via: 'failed' as const } : { ...match, via: message.via, ms: message.ms };
    // Counted once per side, whatever it sends; a backend that cannot count it now loses one report.
    this.#parts.recordOutcome(report).catch((error: unknown) => this.#parts.log.debug({ err: error }, 'outcome not counted'));
  }

  readonly receive = (message: RelayMessage): void => {
    if (this.#peer === undefined) return;
    if (message.t === 'signal') this.#host.sendText(message.text);
    else if (message.t === 'punch') this.#punching().fromPartner(message);
    else {
      this.#peer = undefined; // it left: not told again
      // At shutdown every socket of this process is closed with 1001, its partner's leaving or not.
      if (this.#host.closing()) return;
      this.#host.send({ type: 'peer_left' });
      this.#host.end('partner_left');
    }
  };

  stop(): void {
    this.#stopped = true;
    this.#punch?.stop();
    this.#detach?.();
    const peer = this.#peer;
    this.#peer = undefined;
    if (peer !== undefined) this.#parts.hub.send(peer.owner, peer.id, { t: 'left' });
  }

  /** Its punch attempts, made when first needed (most pairs never punch). */
  #punching(): PunchAttempts {
    this.#punch ??= new PunchAttempts({
      socket: this.#parts.socket,
      observed: this.#parts.observed,
      request: this.#parts.punch,
      toPartner: (part) => {
        const peer = this.#peer;
        if (peer !== undefined) this.#parts.hub.send(peer.owner, peer.id, part);
      },
      deliver: (message) => this.#host.send(message),
    });
    return this.#punch;
  }
}
