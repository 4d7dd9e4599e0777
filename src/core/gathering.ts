/**
 * Groups of more than two, in the process that holds some of their members: gathering through the
 * queue, confirming every member (those of this process here, those of others through their
 * processes, which hold them), committing once, and answering each member by settling its ticket
 * through the lobby, the one place a ticket ends. Pairs never come here.
 *
 * All or nothing: a group is committed only once every member was confirmed still there, and a
 * member that leaves or times out while held withdraws itself from the group first (the queue's
 * record decides which came first). A member found gone is dropped; the others go back to their
 * places; the arrival (or the waiter whose fill time came) tries again.
 */
import { randomUUID } from 'node:crypto';
import type { GatherStep, GroupClaim, GroupOffer, GroupQueue, PeerLink, ValueOrPromise, Waiter } from '../queue/seam.js';
import { after, chain, no, yes } from './later.js';
import { matchSecret } from './secrets.js';
import type { Ticket } from './ticket.js';
import type { JoinRequest, Limits, Outcome } from './types.js';

/** FILL_WAIT_MS when the limits do not say. */
const DEFAULT_FILL_WAIT_MS = 10_000;
/**
 * How long a member held for a group formed by another process waits for word of its fate before
 * it asks the group's record itself (the word may be lost: pub/sub is at most once). Longer than the
 * forming process waits for every member's answer (redis-link.ts OFFER_TIMEOUT_MS).
 */
export const GROUP_HOLD_MS = 5000;
/** How soon a waiter whose fill time came while it was held for a group looks again. */
const FILL_RETRY_MS = 100;

/** A member of this process held for a group being formed, until the group is committed or released. */
interface Hold {
  readonly group: GroupClaim;
  readonly offer: GroupOffer;
  timer: NodeJS.Timeout | undefined;
}

/** What the gathering uses of the lobby: its tickets, and the one way to end one. */
export interface GatheringHost {
  readonly owner: string;
  readonly tickets: ReadonlyMap<string, Ticket>;
  settle(ticket: Ticket, outcome: Outcome): void;
  /** The join queued the ticket: it waits, timed and watched. */
  queued(ticket: Ticket, request: JoinRequest): void;
  fail(ticket: Ticket, error: unknown): void;
  /** A failure nobody waits on, for the log. */
  readonly report: (error: unknown) => void;
  /** Whether this process may hold one more waiter (MAX_WAITING). */
  mayWait(): boolean;
}

export interface GatheringOptions {
  readonly queue: GroupQueue;
  readonly limits: Limits;
  readonly peers: PeerLink | undefined;
  readonly secretKey: Buffer;
  readonly groupHoldMs?: number;
}

export class Gathering {
  readonly #host: GatheringHost;
  readonly #queue: GroupQueue;
  readonly #limits: Limits;
  readonly #peers: PeerLink | undefined;
  readonly #secretKey: Buffer;
  readonly #fillWaitMs: number;
  readonly #groupHoldMs: number;
  /** This process's members held for a group being formed, by ticket id. */
  readonly #holds = new Map<string, Hold>();
  /** Fill timers of tickets waiting for a group that may form by `min`, by ticket id. */
  readonly #fills = new Map<string, NodeJS.Timeout>();

  constructor(host: GatheringHost, options: GatheringOptions) {
    this.#host = host;
    this.#queue = options.queue;
    this.#limits = options.limits;
    this.#peers = options.peers;
    this.#secretKey = options.secretKey;
    this.#fillWaitMs = options.limits.fillWaitMs ?? DEFAULT_FILL_WAIT_MS;
    this.#groupHoldMs = options.groupHoldMs ?? GROUP_HOLD_MS;
  }

  /**
   * Gathers the ticket's group: completes it with those waiting, or waits. A group that cannot be
   * confirmed (a member gone) is released, those still there keep their places, and the ticket tries
   * again. A promise only when the backend answers later.
   */
  gather(ticket: Ticket, request: JoinRequest): ValueOrPromise<void> {
    const queue = this.#queue;
    const { size = 2, min = size } = request.room;
    for (;;) {
      const step = queue.gather({
        waiter: ticket.waiter,
        byCode: request.room.kind === 'code',
        mayWait: this.#host.mayWait(),
        maxPerKey: this.#limits.maxWaitingPerIp,
        codeTtlMs: this.#limits.codeTtlMs,
        waitMs: request.timeoutMs,
        size,
        min,
        fillWaitMs: this.#fillWaitMs,
        groupId: randomUUID(),
      });
      const done = step instanceof Promise ? step.then((s) => this.#takeGroup(ticket, request, s)) : this.#takeGroup(ticket, request, step);
      if (done instanceof Promise) return done.then((d) => (d ? undefined : this.gather(ticket, request)));
      if (done) return;
    }
  }

  #takeGroup(ticket: Ticket, request: JoinRequest, step: GatherStep): ValueOrPromise<boolean> {
    switch (step.kind) {
      case 'refused':
        this.#host.settle(ticket, { kind: 'refused', refusal: step.refusal });
        return true;
      case 'queued':
        this.#host.queued(ticket, request);
        // With a min, its own wait (timed here, never by another machine's clock) may form the group.
        if (request.room.min !== undefined && !ticket.settled) this.#fills.set(ticket.id, setTimeout(this.#onFill, this.#fillWaitMs, ticket));
        return true;
      case 'claimed':
        return this.#form(step.group, ticket, request.room.app, request.timeoutMs);
    }
  }

  /** The ticket has waited FILL_WAIT_MS: its room's group forms now with those present, if they are `min` or more. */
  readonly #onFill = (ticket: Ticket): void => {
    this.#fills.delete(ticket.id);
    if (ticket.settled) return;
    // Held for a group just now: look again shortly, in case that group is released.
    if (this.#holds.has(ticket.id)) {
      this.#fills.set(ticket.id, setTimeout(this.#onFill, FILL_RETRY_MS, ticket));
      return;
    }
    try {
      const filling = this.#fill(ticket);
      if (filling instanceof Promise) filling.catch(this.#host.report);
    } catch (error) {
      this.#host.report(error);
    }
  };

  #fill(ticket: Ticket): ValueOrPromise<void> {
    const queue = this.#queue;
    const { room } = ticket;
    if (room.size === undefined || room.min === undefined) return;
    const request = { size: room.size, min: room.min, byCode: room.kind === 'code', codeTtlMs: this.#limits.codeTtlMs };
    for (;;) {
      if (ticket.settled || this.#holds.has(ticket.id)) return;
      const group = queue.fill(ticket.waiter, { ...request, groupId: randomUUID() });
      const done = after(group, (g) => (g === undefined ? true : this.#form(g, undefined, room.app, Number.MAX_SAFE_INTEGER)));
      if (done instanceof Promise) return done.then((d) => (d ? undefined : this.#fill(ticket)));
      if (done) return;
    }
  }

  /**
   * Confirms a claimed group: every member (and the arrival, if one made it) still there, then the
   * group committed once, then every member answered, each by its own process. Members of this
   * process are checked here; those of other processes are held by their processes first (`hold`).
   * True when done; false when the group was released (a member gone): try again.
   */
  #form(group: GroupClaim, arrival: Ticket | undefined, app: string | undefined, timeoutMs: number): ValueOrPromise<boolean> {
    const queue = this.#queue;
    if (arrival !== undefined && (arrival.settled || arrival.isGone())) {
      // The arrival itself left: every member waits on, where it was.
      this.#host.settle(arrival, { kind: 'gone' });
      return after(queue.release(group, group.members, []), yes);
    }
    const local: Ticket[] = [];
    const remote: Waiter[] = [];
    const gone: Waiter[] = [];
    for (const member of group.members) {
      if (member.owner !== this.#host.owner) {
        remote.push(member);
        continue;
      }
      const held = this.#host.tickets.get(member.id);
      if (held === undefined || held.settled || held.isGone()) {
        // Its client left before its close event reached us: never handed out.
        if (held !== undefined && !held.settled) {
          this.#holds.delete(held.id); // a hold of a group released before: it was put back since
          if (held.state === 'queued') held.state = 'claimed';
          this.#host.settle(held, { kind: 'gone' });
        }
        gone.push(member);
      } else local.push(held);
    }
    if (gone.length > 0) {
      const back = group.members.filter((member) => !gone.includes(member));
      return after(queue.release(group, back, gone), (result) => (result === 'matched' ? yes() : no()));
    }
    const members = arrival === undefined ? group.members : [...group.members, arrival.waiter];
    const offer: GroupOffer = { matchId: group.groupId, secret: matchSecret(this.#secretKey, group.groupId, app, members.length), members, size: members.length };
    for (const ticket of local) this.#hold(ticket, group, offer);
    if (remote.length === 0) return this.#decide(group, offer, local, [], [], arrival, Infinity);
    const peers = this.#peers;
    const hold = peers?.hold;
    if (peers === undefined || hold === undefined) {
      for (const ticket of local) this.#unhold(ticket, group);
      return after(queue.release(group, group.members, []), () => {
        throw new Error(`group ${group.groupId} has members held by other processes, which this lobby cannot reach`);
      });
    }
    const deadline = arrival === undefined ? Infinity : arrival.arrivedAt + timeoutMs;
    const waitMs = arrival === undefined ? Number.MAX_SAFE_INTEGER : deadline - performance.now();
    return Promise.all(remote.map((member) => hold.call(peers, member, offer, waitMs))).then((answers) => {
      const ready = remote.filter((_, i) => answers[i] === 'ready');
      return this.#decide(group, offer, local, remote, ready, arrival, deadline);
    });
  }

  /** Every answer is in: commit the group if every member is still there, or release it. */
  #decide(group: GroupClaim, offer: GroupOffer, local: readonly Ticket[], remote: readonly Waiter[], ready: readonly Waiter[], arrival: Ticket | undefined, deadline: number): ValueOrPromise<boolean> {
    const queue = this.#queue;
    // A held member of this process that left (or timed out) since has withdrawn it from the group.
    const stillHeld = local.filter((ticket) => this.#holds.get(ticket.id)?.group === group);
    const arrivalHere = arrival === undefined || (!arrival.settled && !arrival.isGone() && performance.now() < deadline);
    const release = (): ValueOrPromise<boolean> => {
      const back = [...stillHeld.map((ticket) => ticket.waiter), ...ready];
      const drop = group.members.filter((member) => !back.includes(member));
      return chain(queue.release(group, back, drop), (result) => {
        if (result === 'matched') return this.#committed(group, offer, stillHeld, ready, arrival);
        for (const ticket of stillHeld) this.#unhold(ticket, group);
        for (const member of ready) this.#peers?.decide?.(member, group.groupId, 'release');
        if (arrival !== undefined && !arrival.settled && performance.now() >= deadline - 1) {
          this.#host.settle(arrival, { kind: 'timeout', waitedMs: performance.now() - arrival.arrivedAt });
          return true;
        }
        // The arrival left meanwhile: done. Otherwise it tries again (the gone members are dropped).
        return arrival?.settled === true;
      });
    };
    if (stillHeld.length < local.length || ready.length < remote.length || !arrivalHere) return release();
    return chain(queue.commitGroup(group), (committed) => (committed ? this.#committed(group, offer, stillHeld, ready, arrival) : release()));
  }

  /** The group stands: every member of this process and the arrival answered, the others' processes told. */
  #committed(group: GroupClaim, offer: GroupOffer, local: readonly Ticket[], remote: readonly Waiter[], arrival: Ticket | undefined): ValueOrPromise<boolean> {
    for (const ticket of local) this.#host.settle(ticket, this.#grouped(offer, ticket));
    if (arrival !== undefined) this.#host.settle(arrival, this.#grouped(offer, arrival));
    for (const member of remote) this.#peers?.decide?.(member, group.groupId, 'commit');
    // A member held by another process may miss the word and ask the record: it is left to lapse then.
    return remote.length === 0 ? after(this.#queue.confirmGroup(group), yes) : true;
  }

  #grouped(offer: GroupOffer, ticket: Ticket): Extract<Outcome, { kind: 'grouped' }> {
    const index = offer.members.findIndex((member) => member.id === ticket.id);
    return { kind: 'grouped', matchId: offer.matchId, secret: offer.secret, members: offer.members, index, waitedMs: performance.now() - ticket.arrivedAt };
  }

  /** Holds a member of this process for a group: out of its room (claimed), its timeout and leaving now withdraw it first. */
  #hold(ticket: Ticket, group: GroupClaim, offer: GroupOffer): Hold {
    const previous = this.#holds.get(ticket.id);
    // Held for a group before and claimed again: that group released it (it was put back), whatever word was lost.
    if (previous !== undefined) clearTimeout(previous.timer);
    if (ticket.state === 'queued') ticket.state = 'claimed';
    const hold: Hold = { group, offer, timer: undefined };
    this.#holds.set(ticket.id, hold);
    return hold;
  }

  /**
   * `group` was released and the member put back in its room: it waits again, unless another group
   * has claimed it since (the release's answer can come after that group's hold): that hold stays.
   */
  #unhold(ticket: Ticket, group: GroupClaim): void {
    const hold = this.#holds.get(ticket.id);
    if (hold === undefined || hold.group.groupId !== group.groupId) return;
    clearTimeout(hold.timer);
    this.#holds.delete(ticket.id);
    if (ticket.state === 'claimed') ticket.state = 'queued';
  }

  /**
   * A group's ticket is being settled: its fill timer stops, and if it is held, unless this is the
   * group's answer, it is withdrawn from the group (which then cannot commit).
   */
  settling(ticket: Ticket, outcome: Outcome): void {
    if (this.#fills.size > 0) {
      clearTimeout(this.#fills.get(ticket.id));
      this.#fills.delete(ticket.id);
    }
    const hold = this.#holds.get(ticket.id);
    if (hold === undefined) return;
    clearTimeout(hold.timer);
    this.#holds.delete(ticket.id);
    if (outcome.kind === 'grouped') return;
    // Committed first: the others were answered with it as a member; its request may tell them it left.
    const late = (result: 'aborted' | 'matched'): void => {
      if (result === 'matched') ticket.lateGroup?.(this.#grouped(hold.offer, ticket));
    };
    try {
      const released = this.#queue.release(hold.group, [], [ticket.waiter]);
      if (released instanceof Promise) released.then(late, this.#host.report);
      else late(released);
    } catch (error) {
      this.#host.report(error);
    }
  }

  /**
   * A group's ticket timed out. True when it is held: it is answered the group's answer if that was
   * committed first, else `timeout` (and withdrawn); false: an ordinary timeout.
   */
  timedOut(ticket: Ticket): boolean {
    const hold = this.#holds.get(ticket.id);
    if (hold === undefined) return false;
    clearTimeout(hold.timer);
    this.#holds.delete(ticket.id);
    const timedOut = (result: 'aborted' | 'matched'): void => {
      this.#host.settle(ticket, result === 'matched' ? this.#grouped(hold.offer, ticket) : { kind: 'timeout', waitedMs: performance.now() - ticket.arrivedAt });
    };
    try {
      const released = this.#queue.release(hold.group, [], [ticket.waiter]);
      if (released instanceof Promise) released.then(timedOut, (error: unknown) => this.#host.fail(ticket, error));
      else timedOut(released);
    } catch (error) {
      this.#host.fail(ticket, error);
    }
    return true;
  }

  /**
   * Another process forms a group with this process's waiter `id`: if its client is still there it
   * is held for that group (`ready`) until word of the group's fate comes ({@link Lobby.decided}),
   * or, without word in time, until the group's record says.
   */
  held(id: string, offer: GroupOffer): 'ready' | 'gone' {
    const ticket = this.#host.tickets.get(id);
    if (ticket === undefined || ticket.settled) return 'gone';
    if (ticket.isGone()) {
      this.#holds.delete(id);
      this.#host.settle(ticket, { kind: 'gone' });
      return 'gone';
    }
    const hold = this.#hold(ticket, { groupId: offer.matchId, members: offer.members }, offer);
    hold.timer = setTimeout(this.#holdExpired, this.#groupHoldMs, ticket, hold);
    return 'ready';
  }

  /** Word of the fate of the group this process's waiter `id` is held for. */
  decided(id: string, groupId: string, decision: 'commit' | 'release'): void {
    const hold = this.#holds.get(id);
    const ticket = this.#host.tickets.get(id);
    if (hold === undefined || ticket === undefined || hold.group.groupId !== groupId) return;
    if (decision === 'commit') this.#host.settle(ticket, this.#grouped(hold.offer, ticket));
    else this.#unhold(ticket, hold.group);
  }

  /** No word came: the group's record decides (committed: answered; otherwise withdrawn, and put back if its client is still there). */
  readonly #holdExpired = (ticket: Ticket, hold: Hold): void => {
    if (this.#holds.get(ticket.id) !== hold) return;
    hold.timer = undefined;
    const here = !ticket.isGone();
    const decide = (result: 'aborted' | 'matched'): void => {
      if (this.#holds.get(ticket.id) !== hold) return;
      if (result === 'matched') this.#host.settle(ticket, this.#grouped(hold.offer, ticket));
      else if (here) this.#unhold(ticket, hold.group);
      else {
        this.#holds.delete(ticket.id);
        this.#host.settle(ticket, { kind: 'gone' });
      }
    };
    const released = this.#queue.release(hold.group, here ? [ticket.waiter] : [], here ? [] : [ticket.waiter]);
    if (released instanceof Promise) released.then(decide, (error: unknown) => this.#host.fail(ticket, error));
    else decide(released);
  };
}
