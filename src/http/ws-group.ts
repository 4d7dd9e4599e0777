/**
 * A group member's relaying, for its session (a group of more than two): where each other member
 * is and which of them are still there, signals addressed by index (the frame as it came, `from`
 * put at its front: its data is never parsed into a value and written again), and word of each
 * member that leaves; once no other member remains, its session ends.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { RelayHub, RelayPartner } from '../core/relay.js';
import type { Partner } from '../core/types.js';
import type { ConnectedMessage, FailedMessage } from '../protocol/ws.js';
import type { RelayMessage } from '../queue/relay-seam.js';
import { linkSide, type OutcomeRecorder } from './outcomes.js';
import type { Relaying, RelayingHost } from './ws-relaying.js';

/** What a member's reports of its links are counted with (see outcomes.ts). */
export interface GroupOutcomes {
  readonly matchId: string;
  readonly app: string | undefined;
  readonly recordOutcome: OutcomeRecorder;
  readonly log: FastifyBaseLogger;
}

export class GroupRelay implements Relaying {
  readonly #host: RelayingHost;
  readonly #hub: RelayHub;
  /** This member's waiter id: where the others' messages come. */
  readonly #id: string;
  readonly #index: number;
  readonly #members: readonly Partner[];
  /** Indexes of the other members still relaying. */
  readonly #present = new Set<number>();
  readonly #outcomes: GroupOutcomes | undefined;
  #detach: (() => void) | undefined;
  #stopped = false;

  /** `outcomes`: how to count its client's reports (none for a member that ended before it heard of its group). */
  constructor(host: RelayingHost, hub: RelayHub, id: string, members: readonly Partner[], index: number, outcomes?: GroupOutcomes) {
    this.#host = host;
    this.#hub = hub;
    this.#id = id;
    this.#index = index;
    this.#members = members;
    this.#outcomes = outcomes;
    members.forEach((member, i) => {
      if (i !== index && member.relay === true) this.#present.add(i);
    });
  }

  /** Once its client was sent `matched`: attached to the hub; members that asked over HTTP are told gone. */
  start(): void {
    const partners: RelayPartner[] = [];
    this.#members.forEach((member, index) => {
      if (index !== this.#index) partners.push({ owner: member.owner, index });
    });
    // Members that asked over HTTP heard their answer and are gone: nobody to relay to there. (Taken
    // before attaching: a member that left before the match was heard here is told by its `left`.)
    const overHttp = partners.filter(({ index }) => this.#members[index as number]?.relay !== true).map(({ index }) => index as number);
    const detach = this.#hub.attach(this.#id, partners, this.receive);
    if (this.#stopped) return detach();
    this.#detach = detach;
    for (const index of overHttp) this.#tellLeft(index);
    if (this.#present.size === 0) this.#host.end('partner_left');
  }

  /**
   * A signal for member `to`: its frame `text` as it came, with this member's index put at its front
   * (`{"from":I,` then the rest: the sender's own fields, `from` never among them). Writing its data
   * afresh would cost time and could throw (JSON nested thousands deep). To a member that left,
   * dropped (it is told, or about to be, peer_left).
   */
  signal(to: number | undefined, _data: unknown, text: string): void {
    if (!this.#isOther(to, 'signal')) return;
    if (this.#present.has(to)) {
      const member = this.#members[to] as Partner;
      const open = text.indexOf('{');
      this.#hub.send(member.owner, member.id, { t: 'signal', text: `{"from":${this.#index},${text.slice(open + 1)}` });
    }
  }

  /** Whether `to` names another member of the group; if not, its client is told what is wrong, and its session ends. */
  #isOther(to: number | undefined, type: string): to is number {
    const size = this.#members.length;
    const others = `0 to ${size - 1}, not ${this.#index}`;
    const what = type === 'signal' ? 'a signal' : `a ${type} report`;
    if (to === undefined) this.#host.fail('invalid_message', [`${what} in a group needs to: the index of another member (${others})`], 'protocol_error', 'to');
    else if (to >= size || to === this.#index) this.#host.fail('invalid_message', [`${type}'s to must be the index of another member (${others}), got ${to}`], 'protocol_error', 'to');
    else return true;
    return false;
  }

  punchAgain(): void {
    this.#host.fail('unexpected_message', ['punch_again', 'in a group (punching is for pairs)'], 'protocol_error');
  }

  /** How its link to member `to` went: counted once per member and link, also after that member left. */
  report(message: ConnectedMessage | FailedMessage): void {
    const outcomes = this.#outcomes;
    if (!this.#isOther(message.to, message.type) || outcomes === undefined) return;
    const { matchId, app, recordOutcome, log } = outcomes;
    const side = linkSide(this.#index, message.to);
    const report = message.type === 'failed' ? { matchId, side, app, via: 'failed' as const } : { matchId, side, app, via: message.via, ms: message.ms };
    recordOutcome(report).catch((error: unknown) => log.debug({ err: error }, 'outcome not counted'));
  }

  readonly receive = (message: RelayMessage): void => {
    if (this.#stopped) return;
    if (message.t === 'signal') this.#host.sendText(message.text);
    else if (message.t === 'left' && message.from !== undefined && this.#present.delete(message.from)) {
      this.#tellLeft(message.from);
      if (this.#present.size === 0 && !this.#host.closing()) this.#host.end('partner_left');
    }
  };

  /** Word that this member left, to each other member still there, once. */
  stop(): void {
    this.#stopped = true;
    this.#detach?.();
    for (const i of this.#present) {
      const member = this.#members[i] as Partner;
      this.#hub.send(member.owner, member.id, { t: 'left', from: this.#index });
    }
    this.#present.clear();
  }

  /** Tells the client member `from` left (unless the server is shutting down: every socket closes then). */
  #tellLeft(from: number): void {
    if (!this.#host.closing()) this.#host.send({ type: 'peer_left', member: from });
  }
}
