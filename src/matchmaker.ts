/**
 * The waiting queues, one per pool. Pure: no I/O, no timers, no framework.
 *
 * The only way into a queue is {@link Matchmaker.dequeueOrEnqueue}, which in one synchronous step
 * either takes the oldest acceptable waiter or queues the caller. There is no separate "is anyone
 * waiting?" check a caller could act on later, so the check-then-act race cannot be written.
 */

/** What the caller thinks of one queued candidate. */
export type Verdict =
  /** Pair with this one. */
  | 'pair'
  /** Not for this caller (same connection), but leave it queued for others. */
  | 'skip'
  /** Its client is known to be gone: report it so its owner settles it; it cannot be paired. */
  | 'gone'
  /** The caller may neither pair nor wait here (a rendezvous code its own connection already holds). */
  | 'refuse';

/** A queued value's place in its pool: the handle that removes it in O(1). */
export interface Slot<T> {
  readonly value: T;
  readonly pool: string;
  /** False once dequeued or removed. */
  readonly queued: boolean;
}

export interface Step<T> {
  /** The waiter the caller was paired with, already taken out of its pool. */
  readonly peer: T | undefined;
  /** The caller's place, when it was queued. */
  readonly slot: Slot<T> | undefined;
  /** Candidates judged 'gone' on the way; still queued, for their owners to settle. */
  readonly gone: readonly T[];
  /** A candidate judged 'refuse': the caller was neither paired nor queued. */
  readonly refused: boolean;
}

/**
 * The seam a shared backend would implement. Everything a route needs of the queues, and nothing
 * that lets it look before it leaps.
 */
export interface MatchQueue<T> {
  dequeueOrEnqueue(pool: string, value: T, judge: (candidate: T) => Verdict, mayWait: boolean): Step<T>;
  remove(slot: Slot<T>): boolean;
  readonly size: number;
  /** Pools with anyone waiting: empty pools are not kept. */
  readonly poolCount: number;
  poolSize(pool: string): number;
  /** Every queued value, oldest first within a pool; a copy, safe to settle while iterating. */
  values(): T[];
}

class Node<T> implements Slot<T> {
  prev: Node<T> | undefined = undefined;
  next: Node<T> | undefined = undefined;
  queued = true;
  constructor(
    readonly value: T,
    readonly pool: string,
    readonly queue: Queue<T>,
  ) {}
}

/** Intrusive doubly linked FIFO: O(1) push, shift and unlink. */
class Queue<T> {
  head: Node<T> | undefined = undefined;
  tail: Node<T> | undefined = undefined;
  length = 0;

  push(node: Node<T>): void {
    node.prev = this.tail;
    if (this.tail === undefined) this.head = node;
    else this.tail.next = node;
    this.tail = node;
    this.length++;
  }

  unlink(node: Node<T>): void {
    if (node.prev === undefined) this.head = node.next;
    else node.prev.next = node.next;
    if (node.next === undefined) this.tail = node.prev;
    else node.next.prev = node.prev;
    node.prev = node.next = undefined;
    node.queued = false;
    this.length--;
  }
}

const NONE: readonly never[] = Object.freeze([]);

export class Matchmaker<T> implements MatchQueue<T> {
  readonly #pools = new Map<string, Queue<T>>();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get poolCount(): number {
    return this.#pools.size;
  }

  poolSize(pool: string): number {
    return this.#pools.get(pool)?.length ?? 0;
  }

  /**
   * Pairs `value` with the oldest candidate of `pool` that `judge` accepts, or queues it when
   * `mayWait` (otherwise returns neither peer nor slot). A candidate judged 'refuse' ends the walk
   * with neither. Candidates judged 'skip' or 'gone' stay
   * where they are; the walk past them is bounded by how many requests one connection, or one
   * batch of dead clients, can have queued.
   */
  dequeueOrEnqueue(pool: string, value: T, judge: (candidate: T) => Verdict, mayWait: boolean): Step<T> {
    let queue = this.#pools.get(pool);
    let gone: T[] | undefined;
    for (let node = queue?.head; node !== undefined; node = node.next) {
      const verdict = judge(node.value);
      if (verdict === 'pair') {
        this.#unlink(node);
        return { peer: node.value, slot: undefined, gone: gone ?? NONE, refused: false };
      }
      if (verdict === 'gone') (gone ??= []).push(node.value);
      else if (verdict === 'refuse') return { peer: undefined, slot: undefined, gone: gone ?? NONE, refused: true };
    }
    if (!mayWait) return { peer: undefined, slot: undefined, gone: gone ?? NONE, refused: false };
    if (queue === undefined) {
      queue = new Queue<T>();
      this.#pools.set(pool, queue);
    }
    const node = new Node(value, pool, queue);
    queue.push(node);
    this.#size++;
    return { peer: undefined, slot: node, gone: gone ?? NONE, refused: false };
  }

  /** Takes a queued value out of its pool; false (and nothing done) if it was no longer queued. */
  remove(slot: Slot<T>): boolean {
    if (!(slot instanceof Node) || !slot.queued) return false;
    this.#unlink(slot as Node<T>);
    return true;
  }

  values(): T[] {
    const out: T[] = [];
    for (const queue of this.#pools.values()) {
      for (let node = queue.head; node !== undefined; node = node.next) out.push(node.value);
    }
    return out;
  }

  #unlink(node: Node<T>): void {
    node.queue.unlink(node);
    this.#size--;
    // Empty pools are dropped so that many one-off pools do not accumulate.
    if (node.queue.length === 0 && this.#pools.get(node.pool) === node.queue) this.#pools.delete(node.pool);
  }
}
