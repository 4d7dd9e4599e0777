import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Matchmaker, type Slot, type Verdict } from '../src/matchmaker.js';

interface Entry {
  readonly id: number;
  readonly conn: number;
  gone: boolean;
}

/** Pools skip the caller's own connection; codes (`strict`) refuse the caller instead. */
const judgeFor =
  (caller: Entry, strict = false) =>
  (candidate: Entry): Verdict =>
    candidate.gone ? 'gone' : candidate.conn === caller.conn ? (strict ? 'refuse' : 'skip') : 'pair';

describe('Matchmaker', () => {
  it('queues the first caller and pairs the second with it', () => {
    const mm = new Matchmaker<Entry>();
    const a = { id: 1, conn: 1, gone: false };
    const b = { id: 2, conn: 2, gone: false };
    const first = mm.dequeueOrEnqueue('p', a, judgeFor(a), true);
    expect(first.peer).toBeUndefined();
    expect(first.slot?.value).toBe(a);
    expect(mm.size).toBe(1);
    const second = mm.dequeueOrEnqueue('p', b, judgeFor(b), true);
    expect(second.peer).toBe(a);
    expect(second.slot).toBeUndefined();
    expect(first.slot?.queued).toBe(false);
    expect(mm.size).toBe(0);
    expect(mm.poolSize('p')).toBe(0);
  });

  it('takes the oldest waiter first', () => {
    const mm = new Matchmaker<Entry>();
    const entries = [1, 2, 3].map((id) => ({ id, conn: id, gone: false }));
    for (const e of entries) {
      // Each on its own pool first would pair; queue them in one pool by using mayWait and skipping.
      mm.dequeueOrEnqueue('p', e, () => 'skip', true);
    }
    const caller = { id: 9, conn: 9, gone: false };
    expect(mm.dequeueOrEnqueue('p', caller, judgeFor(caller), true).peer?.id).toBe(1);
    expect(mm.values().map((e) => e.id)).toEqual([2, 3]);
  });

  it('never pairs two requests of one connection, and leaves the skipped one queued', () => {
    const mm = new Matchmaker<Entry>();
    const a = { id: 1, conn: 7, gone: false };
    const b = { id: 2, conn: 7, gone: false };
    mm.dequeueOrEnqueue('p', a, judgeFor(a), true);
    const step = mm.dequeueOrEnqueue('p', b, judgeFor(b), true);
    expect(step.peer).toBeUndefined();
    expect(mm.values().map((e) => e.id)).toEqual([1, 2]);
  });

  it('reports gone candidates without removing them and pairs with the next live one', () => {
    const mm = new Matchmaker<Entry>();
    const dead = { id: 1, conn: 1, gone: false };
    const live = { id: 2, conn: 2, gone: false };
    mm.dequeueOrEnqueue('p', dead, () => 'skip', true);
    mm.dequeueOrEnqueue('p', live, () => 'skip', true);
    dead.gone = true;
    const caller = { id: 3, conn: 3, gone: false };
    const step = mm.dequeueOrEnqueue('p', caller, judgeFor(caller), true);
    expect(step.peer).toBe(live);
    expect(step.gone).toEqual([dead]);
    expect(mm.values()).toEqual([dead]);
  });

  it('does not queue when it may not wait', () => {
    const mm = new Matchmaker<Entry>();
    const a = { id: 1, conn: 1, gone: false };
    const step = mm.dequeueOrEnqueue('p', a, judgeFor(a), false);
    expect(step).toEqual({ peer: undefined, slot: undefined, gone: [], refused: false });
    expect(mm.size).toBe(0);
  });

  it('neither pairs nor queues a caller a candidate refuses, and reports the gone ones before it', () => {
    const mm = new Matchmaker<Entry>();
    const dead = { id: 1, conn: 1, gone: false };
    const own = { id: 2, conn: 7, gone: false };
    const later = { id: 3, conn: 3, gone: false };
    for (const e of [dead, own, later]) mm.dequeueOrEnqueue('c', e, () => 'skip', true);
    dead.gone = true;
    const caller = { id: 4, conn: 7, gone: false };
    const step = mm.dequeueOrEnqueue('c', caller, judgeFor(caller, true), true);
    expect(step).toEqual({ peer: undefined, slot: undefined, gone: [dead], refused: true });
    expect(mm.values().map((e) => e.id)).toEqual([1, 2, 3]);
  });

  it('removes a waiter once; removing again or after pairing is a no-op', () => {
    const mm = new Matchmaker<Entry>();
    const a = { id: 1, conn: 1, gone: false };
    const slot = mm.dequeueOrEnqueue('p', a, judgeFor(a), true).slot as Slot<Entry>;
    expect(mm.remove(slot)).toBe(true);
    expect(mm.remove(slot)).toBe(false);
    expect(mm.size).toBe(0);
    const b = { id: 2, conn: 2, gone: false };
    const slotB = mm.dequeueOrEnqueue('p', b, judgeFor(b), true).slot as Slot<Entry>;
    const c = { id: 3, conn: 3, gone: false };
    expect(mm.dequeueOrEnqueue('p', c, judgeFor(c), true).peer).toBe(b);
    expect(mm.remove(slotB)).toBe(false);
    expect(mm.size).toBe(0);
  });

  it('keeps pools apart', () => {
    const mm = new Matchmaker<Entry>();
    const a = { id: 1, conn: 1, gone: false };
    const b = { id: 2, conn: 2, gone: false };
    mm.dequeueOrEnqueue('x', a, judgeFor(a), true);
    expect(mm.dequeueOrEnqueue('y', b, judgeFor(b), true).peer).toBeUndefined();
    expect(mm.poolSize('x')).toBe(1);
    expect(mm.poolSize('y')).toBe(1);
  });
});

// ---- Model-based: the matchmaker against a list-per-pool reference, over random command sequences.

interface Model {
  pools: Map<string, Entry[]>;
  slots: Map<number, Slot<Entry>>;
  entries: Map<number, Entry>;
  nextId: number;
}
interface Real {
  mm: Matchmaker<Entry>;
}

const modelValues = (m: Model): number[] => [...m.pools.values()].flat().map((e) => e.id);

function check(m: Model, r: Real): void {
  expect(r.mm.size).toBe([...m.pools.values()].reduce((n, list) => n + list.length, 0));
  for (const [pool, list] of m.pools) expect(r.mm.poolSize(pool)).toBe(list.length);
  expect(r.mm.values().map((e) => e.id)).toEqual(modelValues(m));
}

class JoinCommand implements fc.Command<Model, Real> {
  constructor(
    readonly pool: string,
    readonly conn: number,
    readonly mayWait: boolean,
    readonly strict: boolean,
  ) {}
  check(): boolean {
    return true;
  }
  run(m: Model, r: Real): void {
    const caller: Entry = { id: m.nextId++, conn: this.conn, gone: false };
    m.entries.set(caller.id, caller);
    const step = r.mm.dequeueOrEnqueue(this.pool, caller, judgeFor(caller, this.strict), this.mayWait);

    const list = m.pools.get(this.pool) ?? [];
    const gone: number[] = [];
    let peer: Entry | undefined;
    let refused = false;
    for (const candidate of list) {
      if (candidate.gone) gone.push(candidate.id);
      else if (candidate.conn !== caller.conn) {
        peer = candidate;
        break;
      } else if (this.strict) {
        refused = true;
        break;
      }
    }
    expect(step.peer?.id).toBe(peer?.id);
    expect(step.gone.map((e) => e.id)).toEqual(gone);
    expect(step.refused).toBe(refused);
    if (refused) {
      expect(step.slot).toBeUndefined();
    } else if (peer !== undefined) {
      list.splice(list.indexOf(peer), 1);
      m.slots.delete(peer.id);
      expect(step.slot).toBeUndefined();
    } else if (this.mayWait) {
      list.push(caller);
      expect(step.slot?.value).toBe(caller);
      m.slots.set(caller.id, step.slot as Slot<Entry>);
    } else {
      expect(step.slot).toBeUndefined();
    }
    if (list.length > 0) m.pools.set(this.pool, list);
    else m.pools.delete(this.pool);
    check(m, r);
  }
  toString(): string {
    return `join(${this.pool}, conn ${this.conn}, ${this.mayWait ? 'may wait' : 'no wait'}${this.strict ? ', strict' : ''})`;
  }
}

class RemoveCommand implements fc.Command<Model, Real> {
  constructor(readonly pick: number) {}
  check(m: Model): boolean {
    return m.nextId > 0;
  }
  run(m: Model, r: Real): void {
    const id = this.pick % m.nextId;
    const slot = m.slots.get(id);
    const entry = m.entries.get(id);
    const pool = [...m.pools.entries()].find(([, list]) => list.some((e) => e.id === id));
    if (slot === undefined) {
      // Never queued or already taken: nothing to remove, and the matchmaker agrees.
      expect(pool).toBeUndefined();
      return;
    }
    expect(r.mm.remove(slot)).toBe(pool !== undefined);
    expect(r.mm.remove(slot)).toBe(false);
    if (pool !== undefined) {
      const [name, list] = pool;
      list.splice(list.indexOf(entry as Entry), 1);
      if (list.length === 0) m.pools.delete(name);
    }
    m.slots.delete(id);
    check(m, r);
  }
  toString(): string {
    return `remove(${this.pick})`;
  }
}

class GoneCommand implements fc.Command<Model, Real> {
  constructor(readonly pick: number) {}
  check(m: Model): boolean {
    return m.nextId > 0;
  }
  run(m: Model): void {
    // The entry objects are shared by model and real queue: marking one marks both.
    const entry = m.entries.get(this.pick % m.nextId);
    if (entry !== undefined) entry.gone = true;
  }
  toString(): string {
    return `gone(${this.pick})`;
  }
}

describe('Matchmaker against a reference model', () => {
  it('agrees on every step of random join/remove/gone sequences', () => {
    const commands = [
      fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.integer({ min: 0, max: 4 }), fc.boolean(), fc.boolean()).map(
        ([pool, conn, mayWait, strict]) => new JoinCommand(pool, conn, mayWait, strict),
      ),
      fc.nat().map((pick) => new RemoveCommand(pick)),
      fc.nat().map((pick) => new GoneCommand(pick)),
    ];
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 200 }), (cmds) => {
        const model: Model = { pools: new Map(), slots: new Map(), entries: new Map(), nextId: 0 };
        fc.modelRun(() => ({ model, real: { mm: new Matchmaker<Entry>() } }), cmds);
      }),
      { numRuns: 300 },
    );
  });
});
