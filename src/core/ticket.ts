import type { Waiter } from '../queue/seam.js';
import type { JoinRequest, Outcome, Room } from './types.js';

/** Where a ticket stands with the queue. */
export type TicketState =
  /** Its join step is in flight. */
  | 'joining'
  /** It waits in its room. */
  | 'queued'
  /** Taken out of its room by an arrival's claim; still counted as waiting until it is settled. */
  | 'claimed'
  /** Out of the queue: matched, refused, or left. */
  | 'done';

/**
 * One client's request for a partner, in the process that holds it. Its outcome is settled exactly
 * once, by the lobby; the route that created it is the only code that writes its reply.
 */
export class Ticket {
  readonly room: Room;
  /** What the queue knows of it: plain data. */
  readonly waiter: Waiter;
  readonly arrivedAt = performance.now();
  readonly outcome: Promise<Outcome>;
  readonly #isGone: () => boolean;
  /** Its request's {@link JoinRequest.lateGroup}. */
  readonly lateGroup: JoinRequest['lateGroup'];
  #resolve!: (outcome: Outcome) => void;
  #result: Outcome | undefined = undefined;
  state: TicketState = 'joining';
  timer: NodeJS.Timeout | undefined = undefined;
  unwatch: (() => void) | undefined = undefined;

  constructor(request: JoinRequest, waiter: Waiter) {
    this.room = request.room;
    this.waiter = waiter;
    this.#isGone = request.isGone;
    this.lateGroup = request.lateGroup;
    this.outcome = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  get id(): string {
    return this.waiter.id;
  }

  get address(): string {
    return this.waiter.address;
  }

  get settled(): boolean {
    return this.#result !== undefined;
  }

  /** The outcome once settled (the same as `outcome` resolves to): read it to answer without waiting a turn. */
  get result(): Outcome | undefined {
    return this.#result;
  }

  /** Its client can no longer be answered (even before the close event has run). */
  isGone(): boolean {
    return this.#isGone();
  }

  /** First call wins and returns true; later calls do nothing. Only the lobby calls this. */
  settleOnce(outcome: Outcome): boolean {
    if (this.#result !== undefined) return false;
    this.#result = outcome;
    this.#resolve(outcome);
    return true;
  }
}
