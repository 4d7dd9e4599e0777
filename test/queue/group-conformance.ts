/**
 * The conformance suite of the queue seam's groups: every backend (in memory, Redis single and
 * Cluster) must pass it, with exact outcomes, and agree with one plain model of gathering on random
 * sequences in which pairs (size 2, through `join`) are the group of two.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { gathersGroups, type GatherRequest, type GatherStep, type GroupClaim, type GroupQueue, type QueueRefusal, type Waiter } from '../../src/queue/seam.js';
import { waiter, type QueueUnderTest } from './conformance.js';

let groups = 0;

function gatherRequest(w: Waiter, size: number, overrides: Partial<GatherRequest> = {}): GatherRequest {
  return {
    waiter: w,
    byCode: w.room.startsWith('code:'),
    mayWait: true,
    maxPerKey: 0,
    codeTtlMs: 60_000,
    waitMs: 60_000,
    size,
    min: size,
    fillWaitMs: 60_000,
    groupId: `g${++groups}`,
    ...overrides,
  };
}

const queued: GatherStep = { kind: 'queued' };
const refused = (refusal: QueueRefusal): GatherStep => ({ kind: 'refused', refusal });
/** What a step claimed: its members, for comparing (group ids are the caller's). */
const members = (step: GatherStep): Waiter[] | GatherStep => (step.kind === 'claimed' ? [...step.group.members] : step);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function describeGroupConformance(name: string, create: () => Promise<QueueUnderTest>): void {
  describe(`MatchQueue conformance, groups: ${name}`, () => {
    let under: QueueUnderTest;
    let queue: GroupQueue;
    beforeEach(async () => {
      under = await create();
      if (!gathersGroups(under.queue)) throw new Error(`${name} does not gather groups`);
      queue = under.queue;
    });
    afterEach(() => under.cleanup());

    it('gathers size - 1 waiters of distinct connections, oldest first, for the arrival that completes a group', async () => {
      const room = 'pool:p#4';
      const [a, a2, b, c] = [waiter(room, 'A'), waiter(room, 'A'), waiter(room, 'B'), waiter(room, 'C')];
      expect(await queue.gather(gatherRequest(a, 4))).toEqual(queued);
      expect(await queue.gather(gatherRequest(a2, 4))).toEqual(queued); // same connection: never in one group
      expect(await queue.gather(gatherRequest(b, 4))).toEqual(queued);
      // An arrival of connection A joins nothing: A is already there.
      expect(await queue.gather(gatherRequest(waiter(room, 'A'), 4, { mayWait: false }))).toEqual(refused('full'));
      const step = await queue.gather(gatherRequest(c, 4));
      expect(members(step)).toEqual(queued); // three connections of four
      const d = waiter(room, 'D');
      const formed = await queue.gather(gatherRequest(d, 4));
      expect(members(formed)).toEqual([a, b, c]);
      if (formed.kind !== 'claimed') return;
      expect(await queue.commitGroup(formed.group)).toBe(true);
      await queue.confirmGroup(formed.group);
      // a2 waits on, the oldest now.
      const [e, f] = [waiter(room, 'E'), waiter(room, 'F')];
      expect(await queue.gather(gatherRequest(e, 4))).toEqual(queued);
      expect(await queue.gather(gatherRequest(f, 4))).toEqual(queued);
      expect(members(await queue.gather(gatherRequest(waiter(room, 'G'), 4)))).toEqual([a2, e, f]);
    });

    it('keeps sizes apart: a room of each size is its own', async () => {
      const [a3, b4] = [waiter('pool:p#3', 'A'), waiter('pool:p#4', 'B')];
      expect(await queue.gather(gatherRequest(a3, 3))).toEqual(queued);
      expect(await queue.gather(gatherRequest(b4, 4))).toEqual(queued);
      const c3 = waiter('pool:p#3', 'C');
      expect(await queue.gather(gatherRequest(c3, 3))).toEqual(queued);
      expect(members(await queue.gather(gatherRequest(waiter('pool:p#3', 'D'), 3)))).toEqual([a3, c3]);
    });

    it('forms a partial group of at least min once the oldest has waited the fill time, not before', async () => {
      const room = 'pool:p#5/3';
      const [a, b] = [waiter(room, 'A'), waiter(room, 'B')];
      const ask = (w: Waiter) => gatherRequest(w, 5, { min: 3, fillWaitMs: 300 });
      expect(await queue.gather(ask(a))).toEqual(queued);
      expect(await queue.gather(ask(b))).toEqual(queued);
      const c = waiter(room, 'C');
      expect(await queue.gather(ask(c))).toEqual(queued); // three, but the oldest has not waited 300 ms
      await sleep(400);
      const d = waiter(room, 'D');
      const formed = await queue.gather(ask(d));
      expect(members(formed)).toEqual([a, b, c]);
    });

    it('fills a room when a waiter says its fill time is over: min or more of distinct connections, up to size', async () => {
      const room = 'code:f#4/2';
      const [a, a2] = [waiter(room, 'A'), waiter(room, 'A')];
      const ask = (w: Waiter) => gatherRequest(w, 4, { min: 2 });
      expect(await queue.gather(ask(a))).toEqual(queued);
      expect(await queue.gather(ask(a2))).toEqual(refused('code_taken'));
      const fill = { size: 4, min: 2, byCode: true, codeTtlMs: 60_000 };
      expect(await queue.fill(a, { ...fill, groupId: 'f1' })).toBeUndefined(); // alone
      const b = waiter(room, 'B');
      expect(await queue.gather(ask(b))).toEqual(queued);
      const group = await queue.fill(b, { ...fill, groupId: 'f2' });
      expect(group).toEqual({ groupId: 'f2', members: [a, b] });
      expect(await queue.fill(b, { ...fill, groupId: 'f3' })).toBeUndefined(); // no longer waiting
      // A code gathers one group: once it formed, the code is used.
      expect(await queue.gather(ask(waiter(room, 'C')))).toEqual(refused('code_used'));
    });

    it('commits a group once; a release after the commit says matched, and a commit after a release fails', async () => {
      const room = 'code:m#3';
      const [a, b] = [waiter(room, 'A'), waiter(room, 'B')];
      await queue.gather(gatherRequest(a, 3));
      await queue.gather(gatherRequest(b, 3));
      const step = await queue.gather(gatherRequest(waiter(room, 'C'), 3, { groupId: 'm1' }));
      if (step.kind !== 'claimed') throw new Error('not claimed');
      expect(await queue.commitGroup(step.group)).toBe(true);
      expect(await queue.commitGroup(step.group)).toBe(false);
      // A member's process that missed the word asks the record.
      expect(await queue.release(step.group, [a], [])).toBe('matched');
      expect(await queue.gather(gatherRequest(waiter(room, 'D'), 3))).toEqual(refused('code_used'));
      await queue.confirmGroup(step.group);
      // Withdrawn by a member's process first (its client left): the commit fails, and the code is free.
      const room2 = 'code:n#3';
      const [e, f] = [waiter(room2, 'E'), waiter(room2, 'F')];
      await queue.gather(gatherRequest(e, 3));
      await queue.gather(gatherRequest(f, 3));
      const second = await queue.gather(gatherRequest(waiter(room2, 'G'), 3, { groupId: 'n1' }));
      if (second.kind !== 'claimed') throw new Error('not claimed');
      expect(await queue.release(second.group, [], [f])).toBe('aborted');
      expect(await queue.commitGroup(second.group)).toBe(false);
      // The claimer puts back those still there (f was decided already: dropped, not put back).
      expect(await queue.release(second.group, [e, f], [])).toBe('aborted');
      const h = waiter(room2, 'H');
      expect(await queue.gather(gatherRequest(h, 3))).toEqual(queued);
      expect(members(await queue.gather(gatherRequest(waiter(room2, 'I'), 3)))).toEqual([e, h]);
    });

    it('puts released members back at the head in their order, before those who came later', async () => {
      const room = 'pool:r#4';
      const [a, b, c] = [waiter(room, 'A'), waiter(room, 'B'), waiter(room, 'C')];
      for (const w of [a, b, c]) await queue.gather(gatherRequest(w, 4));
      const step = await queue.gather(gatherRequest(waiter(room, 'D'), 4));
      if (step.kind !== 'claimed') throw new Error('not claimed');
      const late = waiter(room, 'L');
      expect(await queue.gather(gatherRequest(late, 4))).toEqual(queued);
      expect(await queue.cancel(a)).toBe(false); // claimed: not waiting
      expect(await queue.release(step.group, [a, c], [b])).toBe('aborted');
      expect(members(await queue.gather(gatherRequest(waiter(room, 'E'), 4)))).toEqual([a, c, late]);
    });

    it('counts a group waiter against its limit key, and gives the count back when claimed, and again when put back', async () => {
      const room = 'pool:k#3';
      const limited = { maxPerKey: 1 };
      const [a, b] = [waiter(room, 'A', 'ip1'), waiter(room, 'B', 'ip2')];
      expect(await queue.gather(gatherRequest(a, 3, limited))).toEqual(queued);
      expect(await queue.gather(gatherRequest(waiter('pool:other#3', 'X', 'ip1'), 3, limited))).toEqual(refused('ip_limit'));
      expect(await queue.gather(gatherRequest(b, 3, limited))).toEqual(queued);
      const step = await queue.gather(gatherRequest(waiter(room, 'C', 'ip3'), 3, limited));
      if (step.kind !== 'claimed') throw new Error('not claimed');
      const x = waiter('pool:other#3', 'X', 'ip1');
      expect(await queue.gather(gatherRequest(x, 3, limited))).toEqual(queued);
      expect(await queue.cancel(x)).toBe(true);
      expect(await queue.release(step.group, [a], [b])).toBe('aborted');
      expect(await queue.gather(gatherRequest(waiter('pool:other#3', 'X', 'ip1'), 3, limited))).toEqual(refused('ip_limit'));
      expect(await queue.gather(gatherRequest(waiter('pool:other#3', 'Y', 'ip2'), 3, limited))).toEqual(queued);
    });

    it('agrees with a simple model on random gathers (sizes 2 to 8), fills, cancels, commits, releases and withdrawals', async () => {
      const sizes = fc.constantFrom(2, 3, 4, 5, 8);
      const op = fc.oneof(
        { weight: 5, arbitrary: fc.record({ kind: fc.constant('join' as const), name: fc.constantFrom('pool:p', 'code:c'), size: sizes, partial: fc.boolean(), connection: fc.constantFrom('A', 'B', 'C', 'D', 'E', 'F', 'G', 'H'), key: fc.constantFrom('k1', 'k2', 'k3'), mayWait: fc.boolean(), filled: fc.boolean() }) },
        { weight: 1, arbitrary: fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }) },
        { weight: 1, arbitrary: fc.record({ kind: fc.constant('fill' as const), pick: fc.nat() }) },
        { weight: 2, arbitrary: fc.record({ kind: fc.constant('settle' as const), pick: fc.nat(), how: fc.constantFrom('commit', 'release', 'withdraw-commit', 'withdraw-release'), mask: fc.nat() }) },
      );
      await fc.assert(
        fc.asyncProperty(fc.array(op, { maxLength: 50 }), async (ops) => {
          await under.cleanup();
          under = await create();
          const real = under.queue as GroupQueue;
          const model = new GroupModel();
          const known: { w: Waiter; size: number; min: number }[] = [];
          const open: GroupClaim[] = [];
          for (const o of ops) {
            if (o.kind === 'join') {
              const min = o.partial && o.size > 2 ? 2 : o.size;
              const room = o.size === 2 ? o.name : `${o.name}#${o.size}${min < o.size ? `/${min}` : ''}`;
              const w = waiter(room, o.connection, o.key);
              known.push({ w, size: o.size, min });
              const req = gatherRequest(w, o.size, { min, mayWait: o.mayWait, maxPerKey: 3, fillWaitMs: o.filled ? 0 : 1e9 });
              const expected = model.gather(req);
              if (o.size === 2) {
                // A pair is the group of two, on the pairs' own step: the same outcome, then settled at once.
                const step = await real.join(req);
                expect(step.kind === 'claimed' ? [step.peer] : step).toEqual(members(expected));
                if (step.kind === 'claimed' && expected.kind === 'claimed') {
                  if (o.filled) {
                    expect(await real.commit(step.peer, w.id)).toBe(true);
                    await real.confirm(step.peer);
                    model.commitGroup(expected.group);
                  } else {
                    expect(await real.abort(step.peer, o.mayWait)).toBe('aborted');
                    model.release(expected.group, o.mayWait ? [step.peer] : [], o.mayWait ? [] : [step.peer]);
                  }
                }
                continue;
              }
              const step = await real.gather(req);
              expect(members(step)).toEqual(members(expected));
              if (step.kind === 'claimed') open.push(step.group);
            } else if (o.kind === 'cancel') {
              const k = known[o.pick % Math.max(1, known.length)];
              if (k !== undefined) expect(await real.cancel(k.w)).toBe(model.cancel(k.w));
            } else if (o.kind === 'fill') {
              const k = known[o.pick % Math.max(1, known.length)];
              if (k === undefined || k.size === 2 || k.min === k.size) continue;
              const request = { size: k.size, min: k.min, byCode: k.w.room.startsWith('code:'), codeTtlMs: 60_000, groupId: `g${++groups}` };
              const expected = model.fill(k.w, request);
              const group = await real.fill(k.w, request);
              expect(group?.members).toEqual(expected?.members);
              if (group !== undefined) open.push(group);
            } else {
              const group = open.splice(o.pick % Math.max(1, open.length), 1)[0];
              if (group === undefined) continue;
              const back = group.members.filter((_, i) => ((o.mask >> i) & 1) === 0);
              const drop = group.members.filter((_, i) => ((o.mask >> i) & 1) === 1);
              if (o.how === 'withdraw-commit' || o.how === 'withdraw-release') {
                // A member's process withdraws its own member first (its client left).
                const gone = group.members[o.mask % group.members.length] as Waiter;
                expect(await real.release(group, [], [gone])).toBe(model.release(group, [], [gone]));
              }
              if (o.how === 'commit' || o.how === 'withdraw-commit') {
                const committed = await real.commitGroup(group);
                expect(committed).toBe(model.commitGroup(group));
                if (committed) {
                  expect(await real.release(group, back, drop)).toBe('matched');
                  await real.confirmGroup(group);
                  continue;
                }
              }
              expect(await real.release(group, back, drop)).toBe(model.release(group, back, drop));
            }
          }
        }),
        { numRuns: 120, seed: 27 },
      );
    });
  });
}

interface ModelGroup {
  state: 'open' | 'committed' | 'aborted';
  readonly code: string | undefined;
  readonly undecided: Map<string, Waiter>;
}

/** Gathering as plainly as it can be written (codes never expire; the fill time is 0 or never). */
class GroupModel {
  readonly rooms = new Map<string, Waiter[]>();
  readonly used = new Set<string>();
  readonly groups = new Map<string, ModelGroup>();

  #waiting(key: string): number {
    return [...this.rooms.values()].flat().filter((x) => x.limitKey === key).length;
  }

  #claim(groupId: string, picked: Waiter[], code: string | undefined): GroupClaim {
    const room = this.rooms.get((picked[0] as Waiter).room) ?? [];
    this.rooms.set((picked[0] as Waiter).room, room.filter((x) => !picked.includes(x)));
    this.groups.set(groupId, { state: 'open', code, undecided: new Map(picked.map((w) => [w.id, w])) });
    if (code !== undefined) this.used.add(code);
    return { groupId, members: picked };
  }

  gather(r: GatherRequest): GatherStep {
    const { waiter: w, byCode, size, min } = r;
    if (byCode && this.used.has(w.room)) return refused('code_used');
    const list = this.rooms.get(w.room) ?? [];
    const picked: Waiter[] = [];
    const seen = new Set([w.connection]);
    for (const candidate of list) {
      if (candidate.connection === w.connection) {
        if (byCode) return refused('code_taken');
        continue;
      }
      if (picked.length < size - 1 && !seen.has(candidate.connection)) {
        seen.add(candidate.connection);
        picked.push(candidate);
      }
    }
    const count = picked.length + 1;
    if (count === size || (min < size && count >= min && r.fillWaitMs === 0)) {
      return { kind: 'claimed', group: this.#claim(r.groupId, picked, byCode ? w.room : undefined) };
    }
    if (!r.mayWait) return refused('full');
    if (r.maxPerKey > 0 && this.#waiting(w.limitKey) >= r.maxPerKey) return refused('ip_limit');
    this.rooms.set(w.room, [...list, w]);
    return queued;
  }

  fill(w: Waiter, r: { size: number; min: number; byCode: boolean; groupId: string }): GroupClaim | undefined {
    const list = this.rooms.get(w.room) ?? [];
    if (!list.some((x) => x.id === w.id)) return undefined;
    const picked: Waiter[] = [];
    const seen = new Set<string>();
    for (const candidate of list) {
      if (picked.length === r.size || seen.has(candidate.connection)) continue;
      seen.add(candidate.connection);
      picked.push(candidate);
    }
    if (picked.length < r.min) return undefined;
    return this.#claim(r.groupId, picked, r.byCode ? w.room : undefined);
  }

  cancel(w: Waiter): boolean {
    const list = this.rooms.get(w.room) ?? [];
    const i = list.findIndex((x) => x.id === w.id);
    if (i < 0) return false;
    list.splice(i, 1);
    return true;
  }

  commitGroup(group: GroupClaim): boolean {
    const record = this.groups.get(group.groupId);
    if (record?.state !== 'open') return false;
    record.state = 'committed';
    return true;
  }

  release(group: GroupClaim, back: readonly Waiter[], drop: readonly Waiter[]): 'aborted' | 'matched' {
    const record = this.groups.get(group.groupId);
    if (record === undefined) return 'aborted';
    if (record.state === 'committed') return 'matched';
    if (record.state === 'open') {
      record.state = 'aborted';
      if (record.code !== undefined) this.used.delete(record.code);
    }
    for (const gone of drop) record.undecided.delete(gone.id);
    const returning = group.members.filter((m) => back.includes(m) && record.undecided.has(m.id));
    for (const m of returning) record.undecided.delete(m.id);
    if (returning.length > 0) {
      const room = (returning[0] as Waiter).room;
      this.rooms.set(room, [...returning, ...(this.rooms.get(room) ?? [])]);
    }
    return 'aborted';
  }
}
