/**
 * The conformance suite of the queue seam: every backend (in memory, Redis) must pass it, with exact
 * outcomes. Run it with `describeQueueConformance(name, factory)` from a backend's test file.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { JoinRequest, JoinStep, MatchQueue, QueueRefusal, Waiter } from '../../src/queue/seam.js';

export interface QueueUnderTest {
  readonly queue: MatchQueue;
  /** Removes whatever the backend kept, and closes it. */
  cleanup(): Promise<void>;
}

let ids = 0;
/** A waiter of connection `connection` in `room`, counted under `limitKey`. */
export function waiter(room: string, connection: string, limitKey = 'k'): Waiter {
  return { id: `w${++ids}`, room, connection, limitKey, owner: 'test', address: `192.0.2.1:${ids}`, via: 'socket', meta: undefined };
}

function request(w: Waiter, overrides: Partial<JoinRequest> = {}): JoinRequest {
  return { waiter: w, byCode: w.room.startsWith('code:'), mayWait: true, maxPerKey: 0, codeTtlMs: 60_000, waitMs: 60_000, ...overrides };
}

const claimed = (peer: Waiter): JoinStep => ({ kind: 'claimed', peer });
const queued: JoinStep = { kind: 'queued' };
const refused = (refusal: QueueRefusal): JoinStep => ({ kind: 'refused', refusal });

export function describeQueueConformance(name: string, create: () => Promise<QueueUnderTest>): void {
  describe(`MatchQueue conformance: ${name}`, () => {
    let under: QueueUnderTest;
    let queue: MatchQueue;
    beforeEach(async () => {
      under = await create();
      queue = under.queue;
    });
    afterEach(() => under.cleanup());

    it('queues the first and hands it to the second, oldest first within a room', async () => {
      const [a1, a2] = [waiter('pool:p', 'A'), waiter('pool:p', 'A')];
      expect(await queue.join(request(a1))).toEqual(queued);
      expect(await queue.join(request(a2))).toEqual(queued); // same connection: not a partner
      const b = waiter('pool:p', 'B');
      expect(await queue.join(request(b))).toEqual(claimed(a1));
      await queue.confirm(a1);
      const c = waiter('pool:p', 'C');
      expect(await queue.join(request(c))).toEqual(claimed(a2));
      await queue.confirm(a2);
      expect(await queue.join(request(waiter('pool:p', 'D')))).toEqual(queued);
    });

    it('keeps rooms apart: pools of other names, and a code of the same name as a pool', async () => {
      expect(await queue.join(request(waiter('pool:x', 'A')))).toEqual(queued);
      expect(await queue.join(request(waiter('pool:y', 'B')))).toEqual(queued);
      expect(await queue.join(request(waiter('code:x', 'C')))).toEqual(queued);
      const d = waiter('code:y', 'D');
      expect(await queue.join(request(d))).toEqual(queued);
      const e = waiter('code:y', 'E');
      expect(await queue.join(request(e))).toEqual(claimed(d));
    });

    it('never hands a connection its own waiter', async () => {
      const a = waiter('pool:p', 'A');
      expect(await queue.join(request(a))).toEqual(queued);
      expect(await queue.join(request(waiter('pool:p', 'A')))).toEqual(queued);
      expect(await queue.join(request(waiter('pool:p', 'A'), { mayWait: false }))).toEqual(refused('full'));
    });

    it('pairs exactly two with a code, refuses it for its time to live, and refuses a connection its own code', async () => {
      const a = waiter('code:c', 'A');
      expect(await queue.join(request(a))).toEqual(queued);
      expect(await queue.join(request(waiter('code:c', 'A')))).toEqual(refused('code_taken'));
      const b = waiter('code:c', 'B');
      expect(await queue.join(request(b, { codeTtlMs: 300 }))).toEqual(claimed(a));
      await queue.confirm(a);
      expect(await queue.join(request(waiter('code:c', 'C')))).toEqual(refused('code_used'));
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(await queue.join(request(waiter('code:c', 'D')))).toEqual(queued);
    });

    it('gives a code back when its claim is aborted, and a waiter still there its place at the head', async () => {
      const a = waiter('code:c', 'A');
      await queue.join(request(a));
      expect(await queue.join(request(waiter('code:c', 'B')))).toEqual(claimed(a));
      await queue.abort(a, true);
      const c = waiter('code:c', 'C');
      expect(await queue.join(request(c))).toEqual(claimed(a));
      await queue.abort(a, false);
      // Gone for good: the code is free, and the room empty.
      expect(await queue.join(request(c))).toEqual(queued);
      const p1 = waiter('pool:p', 'P1');
      const p2 = waiter('pool:p', 'P1');
      await queue.join(request(p1));
      await queue.join(request(p2));
      expect(await queue.join(request(waiter('pool:p', 'Q')))).toEqual(claimed(p1));
      await queue.abort(p1, true);
      expect(await queue.join(request(waiter('pool:p', 'R')))).toEqual(claimed(p1));
    });

    it('counts waiters per limit key: refuses to queue past the limit, still pairs, frees on leaving', async () => {
      const limited = { maxPerKey: 2 };
      const [a, b] = [waiter('pool:a', 'A', 'ip1'), waiter('pool:b', 'B', 'ip1')];
      expect(await queue.join(request(a, limited))).toEqual(queued);
      expect(await queue.join(request(b, limited))).toEqual(queued);
      expect(await queue.join(request(waiter('pool:c', 'C', 'ip1'), limited))).toEqual(refused('ip_limit'));
      expect(await queue.join(request(waiter('pool:c', 'C', 'ip2'), limited))).toEqual(queued);
      // One that finds a partner never waits, so no limit applies to it.
      expect(await queue.join(request(waiter('pool:a', 'D', 'ip1'), limited))).toEqual(claimed(a));
      await queue.confirm(a);
      expect(await queue.join(request(waiter('pool:e', 'E', 'ip1'), limited))).toEqual(queued);
      expect(await queue.cancel(b)).toBe(true);
      expect(await queue.join(request(waiter('pool:f', 'F', 'ip1'), limited))).toEqual(queued);
    });

    it('lets the owner commit a claim, after which an abort reports the match as standing', async () => {
      const [a, b] = [waiter('code:m', 'A'), waiter('code:n', 'A')];
      await queue.join(request(a));
      await queue.join(request(b));
      const claimer = waiter('code:m', 'B');
      expect(await queue.join(request(claimer))).toEqual(claimed(a));
      expect(await queue.commit(a, claimer.id)).toBe(true);
      // The claimer heard nothing and gives up: the record says the owner committed.
      expect(await queue.abort(a, true)).toBe('matched');
      expect(await queue.join(request(waiter('code:m', 'C')))).toEqual(refused('code_used'));
      // Aborted before its owner could commit: the commit fails, the code is free again.
      const second = waiter('code:n', 'B');
      expect(await queue.join(request(second))).toEqual(claimed(b));
      expect(await queue.abort(b, false)).toBe('aborted');
      expect(await queue.commit(b, second.id)).toBe(false);
      expect(await queue.join(request(waiter('code:n', 'D')))).toEqual(queued);
    });

    it('commits a claim only for the arrival that made it: a late commit for an earlier claimer fails', async () => {
      const a = waiter('pool:p', 'A');
      await queue.join(request(a));
      const first = waiter('pool:p', 'B');
      expect(await queue.join(request(first))).toEqual(claimed(a));
      // The first claimer gives up with its waiter still there: back in the room, claimed by the next.
      expect(await queue.abort(a, true)).toBe('aborted');
      const second = waiter('pool:p', 'C');
      expect(await queue.join(request(second))).toEqual(claimed(a));
      expect(await queue.commit(a, first.id)).toBe(false);
      expect(await queue.commit(a, second.id)).toBe(true);
      expect(await queue.abort(a, true)).toBe('matched');
      expect(await queue.join(request(waiter('pool:p', 'D')))).toEqual(queued);
    });

    it('cancels a waiter once; not after it was claimed', async () => {
      const a = waiter('pool:p', 'A');
      await queue.join(request(a));
      expect(await queue.cancel(a)).toBe(true);
      expect(await queue.cancel(a)).toBe(false);
      const b = waiter('pool:p', 'B');
      await queue.join(request(b));
      expect(await queue.join(request(waiter('pool:p', 'C')))).toEqual(claimed(b));
      expect(await queue.cancel(b)).toBe(false);
      await queue.confirm(b);
      expect(await queue.join(request(waiter('pool:p', 'D')))).toEqual(queued);
    });

    it('agrees with a simple model on random sequences of joins, cancels, confirms and aborts', async () => {
      const op = fc.oneof(
        fc.record({ kind: fc.constant('join' as const), room: fc.constantFrom('pool:p', 'pool:q', 'code:c', 'code:d'), connection: fc.constantFrom('A', 'B', 'C'), key: fc.constantFrom('k1', 'k2'), mayWait: fc.boolean() }),
        fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }),
        fc.record({ kind: fc.constant('settle' as const), pick: fc.nat(), how: fc.constantFrom('confirm', 'abort-there', 'abort-gone', 'commit-abort') }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
          await under.cleanup();
          under = await create();
          const real = under.queue;
          const model = new ModelQueue();
          const known: Waiter[] = [];
          const open: { peer: Waiter; by: string }[] = []; // claimed, not yet confirmed or aborted
          for (const o of ops) {
            if (o.kind === 'join') {
              const w = waiter(o.room, o.connection, o.key);
              known.push(w);
              const req = request(w, { mayWait: o.mayWait, maxPerKey: 2 });
              const step = await real.join(req);
              expect(step).toEqual(model.join(req));
              if (step.kind === 'claimed') open.push({ peer: step.peer, by: w.id });
            } else if (o.kind === 'cancel') {
              const w = known[o.pick % Math.max(1, known.length)];
              if (w !== undefined) expect(await real.cancel(w)).toBe(model.cancel(w));
            } else {
              const claim = open.splice(o.pick % Math.max(1, open.length), 1)[0];
              if (claim === undefined) continue;
              const { peer: w, by } = claim;
              if (o.how === 'confirm') {
                expect(await real.commit(w, by)).toBe(model.commit(w, by));
                await real.confirm(w);
                model.confirm(w);
              } else if (o.how === 'commit-abort') {
                expect(await real.commit(w, by)).toBe(model.commit(w, by));
                expect(await real.abort(w, true)).toBe(model.abort(w, true));
              } else {
                expect(await real.abort(w, o.how === 'abort-there')).toBe(model.abort(w, o.how === 'abort-there'));
              }
            }
          }
        }),
        { numRuns: 150, seed: 11 },
      );
    });
  });
}

/** The queue's contract, as plainly as it can be written (codes never expire here). */
class ModelQueue {
  readonly rooms = new Map<string, Waiter[]>();
  readonly used = new Set<string>();
  readonly claims = new Map<string, { by: string; code: string | undefined; committed: boolean }>();

  join(r: JoinRequest): JoinStep {
    const { waiter: w, byCode } = r;
    if (byCode && this.used.has(w.room)) return refused('code_used');
    const list = this.rooms.get(w.room) ?? [];
    for (const [i, candidate] of list.entries()) {
      if (candidate.connection === w.connection) {
        if (byCode) return refused('code_taken');
        continue;
      }
      list.splice(i, 1);
      this.claims.set(candidate.id, { by: w.id, code: byCode ? w.room : undefined, committed: false });
      if (byCode) this.used.add(w.room);
      return claimed(candidate);
    }
    if (!r.mayWait) return refused('full');
    const count = [...this.rooms.values()].flat().filter((x) => x.limitKey === w.limitKey).length;
    if (r.maxPerKey > 0 && count >= r.maxPerKey) return refused('ip_limit');
    this.rooms.set(w.room, [...list, w]);
    return queued;
  }

  cancel(w: Waiter): boolean {
    const list = this.rooms.get(w.room) ?? [];
    const i = list.findIndex((x) => x.id === w.id);
    if (i < 0) return false;
    list.splice(i, 1);
    return true;
  }

  commit(w: Waiter, by: string): boolean {
    const claim = this.claims.get(w.id);
    if (claim?.by !== by) return false;
    claim.committed = true;
    return true;
  }

  confirm(w: Waiter): void {
    this.claims.delete(w.id);
  }

  abort(w: Waiter, stillThere: boolean): 'aborted' | 'matched' {
    const claim = this.claims.get(w.id);
    if (claim === undefined) return 'aborted';
    this.claims.delete(w.id);
    if (claim.committed) return 'matched';
    if (claim.code !== undefined) this.used.delete(claim.code);
    if (stillThere) this.rooms.set(w.room, [w, ...(this.rooms.get(w.room) ?? [])]);
    return 'aborted';
  }
}
