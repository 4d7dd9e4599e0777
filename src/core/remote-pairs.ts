/**
 * Pairs whose waiter another process holds (a shared backend), from both ends: the arrival's process
 * offers the match to the waiter's, which answers its client and commits the claim, and only then is
 * the arrival answered. A lost or late message can delay an answer, never double it or hand out a
 * ghost. The lobby settles every ticket; this only decides when.
 */
import { randomUUID } from 'node:crypto';
import type { MatchOffer, MatchQueue, PeerLink, ValueOrPromise, Waiter } from '../queue/seam.js';
import { after, yes } from './later.js';
import { matchSecret } from './secrets.js';
import type { Ticket } from './ticket.js';
import type { Outcome } from './types.js';

/** What remote pairing uses of the lobby: its tickets, and the one way to end one. */
export interface RemotePairsHost {
  readonly tickets: ReadonlyMap<string, Ticket>;
  settle(ticket: Ticket, outcome: Outcome): void;
}

export class RemotePairs {
  readonly #host: RemotePairsHost;
  readonly #queue: MatchQueue;
  /** How to reach the processes holding waiters; undefined when this lobby has none to reach. */
  readonly #peers: PeerLink | undefined;
  readonly #secretKey: Buffer;

  constructor(host: RemotePairsHost, queue: MatchQueue, peers: PeerLink | undefined, secretKey: Buffer) {
    this.#host = host;
    this.#queue = queue;
    this.#peers = peers;
    this.#secretKey = secretKey;
  }

  /**
   * A waiter held by another process: that process answers its client and commits the claim, and
   * only then is the arrival answered. Without an answer in time, the claim record decides: committed
   * (the answer was lost) means the match stands; otherwise the claim is undone and the next waiter
   * tried. A lost or late message can delay an answer, never double it or hand out a ghost.
   *
   * The arrival's own timeout bounds the wait: an owner that does not answer by then (stalled, or
   * slow) has its waiter put back, unless it committed first, and the arrival is answered `timeout`.
   */
  confirm(peer: Waiter, arrival: Ticket, timeoutMs: number): ValueOrPromise<boolean> {
    const peers = this.#peers;
    if (peers === undefined) {
      return after(this.#queue.abort(peer, true), () => {
        throw new Error(`waiter ${peer.id} is held by process ${peer.owner}, which this lobby cannot reach`);
      });
    }
    const matchId = randomUUID();
    const secret = matchSecret(this.#secretKey, matchId, arrival.room.app);
    const matched = (): ValueOrPromise<boolean> => {
      this.#host.settle(arrival, { kind: 'matched', matchId, secret, peer, initiator: false, waitedMs: performance.now() - arrival.arrivedAt });
      return after(this.#queue.confirm(peer), yes);
    };
    const deadline = arrival.arrivedAt + timeoutMs;
    return peers.offer(peer, { matchId, secret, arrival: arrival.waiter }, deadline - performance.now()).then(async (answer) => {
      if (answer === 'matched') return matched();
      if (answer === 'unanswered' && performance.now() >= deadline - 1) {
        // The arrival's time is up. Its owner may simply be slow: the waiter goes back where it was.
        if ((await this.#queue.abort(peer, true)) === 'matched') return matched();
        this.#host.settle(arrival, { kind: 'timeout', waitedMs: performance.now() - arrival.arrivedAt });
        return true;
      }
      // Gone, or no answer in time: unless the record says its process committed it, the waiter is
      // dropped from the shared queue (asking again would wait again); if its process still holds
      // it, that process answers it at its timeout. Never handed out unconfirmed.
      const record = await this.#queue.abort(peer, false);
      return record === 'matched' ? matched() : false;
    });
  }

  /**
   * Another process claimed this process's waiter `id` and offers it a match: if its client is still
   * there, the claim is committed and the client answered. Returns what to tell that process.
   */
  async offered(id: string, offer: MatchOffer): Promise<'matched' | 'gone'> {
    const held = this.#host.tickets.get(id);
    // It may still be 'joining' here: queued in the shared queue and claimed before this process
    // has even read its own join's answer.
    if (held === undefined || held.settled) return 'gone';
    if (held.isGone()) {
      this.#host.settle(held, { kind: 'gone' });
      return 'gone';
    }
    // Only the claim of this offer's arrival: if that one gave up first, a claim made since by another
    // arrival is that arrival's to offer, and this offer is answered gone.
    if (!(await this.#queue.commit(held.waiter, offer.arrival.id))) return 'gone';
    if (held.result !== undefined) {
      // Its client went during the commit: take the match back before anybody is told of it.
      await this.#queue.abort(held.waiter, false);
      return 'gone';
    }
    if (held.state === 'queued') held.state = 'claimed';
    const { matchId, secret, arrival } = offer;
    this.#host.settle(held, { kind: 'matched', matchId, secret, peer: arrival, initiator: true, waitedMs: performance.now() - held.arrivedAt });
    return 'matched';
  }
}
