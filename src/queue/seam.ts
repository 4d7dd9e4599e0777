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
import type { AddressSource } from '../protocol/schemas.js';

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
  readonly via: AddressSource;
  readonly meta: Readonly<Record<string, unknown>> | undefined;
}

/**
 * Most used codes a backend remembers at once, whoever used them; past it the oldest are forgotten
 * before their time. What pairing codes can make a backend hold is bounded by it.
 */
export const MAX_REMEMBERED_CODES = 1_000_000;

export type QueueRefusal =
  /** The code already paired two clients or gathered a group, within its time to live. */
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
 * A request for a group of more than two (pairs take {@link MatchQueue.join}, their own hot path):
 * the same fields, and how many the group takes. Its room's key names the size (and min), so that
 * only requests asking for the same group gather together.
 */
export interface GatherRequest extends JoinRequest {
  /** Members of a full group, the caller included: 3 to MAX_GROUP_SIZE. */
  readonly size: number;
  /**
   * Fewest members a group may form with once its oldest waiter has waited `fillWaitMs`; equal to
   * `size` when the group forms full or not at all.
   */
  readonly min: number;
  readonly fillWaitMs: number;
  /** The id a group formed by this step gets (the match id): unique across processes. */
  readonly groupId: string;
}

/** Waiters taken out of their room together for one group, not yet committed or released. */
export interface GroupClaim {
  readonly groupId: string;
  /** The claimed waiters, oldest first (the caller of `gather` is not among them: it never waited). */
  readonly members: readonly Waiter[];
}

export type GatherStep =
  /** `group.members` were taken out of the room for the caller: commit the group, or release it. */
  | { readonly kind: 'claimed'; readonly group: GroupClaim }
  | { readonly kind: 'queued' }
  | { readonly kind: 'refused'; readonly refusal: QueueRefusal };

/** What {@link MatchQueue.fill} needs besides the waiter whose fill wait is over. */
export interface FillRequest {
  readonly size: number;
  readonly min: number;
  readonly byCode: boolean;
  readonly codeTtlMs: number;
  readonly groupId: string;
}

/**
 * A result now, or later. A backend whose steps need no I/O (in memory) answers at once, and the
 * lobby then pairs in the same turn, without a promise per step; a shared backend answers later.
 */
export type ValueOrPromise<T> = T | Promise<T>;

export interface MatchQueue extends Partial<GroupSteps> {
  /** Pop-or-push in one atomic step; see {@link JoinStep}. */
  join(request: JoinRequest): ValueOrPromise<JoinStep>;
  /**
   * Run by the process that holds the claimed `peer`, its client still there: the match stands, the
   * single commit point. `claimer` is the id of the arrival whose claim this is (its offer names it):
   * false when that claim was aborted first (the claimer gave up waiting), even if another arrival
   * has claimed `peer` since, so that a late offer never commits somebody else's claim.
   */
  commit(peer: Waiter, claimer: string): ValueOrPromise<boolean>;
  /** The claimer is done with a claim that was committed: forget it. */
  confirm(peer: Waiter): ValueOrPromise<void>;
  /**
   * The claimed `peer` could not be confirmed, or its owner did not answer. `matched` when its owner
   * had committed it (its answer was lost): the match stands. Otherwise the claim is undone:
   * `stillThere` (its owner may still hold it) puts it back where it was, else it is gone for good;
   * a code it marked used is free again, and the caller tries the next waiter.
   */
  abort(peer: Waiter, stillThere: boolean): ValueOrPromise<'aborted' | 'matched'>;
  /** A waiter leaves its room (timed out, client gone, shutdown). False when it was not waiting: claimed first. */
  cancel(waiter: Waiter): ValueOrPromise<boolean>;
  /** Stops using the backend (connections, timers). */
  close(): Promise<void>;
}

/**
 * The steps of groups of more than two. Every backend of pairup has them; a queue without them
 * (a test's stand-in) serves pairs alone.
 */
export interface GroupSteps {
  /**
   * Pop-or-push for a group, in one atomic step: claims the `size - 1` oldest waiters of distinct
   * connections (none the caller's), or, when `min < size`, as many as wait if they and the caller
   * are at least `min` and the oldest has waited `fillWaitMs`; otherwise queues the caller. A code
   * gathers one group, then is used (`code_used`) for `codeTtlMs`.
   */
  gather(request: GatherRequest): ValueOrPromise<GatherStep>;
  /**
   * `waiter` has waited its room's fill time (measured by its own process): if it still waits and
   * at least `min` waiters of distinct connections are there, claims them (up to `size`, oldest
   * first, `waiter` perhaps among them). Undefined when no group forms.
   */
  fill(waiter: Waiter, request: FillRequest): ValueOrPromise<GroupClaim | undefined>;
  /**
   * The single commit point of a group, run by the process that claimed it once every member was
   * confirmed still there: false when a member was withdrawn first ({@link MatchQueue.release}).
   */
  commitGroup(group: GroupClaim): ValueOrPromise<boolean>;
  /**
   * The claimer is done with a committed group whose members were all its own: forget it. (A group
   * with members of other processes is not confirmed: its record must outlive their holds, and a
   * shared backend lets it lapse.)
   */
  confirmGroup(group: GroupClaim): ValueOrPromise<void>;
  /**
   * Undoes a group that is not committed (`matched` when it was): `back` go back to their places at
   * the head of the room, `drop` are gone for good, and a code the group used is free again. Each
   * member is decided once, by the first call that names it; the group can no longer be committed.
   * A member's owner calls it too, with its own member alone, when its client leaves or times out.
   */
  release(group: GroupClaim, back: readonly Waiter[], drop: readonly Waiter[]): ValueOrPromise<'aborted' | 'matched'>;
}

/** A queue that gathers groups. */
export type GroupQueue = MatchQueue & GroupSteps;

/** Whether the queue gathers groups. */
export function gathersGroups(queue: MatchQueue): queue is GroupQueue {
  return typeof queue.gather === 'function';
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
export interface PeerLink extends Partial<GroupLink> {
  /** `waitMs`: the most the caller may wait for the answer (its client's time left); the link may wait less. */
  offer(peer: Waiter, offer: MatchOffer, waitMs: number): Promise<'matched' | 'gone' | 'unanswered'>;
}

/**
 * What the process forming a group offers the process holding one of its members: the group, in
 * index order (the oldest waiter first), and whether it formed with fewer than `size` (by `min`).
 */
export interface GroupOffer {
  readonly matchId: string;
  readonly secret: string;
  readonly members: readonly Waiter[];
  readonly size: number;
}

/**
 * How the process forming a group reaches the processes holding its members (a shared backend
 * brings it with its {@link PeerLink}). `hold`: is the member's client still there? (`ready`: it is,
 * and it is held for this group until `decide`, or until its owner asks the group's record.)
 */
export interface GroupLink {
  hold(member: Waiter, offer: GroupOffer, waitMs: number): Promise<'ready' | 'gone' | 'unanswered'>;
  /** Tells a ready member's process the group's fate; at most once (the record decides if it is lost). */
  decide(member: Waiter, groupId: string, decision: 'commit' | 'release'): void;
}

/** The queue backend cannot be reached: answered 503 `backend_unavailable`, never a crash or a hang. */
export class BackendUnavailableError extends Error {
  constructor(options?: ErrorOptions) {
    super('the queue backend is unreachable', options);
    this.name = 'BackendUnavailableError';
  }
}
