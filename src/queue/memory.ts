/**
 * The in-memory queue backend, the default: rooms as intrusive linked lists, used codes, and counts
 * per limit key, all in this process. Each step is synchronous (no `await` between looking and
 * acting), and answers at once.
 */
import {
  MAX_REMEMBERED_CODES,
  type FillRequest,
  type GatherRequest,
  type GatherStep,
  type GroupClaim,
  type JoinRequest,
  type JoinStep,
  type MatchQueue,
  type Waiter,
} from './seam.js';

class Node {
  prev: Node | undefined = undefined;
  next: Node | undefined = undefined;
  constructor(
    readonly waiter: Waiter,
    readonly room: Room,
  ) {}
}

/** A waiter of a group's room: when it was queued, for the fill rule (pairs' nodes do without). */
class GroupNode extends Node {
  constructor(
    waiter: Waiter,
    room: Room,
    readonly queuedAt: number,
  ) {
    super(waiter, room);
  }
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


export interface MemoryQueueOptions {
  /** Most used codes remembered; default {@link MAX_REMEMBERED_CODES}. */
  readonly maxRememberedCodes?: number;
  /** The clock for code expiry, in milliseconds; tests set their own. */
  readonly now?: () => number;
}

/** A claim not yet confirmed or aborted: who made it, the code it marked used (to give back), and whether its owner committed it. */
interface Claim {
  readonly by: string;
  readonly code: string | undefined;
  committed: boolean;
}

/** A group claimed and not yet confirmed: its state, its code, and the members nobody has decided about yet. */
interface GroupRecord {
  state: 'open' | 'committed' | 'aborted';
  readonly code: string | undefined;
  /** Members not yet put back or dropped, with when each was queued (kept when put back). */
  readonly undecided: Map<string, number>;
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
  /** Groups claimed and not yet confirmed, or released and not yet decided for every member. */
  readonly #groups = new Map<string, GroupRecord>();
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

  /** Groups claimed and not yet confirmed (or released, with members not yet decided): bounded by what was claimed. */
  get groupsHeld(): number {
    return this.#groups.size;
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
      this.#claims.set(node.waiter.id, { by: waiter.id, code, committed: false });
      if (code !== undefined) this.#useCode(code, request.codeTtlMs);
      return { kind: 'claimed', peer: node.waiter };
    }
    // Limits bound who may wait; a request that finds a partner at once never waits.
    if (!request.mayWait) return { kind: 'refused', refusal: 'full' };
    if (request.maxPerKey > 0 && this.waitingFrom(waiter.limitKey) >= request.maxPerKey) return { kind: 'refused', refusal: 'ip_limit' };
    this.#link(waiter, room, false);
    return { kind: 'queued' };
  }

  commit(peer: Waiter, claimer: string): boolean {
    const claim = this.#claims.get(peer.id);
    if (claim?.by !== claimer) return false;
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

  gather(request: GatherRequest): GatherStep {
    const { waiter, byCode, size, min } = request;
    const code = byCode ? waiter.room : undefined;
    if (code !== undefined && this.#codeUsed(code)) return { kind: 'refused', refusal: 'code_used' };
    const room = this.#rooms.get(waiter.room);
    // Oldest first, one per connection: two requests of one connection are never in one group.
    const picked: GroupNode[] = [];
    const connections = new Set<string>([waiter.connection]);
    for (let node = room?.head; node !== undefined; node = node.next) {
      const { connection } = node.waiter;
      if (connection === waiter.connection) {
        if (byCode) return { kind: 'refused', refusal: 'code_taken' };
        continue;
      }
      // Every node of a group's room is a GroupNode (its key names the size: no pair waits there).
      if (picked.length < size - 1 && !connections.has(connection) && node instanceof GroupNode) {
        connections.add(connection);
        picked.push(node);
      }
    }
    const count = picked.length + 1;
    const oldest = picked[0];
    const filled = count >= min && oldest !== undefined && oldest.queuedAt + request.fillWaitMs <= this.#now();
    if (count === size || (min < size && filled)) return { kind: 'claimed', group: this.#claimGroup(request.groupId, picked, code, request.codeTtlMs) };
    if (!request.mayWait) return { kind: 'refused', refusal: 'full' };
    if (request.maxPerKey > 0 && this.waitingFrom(waiter.limitKey) >= request.maxPerKey) return { kind: 'refused', refusal: 'ip_limit' };
    this.#link(waiter, room, false, this.#now());
    return { kind: 'queued' };
  }

  fill(waiter: Waiter, request: FillRequest): GroupClaim | undefined {
    const own = this.#nodes.get(waiter.id);
    if (own === undefined) return undefined;
    const picked: GroupNode[] = [];
    const connections = new Set<string>();
    for (let node = own.room.head; node !== undefined && picked.length < request.size; node = node.next) {
      if (connections.has(node.waiter.connection) || !(node instanceof GroupNode)) continue;
      connections.add(node.waiter.connection);
      picked.push(node);
    }
    if (picked.length < request.min) return undefined;
    return this.#claimGroup(request.groupId, picked, request.byCode ? waiter.room : undefined, request.codeTtlMs);
  }

  commitGroup(group: GroupClaim): boolean {
    const record = this.#groups.get(group.groupId);
    if (record?.state !== 'open') return false;
    record.state = 'committed';
    return true;
  }

  confirmGroup(group: GroupClaim): void {
    this.#groups.delete(group.groupId);
  }

  release(group: GroupClaim, back: readonly Waiter[], drop: readonly Waiter[]): 'aborted' | 'matched' {
    const record = this.#groups.get(group.groupId);
    if (record === undefined) return 'aborted';
    if (record.state === 'committed') return 'matched';
    if (record.state === 'open') {
      record.state = 'aborted';
      if (record.code !== undefined) this.#usedCodes.delete(record.code);
    }
    for (const gone of drop) record.undecided.delete(gone.id);
    // Back at the head in their order: the youngest first, each in front of the one before.
    for (let i = back.length - 1; i >= 0; i--) {
      const member = back[i] as Waiter;
      const queuedAt = record.undecided.get(member.id);
      if (queuedAt === undefined) continue;
      record.undecided.delete(member.id);
      this.#link(member, this.#rooms.get(member.room), true, queuedAt);
    }
    if (record.undecided.size === 0) this.#groups.delete(group.groupId);
    return 'aborted';
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** Takes the picked waiters out of their room as one group, and marks its code used. */
  #claimGroup(groupId: string, picked: readonly GroupNode[], code: string | undefined, codeTtlMs: number): GroupClaim {
    const undecided = new Map<string, number>();
    const members: Waiter[] = [];
    for (const node of picked) {
      undecided.set(node.waiter.id, node.queuedAt);
      members.push(node.waiter);
      this.#unlink(node);
    }
    this.#groups.set(groupId, { state: 'open', code, undecided });
    if (code !== undefined) this.#useCode(code, codeTtlMs);
    return { groupId, members };
  }

  /**
   * Puts a waiter in its room (made if needed), last or first, and counts it. The inverse of #unlink.
   * `queuedAt`: a group's waiter, queued then.
   */
  #link(waiter: Waiter, existing: Room | undefined, first: boolean, queuedAt?: number): void {
    let room = existing;
    if (room === undefined) {
      room = new Room(waiter.room);
      this.#rooms.set(waiter.room, room);
    }
    const node = queuedAt === undefined ? new Node(waiter, room) : new GroupNode(waiter, room, queuedAt);
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
