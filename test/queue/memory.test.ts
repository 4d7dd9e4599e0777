import { describe, expect, it } from 'vitest';
import { MemoryQueue } from '../../src/queue/memory.js';
import { describeQueueConformance, waiter } from './conformance.js';
import { describeGroupConformance } from './group-conformance.js';

describeQueueConformance('in memory', () => Promise.resolve({ queue: new MemoryQueue(), cleanup: () => Promise.resolve() }));
describeGroupConformance('in memory', () => Promise.resolve({ queue: new MemoryQueue(), cleanup: () => Promise.resolve() }));

describe('MemoryQueue', () => {
  it('forgets the oldest used codes past its bound, and only those', () => {
    let now = 0;
    const queue = new MemoryQueue({ maxRememberedCodes: 2, now: () => now });
    for (const code of ['c1', 'c2', 'c3']) {
      const a = waiter(`code:${code}`, 'A');
      queue.join({ waiter: a, byCode: true, mayWait: true, maxPerKey: 0, codeTtlMs: 1000, waitMs: 1000 });
      queue.join({ waiter: waiter(`code:${code}`, 'B'), byCode: true, mayWait: true, maxPerKey: 0, codeTtlMs: 1000, waitMs: 1000 });
      queue.confirm(a);
      now += 1;
    }
    const retry = (code: string) => queue.join({ waiter: waiter(`code:${code}`, 'C'), byCode: true, mayWait: false, maxPerKey: 0, codeTtlMs: 1000, waitMs: 1000 });
    expect([retry('c1'), retry('c2'), retry('c3')]).toEqual([
      { kind: 'refused', refusal: 'full' }, // forgotten: free again (and nobody waits there)
      { kind: 'refused', refusal: 'code_used' },
      { kind: 'refused', refusal: 'code_used' },
    ]);
    expect(queue.footprint.usedCodes).toBe(2);
    now += 1000;
    expect(retry('c3')).toEqual({ kind: 'refused', refusal: 'full' });
    expect(queue.footprint.usedCodes).toBe(0);
  });

  it('drops empty rooms and counts, so one-off pools do not accumulate', () => {
    const queue = new MemoryQueue();
    const waiters = Array.from({ length: 100 }, (_, i) => waiter(`pool:one-off-${i}`, `C${i}`, `ip${i}`));
    for (const w of waiters) queue.join({ waiter: w, byCode: false, mayWait: true, maxPerKey: 5, codeTtlMs: 1, waitMs: 1000 });
    expect(queue.footprint).toEqual({ waiting: 100, rooms: 100, keys: 100, usedCodes: 0 });
    for (const w of waiters) queue.cancel(w);
    expect(queue.footprint).toEqual({ waiting: 0, rooms: 0, keys: 0, usedCodes: 0 });
  });
});
