import { randomFillSync, randomUUID } from 'node:crypto';
import type { AddressSource } from './address.js';
import type { MatchQueue, Slot, Verdict } from './matchmaker.js';

/**
 * Where a client waits: a pool (anyone in it may be its partner) or a rendezvous code (only the one
 * other client presenting the same code may be). Pools and codes are separate namespaces.
 */
export interface Room {
  readonly kind: 'pool' | 'code';
  readonly name: string;
}

const SECRET_BYTES = 32;
// Match secrets are cut from a block of random bytes refilled 128 secrets at a time (as Node does for
// randomUUID): one call into the CSPRNG per 128 matches instead of one per match. Bytes handed out
// are zeroed in the block.
const randomBlock = Buffer.alloc(SECRET_BYTES * 128);
let randomOffset = randomBlock.length;

/** 32 fresh random bytes, base64url. */
function newSecret(): string {
  if (randomOffset === randomBlock.length) {
    randomFillSync(randomBlock);
    randomOffset = 0;
  }
  const end = randomOffset + SECRET_BYTES;
  const secret = randomBlock.toString('base64url', randomOffset, end);
  randomBlock.fill(0, randomOffset, end);
  randomOffset = end;
  return secret;
}

/** Most used codes remembered at once; past it the oldest are forgotten before their time. */
export const MAX_REMEMBERED_CODES = 1_000_000;

/** What a client is asking for, as the route has validated it. */
export interface JoinRequest {
  readonly room: Room;
  /** What MAX_WAITING_PER_IP counts: the client's IP, or its IPv6 network (src/address.ts limitKey). */
  readonly ip: string;
  /** Observed address as shown to the partner (`host:port`). */
  readonly address: string;
  /**
   * Where the address came from: the connection itself, or X-Forwarded-For from a trusted proxy
   * (then the port is the proxy's connection's, not the client's).
   */
  readonly via: AddressSource;
  /** Identity of the client's connection: two requests on one connection are never paired. */
  readonly connection: object;
  readonly meta: Record<string, unknown> | undefined;
  readonly timeoutMs: number;
  /** True once the client is known to have gone, even before its close event has run. */
  readonly isGone: () => boolean;
  /** Calls `onGone` when the client goes away; returns the function that stops watching. */
  readonly watch: (onGone: () => void) => () => void;
}

/** How a ticket ended. Exactly one per ticket; the first to happen wins. */
export type Outcome =
  | {
      readonly kind: 'matched';
      readonly matchId: string;
      /** 32 random bytes, base64url, the same for both partners: for them alone, never logged. */
      readonly secret: string;
      readonly peer: Ticket;
      /** True for the partner that was waiting, false for the one whose arrival made the match. */
      readonly initiator: boolean;
      readonly waitedMs: number;
    }
  | { readonly kind: 'timeout'; readonly waitedMs: number }
  | { readonly kind: 'gone' }
  | { readonly kind: 'shutdown' };

export type Refusal = 'closing' | 'full' | 'ip_limit' | 'code_used' | 'code_taken';

export interface Limits {
  readonly maxWaiting: number;
  /** 0: no per-IP limit. */
  readonly maxWaitingPerIp: number;
  /** How long a code that made a match stays used (refused to everyone). */
  readonly codeTtlMs: number;
  /** Most used codes remembered; default {@link MAX_REMEMBERED_CODES}. */
  readonly maxRememberedCodes?: number;
}

/** What the lobby tells whoever measures it (metrics). Called synchronously; must not throw. */
export interface LobbyObserver {
  /** A ticket was queued to wait for a partner. */
  queued(ticket: Ticket): void;
  /** A ticket was settled; `wasQueued` when it had been waiting in its room. */
  settled(ticket: Ticket, outcome: Outcome, wasQueued: boolean): void;
  /** A request was refused before it could wait. */
  refused(room: Room, refusal: Refusal): void;
}

/**
 * One client's request for a partner. Its outcome is settled exactly once, by the lobby; the
 * route that created it is the only code that writes its reply.
 */
export class Ticket {
  readonly room: Room;
  /** The room's queue: pools and codes never share one. */
  readonly key: string;
  readonly ip: string;
  readonly address: string;
  readonly via: AddressSource;
  readonly connection: object;
  readonly meta: Record<string, unknown> | undefined;
  readonly arrivedAt = performance.now();
  readonly outcome: Promise<Outcome>;
  readonly #isGone: () => boolean;
  #resolve!: (outcome: Outcome) => void;
  #settled = false;
  // Set only while the ticket waits in a pool.
  slot: Slot<Ticket> | undefined = undefined;
  timer: NodeJS.Timeout | undefined = undefined;
  unwatch: (() => void) | undefined = undefined;

  constructor(request: JoinRequest) {
    this.room = request.room;
    this.key = `${request.room.kind}:${request.room.name}`;
    this.ip = request.ip;
    this.address = request.address;
    this.via = request.via;
    this.connection = request.connection;
    this.meta = request.meta;
    this.#isGone = request.isGone;
    this.outcome = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  get settled(): boolean {
    return this.#settled;
  }

  isGone(): boolean {
    return this.#isGone();
  }

  /** First call wins and returns true; later calls do nothing. Only the lobby calls this. */
  settleOnce(outcome: Outcome): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    this.#resolve(outcome);
    return true;
  }
}

/**
 * The waiting room: admits requests, pairs them through the match queue, and settles every ticket
 * exactly once. Settling is the one place that takes a ticket out of its pool, clears its timer and
 * stops watching its client.
 */
export class Lobby {
  readonly #queue: MatchQueue<Ticket>;
  readonly #limits: Limits;
  readonly #observer: LobbyObserver | undefined;
  readonly #waitingByIp = new Map<string, number>();
  /** Codes that made a match, with when they may be used again; oldest first (one TTL for all). */
  readonly #usedCodes = new Map<string, number>();
  #closing = false;

  constructor(queue: MatchQueue<Ticket>, limits: Limits, observer?: LobbyObserver) {
    this.#queue = queue;
    this.#limits = limits;
    this.#observer = observer;
  }

  /** Clients waiting for a partner now. */
  get waiting(): number {
    return this.#queue.size;
  }

  /** What the lobby holds, for tests and operators: every figure is bounded by MAX_WAITING. */
  get footprint(): { waiting: number; pools: number; addresses: number; usedCodes: number } {
    return {
      waiting: this.#queue.size,
      pools: this.#queue.poolCount,
      addresses: this.#waitingByIp.size,
      usedCodes: this.#usedCodes.size,
    };
  }

  get closing(): boolean {
    return this.#closing;
  }

  waitingFrom(ip: string): number {
    return this.#waitingByIp.get(ip) ?? 0;
  }

  /**
   * Pairs the request with the oldest live waiter of its room from another connection, or queues it
   * until a partner comes, its timeout passes, its client goes or the server closes. Synchronous:
   * nothing can happen to the room between looking and acting.
   *
   * A code pairs exactly two clients: once it has made a match it is refused (`code_used`) for
   * CODE_TTL_MS from that match, and refusals do not extend that. A code its own connection is
   * already waiting on is refused too (`code_taken`): it cannot be its own partner.
   */
  join(request: JoinRequest): Ticket | Refusal {
    const joined = this.#join(request);
    if (typeof joined === 'string') this.#observer?.refused(request.room, joined);
    return joined;
  }

  #join(request: JoinRequest): Ticket | Refusal {
    if (this.#closing) return 'closing';
    const byCode = request.room.kind === 'code';
    if (byCode && this.#codeUsed(request.room.name)) return 'code_used';
    const ticket = new Ticket(request);
    const { maxWaiting, maxWaitingPerIp } = this.#limits;
    // Limits bound who may wait; a request that finds a partner at once never waits.
    const refusal: Refusal | undefined =
      this.#queue.size >= maxWaiting
        ? 'full'
        : maxWaitingPerIp > 0 && this.waitingFrom(ticket.ip) >= maxWaitingPerIp
          ? 'ip_limit'
          : undefined;
    const ownConnection: Verdict = byCode ? 'refuse' : 'skip';
    const judge = (candidate: Ticket): Verdict =>
      candidate.isGone() ? 'gone' : candidate.connection === ticket.connection ? ownConnection : 'pair';
    const step = this.#queue.dequeueOrEnqueue(ticket.key, ticket, judge, refusal === undefined);
    for (const dead of step.gone) this.#settle(dead, { kind: 'gone' });
    if (step.refused) return 'code_taken';

    const peer = step.peer;
    if (peer !== undefined) {
      const matchId = randomUUID();
      const secret = newSecret();
      const now = performance.now();
      if (byCode) this.#useCode(request.room.name, now);
      this.#settle(peer, { kind: 'matched', matchId, secret, peer: ticket, initiator: true, waitedMs: now - peer.arrivedAt });
      this.#settle(ticket, { kind: 'matched', matchId, secret, peer, initiator: false, waitedMs: now - ticket.arrivedAt });
      return ticket;
    }
    if (step.slot === undefined) return refusal ?? 'full';

    ticket.slot = step.slot;
    this.#waitingByIp.set(ticket.ip, this.waitingFrom(ticket.ip) + 1);
    ticket.timer = setTimeout(this.#onTimeout, request.timeoutMs, ticket);
    ticket.unwatch = request.watch(() => this.#settle(ticket, { kind: 'gone' }));
    this.#observer?.queued(ticket);
    return ticket;
  }

  /**
   * Checks the lobby's promise to its clients against its live state: in no pool do two live waiters
   * from different connections wait together (they should have been paired). Waiters whose client is
   * gone but whose close event has not run yet are left out: the next arrival drops them. Returns
   * the violations found, for stress tests to call after every event.
   */
  audit(): string[] {
    const connectionByRoom = new Map<string, object>();
    const violations: string[] = [];
    for (const ticket of this.#queue.values()) {
      if (ticket.isGone()) continue;
      const first = connectionByRoom.get(ticket.key);
      if (first === undefined) connectionByRoom.set(ticket.key, ticket.connection);
      else if (first !== ticket.connection || ticket.room.kind === 'code') {
        violations.push(`${ticket.room.kind} ${ticket.room.name}: ${ticket.address} waits beside another live client`);
      }
    }
    return violations;
  }

  /** Answers every waiter `shutdown` and refuses new requests from now on. Returns how many. */
  close(): number {
    this.#closing = true;
    const waiters = this.#queue.values();
    for (const ticket of waiters) this.#settle(ticket, { kind: 'shutdown' });
    return waiters.length;
  }

  #codeUsed(code: string): boolean {
    const now = performance.now();
    // Expiry order is insertion order: drop the expired from the front.
    for (const [used, until] of this.#usedCodes) {
      if (until > now) break;
      this.#usedCodes.delete(used);
    }
    return this.#usedCodes.has(code);
  }

  #useCode(code: string, now: number): void {
    this.#usedCodes.set(code, now + this.#limits.codeTtlMs);
    if (this.#usedCodes.size > (this.#limits.maxRememberedCodes ?? MAX_REMEMBERED_CODES)) {
      const oldest = this.#usedCodes.keys().next();
      if (oldest.done !== true) this.#usedCodes.delete(oldest.value);
    }
  }

  readonly #onTimeout = (ticket: Ticket): void => {
    this.#settle(ticket, { kind: 'timeout', waitedMs: performance.now() - ticket.arrivedAt });
  };

  #settle(ticket: Ticket, outcome: Outcome): void {
    if (!ticket.settleOnce(outcome)) return;
    const slot = ticket.slot;
    this.#observer?.settled(ticket, outcome, slot !== undefined);
    if (slot === undefined) return; // never queued: nothing to undo
    this.#queue.remove(slot); // false when pairing already took it out: nothing left to do there
    const left = this.waitingFrom(ticket.ip) - 1;
    if (left > 0) this.#waitingByIp.set(ticket.ip, left);
    else this.#waitingByIp.delete(ticket.ip);
    clearTimeout(ticket.timer);
    ticket.unwatch?.();
    ticket.slot = ticket.timer = ticket.unwatch = undefined;
  }
}
