/**
 * The queue seam: everything the processes serving one set of pools must agree on, on plain data
 * (ids, strings, numbers; no closures, no object identity), so that a backend shared across
 * processes (Redis) is one more implementation of this interface. The in-memory backend
 * (`memory.ts`) is the default.
 *
 * The only way into a room is {@link MatchQueue.join}: one atomic step that either claims the oldest
 * acceptable waiter or queues the caller. There is no separate "is anyone waiting?" question a caller
 * could act on later, so the check-then-act race cannot be written.
 */

/** A client waiting for a partner, as the queue keeps it. Plain data: it may cross a network. */
export interface Waiter {
  /** Unique across every process sharing the queue. */
  readonly id: string;
  /** The room's key: `pool:NAME` or `code:NAME`; pools and codes never share one. */
  readonly room: string;
  /** The client's connection: two requests of one connection are never paired. */
  readonly connection: string;
  /** What MAX_WAITING_PER_IP counts: the client's IP, or its IPv6 network. */
  readonly limitKey: string;
  /** The process that holds the client's request: only it can answer, so only it can confirm. */
  readonly owner: string;
  /** Its client can go on to relay signals to its partner (a WebSocket), not just hear the match (HTTP). */
  readonly relay?: true;
  /** What the partner is told: the client's address (`host:port`), where it came from, its meta. */
  readonly address: string;
  readonly via: 'socket' | 'x-forwarded-for';
  readonly meta: Readonly<Record<string, unknown>> | undefined;
}

export type QueueRefusal =
  /** The code already paired two clients, within its time to live. */
  | 'code_used'
  /** The caller's own connection already waits with this code. */
  | 'code_taken'
  /** The caller may not wait here (its process is full), and nobody was there to pair with. */
  | 'full'
  /** The caller's address already has `maxPerKey` clients waiting, and nobody was there to pair with. */
  | 'ip_limit';

export interface JoinRequest {
  readonly waiter: Waiter;
  /** A rendezvous code: pairs exactly two, then is used for `codeTtlMs`. */
  readonly byCode: boolean;
  /** Whether the caller may be queued (its process is under MAX_WAITING). */
  readonly mayWait: boolean;
  /** Most waiters of one limit key; 0: no limit. */
  readonly maxPerKey: number;
  readonly codeTtlMs: number;
  /**
   * How long the caller may wait (its timeout). A shared backend forgets a waiter whose process
   * never took it out (it died) a little after this.
   */
  readonly waitMs: number;
}

export type JoinStep =
  /**
   * `peer` was taken out of the room for the caller (and a code marked used): the caller must
   * {@link MatchQueue.confirm} it once its owner has answered it, or {@link MatchQueue.abort} it.
   */
  | { readonly kind: 'claimed'; readonly peer: Waiter }
  /** The caller waits in the room until claimed or cancelled. */
  | { readonly kind: 'queued' }
  | { readonly kind: 'refused'; readonly refusal: QueueRefusal };

/**
 * A result now, or later. A backend whose steps need no I/O (in memory) answers at once, and the
 * lobby then pairs in the same turn, without a promise per step; a shared backend answers later.
 */
export type Maybe<T> = T | Promise<T>;

export interface MatchQueue {
  /** Pop-or-push in one atomic step; see {@link JoinStep}. */
  join(request: JoinRequest): Maybe<JoinStep>;
  /**
   * Run by the process that holds the claimed `peer`, its client still there: the match stands, the
   * single commit point. False when the claim was aborted first (the claimer gave up waiting).
   */
  commit(peer: Waiter): Maybe<boolean>;
  /** The claimer is done with a claim that was committed: forget it. */
  confirm(peer: Waiter): Maybe<void>;
  /**
   * The claimed `peer` could not be confirmed, or its owner did not answer. `matched` when its owner
   * had committed it (its answer was lost): the match stands. Otherwise the claim is undone:
   * `stillThere` (its owner may still hold it) puts it back where it was, else it is gone for good;
   * a code it marked used is free again, and the caller tries the next waiter.
   */
  abort(peer: Waiter, stillThere: boolean): Maybe<'aborted' | 'matched'>;
  /** A waiter leaves its room (timed out, client gone, shutdown). False when it was not waiting: claimed first. */
  cancel(waiter: Waiter): Maybe<boolean>;
  /** Stops using the backend (connections, timers). */
  close(): Promise<void>;
}

/** What the arrival's process offers the process holding a claimed waiter: the match, if it still stands. */
export interface MatchOffer {
  readonly matchId: string;
  /** The match secret, for both partners. */
  readonly secret: string;
  /** Who the waiter's client is told its partner is. */
  readonly arrival: Waiter;
}

/**
 * How a process reaches the process that holds a waiter it claimed (a shared backend brings one).
 * `matched`: that process committed the claim and answered its client; `gone`: its client had left;
 * `unanswered`: no answer in time (a lost message, a process that died) — the claim record decides.
 */
export interface PeerLink extends RelayLink {
  offer(peer: Waiter, offer: MatchOffer): Promise<'matched' | 'gone' | 'unanswered'>;
}

/**
 * What matched WebSocket clients send each other through the server: a signal (its data as JSON
 * text, relayed unchanged), or word that the sender left.
 */
export type RelayMessage = { readonly t: 'signal'; readonly data: string } | { readonly t: 'left' };

/** How a message reaches a partner held by another process: at most once, in order per sender. */
export interface RelayLink {
  relay(owner: string, to: string, message: RelayMessage): void;
}

/** The queue backend cannot be reached: answered 503 `backend_unavailable`, never a crash or a hang. */
export class BackendUnavailableError extends Error {
  constructor(options?: ErrorOptions) {
    super('the queue backend is unreachable', options);
    this.name = 'BackendUnavailableError';
  }
}
