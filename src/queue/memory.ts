/**
 * The in-memory queue backend, the default: rooms as intrusive linked lists, used codes, and counts
 * per limit key, all in this process. Each step is synchronous (no `await` between looking and
 * acting), and answers at once.
 */
import type { JoinRequest, JoinStep, MatchQueue, Waiter } from './seam.js';

class Node {
  prev: Node | undefined = undefined;
  next: Node | undefined = undefined;
  constructor(
    readonly waiter: Waiter,
    readonly room: Room,
  ) {}
}

/** Intrusive doubly linked FIFO: O(1) push and unlink. */
class Room {
  head: Node | undefined = undefined;
  tail: Node | undefined = undefined;
  length = 0;

  constructor(readonly key: string) {}

  push(node: Node): void {
    node.prev = this.tail;
    if (this.tail === undefined) this.head = node;
    else this.tail.next = node;
    this.tail = node;
    this.length++;
  }

  unshift(node: Node): void {
    node.next = this.head;
    if (this.head === undefined) this.tail = node;
    else this.head.prev = node;
    this.head = node;
    this.length++;
  }

  unlink(node: Node): void {
    if (node.prev === undefined) this.head = node.next;
    else node.prev.next = node.next;
    if (node.next === undefined) this.tail = node.prev;
    else node.next.prev = node.prev;
    node.prev = node.next = undefined;
    this.length--;
  }
}

/** Most used codes remembered at once; past it the oldest are forgotten before their time. */
export const MAX_REMEMBERED_CODES = 1_000_000;

export interface MemoryQueueOptions {
  /** Most used codes remembered; default {@link MAX_REMEMBERED_CODES}. */
  readonly maxRememberedCodes?: number;
  /** The clock for code expiry, in milliseconds; tests set their own. */
  readonly now?: () => number;
}

/** A claim not yet confirmed or aborted: the code it marked used (to give back), and whether its owner committed it. */
interface Claim {
  readonly code: string | undefined;
  committed: boolean;
}

export class MemoryQueue implements MatchQueue {
  readonly #rooms = new Map<string, Room>();
  /** Where each waiting client is, by waiter id. */
  readonly #nodes = new Map<string, Node>();
  readonly #waitingByKey = new Map<string, number>();
  /** Codes that made a match, with when they may be used again; oldest first (one TTL for all). */
  readonly #usedCodes = new Map<string, number>();
  /** Claims not yet confirmed or aborted. */
  readonly #claims = new Map<string, Claim>();
  readonly #maxCodes: number;
  readonly #now: () => number;

  constructor(options: MemoryQueueOptions = {}) {
    this.#maxCodes = options.maxRememberedCodes ?? MAX_REMEMBERED_CODES;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Clients waiting now, in all rooms. */
  get size(): number {
    return this.#nodes.size;
  }

  /** What the queue holds, every figure bounded by what waits (and the code bound). */
  get footprint(): { waiting: number; rooms: number; keys: number; usedCodes: number } {
    return { waiting: this.#nodes.size, rooms: this.#rooms.size, keys: this.#waitingByKey.size, usedCodes: this.#usedCodes.size };
  }

  waitingFrom(limitKey: string): number {
    return this.#waitingByKey.get(limitKey) ?? 0;
  }

  /** Every waiter, oldest first within each room: for inspection, never for deciding. */
  waiters(): Waiter[] {
    const out: Waiter[] = [];
    for (const room of this.#rooms.values()) for (let node = room.head; node !== undefined; node = node.next) out.push(node.waiter);
    return out;
  }

  /** The atomic step itself, synchronous: its answer is ready when it returns. */
  join(request: JoinRequest): JoinStep {
    const { waiter, byCode } = request;
    const code = byCode ? waiter.room : undefined;
    if (code !== undefined && this.#codeUsed(code)) return { kind: 'refused', refusal: 'code_used' };
    const room = this.#rooms.get(waiter.room);
    for (let node = room?.head; node !== undefined; node = node.next) {
      if (node.waiter.connection === waiter.connection) {
        // A code pairs two clients: its own connection's other request cannot be one of them.
        if (byCode) return { kind: 'refused', refusal: 'code_taken' };
        continue;
      }
      this.#unlink(node);
      this.#claims.set(node.waiter.id, { code, committed: false });
      if (code !== undefined) this.#useCode(code, request.codeTtlMs);
      return { kind: 'claimed', peer: node.waiter };
    }
    // Limits bound who may wait; a request that finds a partner at once never waits.
    if (!request.mayWait) return { kind: 'refused', refusal: 'full' };
    if (request.maxPerKey > 0 && this.waitingFrom(waiter.limitKey) >= request.maxPerKey) return { kind: 'refused', refusal: 'ip_limit' };
    this.#link(waiter, room, false);
    return { kind: 'queued' };
  }

  commit(peer: Waiter): boolean {
    const claim = this.#claims.get(peer.id);
    if (claim === undefined) return false;
    claim.committed = true;
    return true;
  }

  confirm(peer: Waiter): void {
    this.#claims.delete(peer.id);
  }

  abort(peer: Waiter, stillThere: boolean): 'aborted' | 'matched' {
    const claim = this.#claims.get(peer.id);
    if (claim === undefined) return 'aborted';
    this.#claims.delete(peer.id);
    if (claim.committed) return 'matched';
    if (claim.code !== undefined) this.#usedCodes.delete(claim.code);
    // Back where it stood: at the head, as the oldest.
    if (stillThere) this.#link(peer, this.#rooms.get(peer.room), true);
    return 'aborted';
  }

  cancel(waiter: Waiter): boolean {
    const node = this.#nodes.get(waiter.id);
    if (node === undefined) return false;
    this.#unlink(node);
    return true;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** Puts a waiter in its room (made if needed), last or first, and counts it. The inverse of #unlink. */
  #link(waiter: Waiter, existing: Room | undefined, first: boolean): void {
    let room = existing;
    if (room === undefined) {
      room = new Room(waiter.room);
      this.#rooms.set(waiter.room, room);
    }
    const node = new Node(waiter, room);
    if (first) room.unshift(node);
    else room.push(node);
    this.#nodes.set(waiter.id, node);
    this.#waitingByKey.set(waiter.limitKey, this.waitingFrom(waiter.limitKey) + 1);
  }

  #unlink(node: Node): void {
    const { room, waiter } = node;
    room.unlink(node);
    this.#nodes.delete(waiter.id);
    const left = this.waitingFrom(waiter.limitKey) - 1;
    if (left > 0) this.#waitingByKey.set(waiter.limitKey, left);
    else this.#waitingByKey.delete(waiter.limitKey);
    // Empty rooms are dropped so that many one-off pools do not accumulate.
    if (room.length === 0 && this.#rooms.get(room.key) === room) this.#rooms.delete(room.key);
  }

  #codeUsed(code: string): boolean {
    const now = this.#now();
    // Expiry order is insertion order: drop the expired from the front.
    for (const [used, until] of this.#usedCodes) {
      if (until > now) break;
      this.#usedCodes.delete(used);
    }
    return this.#usedCodes.has(code);
  }

  #useCode(code: string, ttlMs: number): void {
    this.#usedCodes.set(code, this.#now() + ttlMs);
    if (this.#usedCodes.size > this.#maxCodes) {
      const oldest = this.#usedCodes.keys().next();
      if (oldest.done !== true) this.#usedCodes.delete(oldest.value);
    }
  }
}
