import { randomBytes, randomUUID } from 'node:crypto';
import {
  BackendUnavailableError,
  gathersGroups,
  type GroupOffer,
  type JoinStep,
  type MatchOffer,
  type MatchQueue,
  type PeerLink,
  type ValueOrPromise,
  type Waiter,
} from '../queue/seam.js';
import { Gathering } from './gathering.js';
import { RemotePairs } from './remote-pairs.js';
import { after, no, yes } from './later.js';
import { matchSecret } from './secrets.js';
import { Ticket } from './ticket.js';
import { roomKey, type JoinRequest, type Limits, type LobbyObserver, type Outcome } from './types.js';

export interface LobbyOptions {
  /** The queue backend, shared with other processes or not: the lobby does not build it. */
  readonly queue: MatchQueue;
  readonly limits: Limits;
  readonly observer?: LobbyObserver;
  /** This process's name in the queue; random by default. */
  readonly owner?: string;
  /** Told of a queue failure that ended a request: for the log. */
  readonly onError?: (error: unknown) => void;
  /** How to reach the processes holding waiters this one claims (with a shared backend). */
  readonly peers?: PeerLink;
  /** The key match secrets are derived under (shared by processes sharing a backend); random by default. */
  readonly secretKey?: Buffer;
  /** How long a member held for another process's group waits for word of its fate; default {@link GROUP_HOLD_MS}. */
  readonly groupHoldMs?: number;
}

/**
 * The waiting room of one process: admits requests, pairs them through the queue, and settles every
 * ticket exactly once. Settling is the one place that takes a ticket out of its room, clears its
 * timer and stops watching its client.
 *
 * A pairing is made in two steps: the queue's atomic join claims the oldest acceptable waiter, then
 * the lobby confirms it: both clients still there, both answered, and only then the claim committed.
 * A claimed waiter whose client is gone is dropped and the next one claimed.
 */
export class Lobby {
  readonly owner: string;
  readonly #queue: MatchQueue;
  readonly #limits: Limits;
  readonly #observer: LobbyObserver | undefined;
  readonly #onError: (error: unknown) => void;
  readonly #peers: PeerLink | undefined;
  readonly #secretKey: Buffer;
  /** This process's tickets that are joining or waiting, by id. */
  readonly #tickets = new Map<string, Ticket>();
  /** Pairs whose waiter another process holds, and this process's waiters offered to arrivals of others. */
  readonly #remote: RemotePairs;
  /** Groups of more than two (with a queue that gathers them: every backend of pairup). */
  readonly #gathering: Gathering | undefined;
  #waiting = 0;
  #joined = 0;
  #closing = false;

  constructor(options: LobbyOptions) {
    this.#queue = options.queue;
    this.#limits = options.limits;
    this.#observer = options.observer;
    this.#onError = options.onError ?? (() => undefined);
    this.#peers = options.peers;
    this.#secretKey = options.secretKey ?? randomBytes(32);
    this.owner = options.owner ?? randomBytes(6).toString('base64url');
    const host = {
      owner: this.owner,
      tickets: this.#tickets,
      settle: (ticket: Ticket, outcome: Outcome) => this.#settle(ticket, outcome),
      queued: (ticket: Ticket, request: JoinRequest) => this.#queued(ticket, request),
      fail: (ticket: Ticket, error: unknown) => this.#fail(ticket, error),
      report: this.#report,
      mayWait: () => this.#waiting < this.#limits.maxWaiting,
    };
    const { queue, limits, peers, groupHoldMs } = options;
    this.#remote = new RemotePairs(host, queue, peers, this.#secretKey);
    const hold = groupHoldMs === undefined ? {} : { groupHoldMs };
    this.#gathering = gathersGroups(queue) ? new Gathering(host, { queue, limits, peers, secretKey: this.#secretKey, ...hold }) : undefined;
  }

  /** Clients of this process waiting for a partner now (queued, or on their way into the queue). */
  get waiting(): number {
    return this.#tickets.size;
  }

  get closing(): boolean {
    return this.#closing;
  }

  /**
   * The secret of match `matchId` of `app`'s clients, a group's of `size` members (derived, nothing is
   * kept): to check a partner's proof of it.
   */
  secretOf(matchId: string, app?: string, size?: number): string {
    return matchSecret(this.#secretKey, matchId, app, size);
  }

  /** This process's ticket of that id, while it is joining or waiting. */
  ticket(id: string): Ticket | undefined {
    return this.#tickets.get(id);
  }

  /**
   * Pairs the request with the oldest live waiter of its room from another connection, or queues it
   * until a partner comes, its timeout passes, its client goes or the server closes. A refusal
   * (`code_used`, `full`, …) is an outcome like the others.
   *
   * A code pairs exactly two clients: once it has made a match it is refused (`code_used`) for
   * CODE_TTL_MS from that match, and refusals do not extend that. A code its own connection is
   * already waiting on is refused too (`code_taken`): it cannot be its own partner.
   */
  join(request: JoinRequest): Ticket {
    const waiter: Waiter = {
      id: `${this.owner}.${++this.#joined}`,
      room: roomKey(request.room),
      // Connection ids are this process's own: shared with other processes, they are told apart by owner.
      connection: this.#peers === undefined ? request.connection : `${this.owner}/${request.connection}`,
      limitKey: request.limitKey,
      owner: this.owner,
      address: request.address,
      via: request.via,
      meta: request.meta,
      relay: request.relay, // undefined for HTTP: left out of what the queue stores
    };
    const ticket = new Ticket(request, waiter);
    if (this.#closing) {
      this.#settle(ticket, { kind: 'refused', refusal: 'closing' });
      return ticket;
    }
    this.#tickets.set(waiter.id, ticket);
    try {
      // With a backend that answers at once, the ticket is paired, queued or refused by the time
      // join returns (and no closure or promise is made for it).
      const pairing = request.room.size === undefined ? this.#pair(ticket, request) : this.#gather(ticket, request);
      if (pairing instanceof Promise) pairing.catch((error: unknown) => this.#fail(ticket, error));
    } catch (error) {
      this.#fail(ticket, error);
    }
    return ticket;
  }

  #fail(ticket: Ticket, error: unknown): void {
    // An unreachable backend is reported once by the backend itself, not once per request.
    this.#report(error);
    this.#settle(ticket, { kind: 'failed', error });
  }

  /**
   * The queue backend went away: every client of this process waiting or joining is answered now
   * (503 `backend_unavailable`), once, rather than left hanging on a queue nobody can reach.
   */
  fail(error: unknown): number {
    return this.#settleAll({ kind: 'failed', error });
  }

  /** Answers every waiter `shutdown` and refuses new requests from now on. Returns how many. */
  close(): number {
    this.#closing = true;
    return this.#settleAll({ kind: 'shutdown' });
  }

  #settleAll(outcome: Outcome): number {
    const tickets = [...this.#tickets.values()];
    for (const ticket of tickets) this.#settle(ticket, outcome);
    return tickets.length;
  }

  /** Joins the queue until the ticket is paired, queued or refused; a promise only when the backend answers later. */
  #pair(ticket: Ticket, request: JoinRequest): ValueOrPromise<void> {
    for (;;) {
      const step = this.#queue.join({
        waiter: ticket.waiter,
        byCode: request.room.kind === 'code',
        mayWait: this.#waiting < this.#limits.maxWaiting,
        maxPerKey: this.#limits.maxWaitingPerIp,
        codeTtlMs: this.#limits.codeTtlMs,
        waitMs: request.timeoutMs,
      });
      const done = step instanceof Promise ? step.then((s) => this.#take(ticket, request, s)) : this.#take(ticket, request, step);
      if (done instanceof Promise) return done.then((d) => (d ? undefined : this.#pair(ticket, request)));
      if (done) return;
    }
  }

  /** Acts on one step of the queue. True when the ticket is done with joining; false: try again. */
  #take(ticket: Ticket, request: JoinRequest, step: JoinStep): ValueOrPromise<boolean> {
    switch (step.kind) {
      case 'refused':
        this.#settle(ticket, { kind: 'refused', refusal: step.refusal });
        return true;
      case 'queued':
        this.#queued(ticket, request);
        return true;
      case 'claimed':
        return this.#confirm(step.peer, ticket, request.timeoutMs);
    }
  }

  /** The join queued the ticket: it waits, timed and watched, unless it ended meanwhile. */
  #queued(ticket: Ticket, request: JoinRequest): void {
    if (ticket.settled) {
      // Settled while its join was in flight (shutdown): out of the room again.
      this.#cancel(ticket.waiter);
      return;
    }
    ticket.state = 'queued';
    this.#waiting++;
    this.#observer?.queued(ticket.room);
    if (ticket.isGone()) {
      this.#settle(ticket, { kind: 'gone' });
      return;
    }
    const leftMs = Math.max(1, Math.ceil(request.timeoutMs - (performance.now() - ticket.arrivedAt)));
    ticket.timer = setTimeout(this.#onTimeout, leftMs, ticket);
    ticket.unwatch = request.watch(() => this.#settle(ticket, { kind: 'gone' }));
    request.queued?.();
  }

  /**
   * Pairs `arrival` with the claimed `peer` if both clients are still there: both are answered, then
   * the claim is committed. False when the peer could not be confirmed (try the next one).
   */
  #confirm(peer: Waiter, arrival: Ticket, timeoutMs: number): ValueOrPromise<boolean> {
    if (arrival.settled || arrival.isGone()) {
      // The arrival itself left (or the server is closing): the peer waits on, where it was.
      this.#settle(arrival, { kind: 'gone' });
      return after(this.#queue.abort(peer, true), yes);
    }
    if (peer.owner !== this.owner) return this.#remote.confirm(peer, arrival, timeoutMs);
    const held = this.#tickets.get(peer.id);
    if (held === undefined || held.settled || held.isGone()) {
      // Its client left before the close event reached us (or it ended while claimed): never handed out.
      if (held !== undefined) {
        held.state = 'claimed';
        this.#settle(held, { kind: 'gone' });
      }
      return after(this.#queue.abort(peer, false), no);
    }
    // Both are here: both are answered, in this same turn, then the claim is committed.
    held.state = 'claimed';
    const matchId = randomUUID();
    const secret = matchSecret(this.#secretKey, matchId, arrival.room.app);
    const now = performance.now();
    this.#settle(held, { kind: 'matched', matchId, secret, peer: arrival.waiter, initiator: true, waitedMs: now - held.arrivedAt });
    this.#settle(arrival, { kind: 'matched', matchId, secret, peer, initiator: false, waitedMs: now - arrival.arrivedAt });
    return after(this.#queue.confirm(peer), yes);
  }

  /**
   * Another process claimed this process's waiter `id` and offers it a match: if its client is still
   * there, the claim is committed and the client answered. Returns what to tell that process.
   */
  offered(id: string, offer: MatchOffer): Promise<'matched' | 'gone'> {
    return this.#remote.offered(id, offer);
  }

  readonly #onTimeout = (ticket: Ticket): void => {
    // A group's member held for its group is answered by the group's record first.
    if (ticket.room.size !== undefined && this.#gathering?.timedOut(ticket) === true) return;
    this.#settle(ticket, { kind: 'timeout', waitedMs: performance.now() - ticket.arrivedAt });
  };

  /**
   * The one place a ticket ends: its outcome set (first one wins), its timer cleared, its client no
   * longer watched, no longer counted as waiting, and out of its room (unless a claim took it out).
   */
  #settle(ticket: Ticket, outcome: Outcome): void {
    if (!ticket.settleOnce(outcome)) return;
    this.#tickets.delete(ticket.id);
    clearTimeout(ticket.timer);
    ticket.unwatch?.();
    ticket.timer = ticket.unwatch = undefined;
    // Group members alone: pairs never have a hold or a fill timer.
    if (ticket.room.size !== undefined) this.#gathering?.settling(ticket, outcome);
    const { state } = ticket;
    ticket.state = 'done';
    const waited = state === 'queued' || state === 'claimed';
    if (waited) this.#waiting--;
    if (state === 'queued') this.#cancel(ticket.waiter);
    this.#observer?.settled(ticket.room, outcome, waited);
  }

  #gather(ticket: Ticket, request: JoinRequest): ValueOrPromise<void> {
    if (this.#gathering === undefined) throw new Error('this queue backend does not gather groups');
    return this.#gathering.gather(ticket, request);
  }

  /**
   * Another process forms a group with this process's waiter `id`: if its client is still there it
   * is held for that group (`ready`) until word of the group's fate comes ({@link Lobby.decided}),
   * or, without word in time, until the group's record says.
   */
  held(id: string, offer: GroupOffer): 'ready' | 'gone' {
    return this.#gathering?.held(id, offer) ?? 'gone';
  }

  /** Word of the fate of the group this process's waiter `id` is held for. */
  decided(id: string, groupId: string, decision: 'commit' | 'release'): void {
    this.#gathering?.decided(id, groupId, decision);
  }

  #cancel(waiter: Waiter): void {
    try {
      const cancelled = this.#queue.cancel(waiter);
      if (cancelled instanceof Promise) cancelled.catch(this.#report);
    } catch (error) {
      this.#report(error);
    }
  }

  /**
   * A queue failure nobody is waiting on. An unreachable backend was reported once already; the entry
   * left behind is dropped by the first process that claims it (its owner answers "gone").
   */
  readonly #report = (error: unknown): void => {
    if (!(error instanceof BackendUnavailableError)) this.#onError(error);
  };
}
