import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Lobby } from '../../src/core/lobby.js';
import type { Ticket } from '../../src/core/ticket.js';
import type { JoinRequest, Outcome } from '../../src/core/types.js';
import { MemoryQueue } from '../../src/queue/memory.js';
import type { JoinStep, MatchQueue, PeerLink } from '../../src/queue/seam.js';
import { audit } from '../helpers/audit.js';

let connections = 0;

/** A client the test controls: it can vanish (noticed or not) and counts how it is watched. */
class FakeClient {
  gone = false;
  onGone: (() => void) | undefined;
  watching = 0;
  constructor(
    readonly address: string,
    readonly ip = '192.0.2.1',
    readonly connection = `c${++connections}`,
  ) {}

  /** A request to wait in `pool` (default `p`), or with `code` when given. */
  request({ pool = 'p', code, ...overrides }: Partial<JoinRequest> & { pool?: string; code?: string } = {}): JoinRequest {
    return {
      room: code === undefined ? { kind: 'pool', name: pool } : { kind: 'code', name: code },
      limitKey: this.ip,
      address: this.address,
      via: 'socket',
      connection: this.connection,
      meta: undefined,
      timeoutMs: 1000,
      isGone: () => this.gone,
      watch: (onGone) => {
        this.watching++;
        this.onGone = onGone;
        return () => {
          this.watching--;
          this.onGone = undefined;
        };
      },
      ...overrides,
    };
  }

  /** The close event: the client left and the server noticed. */
  leave(): void {
    this.gone = true;
    this.onGone?.();
  }
}

/** The outcome if settled by now, without waiting. */
async function settledNow(ticket: Ticket): Promise<Outcome | 'pending'> {
  return Promise.race([ticket.outcome, Promise.resolve('pending' as const)]);
}

/** Lets the lobby's steps through the queue (resolved promises) run. */
async function ticks(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

let queue: MemoryQueue;
let lobby: Lobby;
/** Joins and lets the join's step run: the ticket is then paired, queued or refused. */
async function join(request: JoinRequest, into: Lobby = lobby): Promise<Ticket> {
  const ticket = into.join(request);
  await ticks();
  return ticket;
}

beforeEach(() => {
  vi.useFakeTimers();
  queue = new MemoryQueue();
  lobby = new Lobby({ queue, limits: { maxWaiting: 100, maxWaitingPerIp: 10, codeTtlMs: 60_000 } });
});
afterEach(() => {
  expect(vi.getTimerCount()).toBe(0);
  vi.useRealTimers();
});

describe('Lobby', () => {
  it('pairs two joins: one matchId, the waiter is the initiator', async () => {
    const a = new FakeClient('192.0.2.1:1000');
    const b = new FakeClient('192.0.2.2:2000', '192.0.2.2');
    const first = await join(a.request());
    expect(await settledNow(first)).toBe('pending');
    expect(lobby.waiting).toBe(1);
    expect(a.watching).toBe(1);
    await vi.advanceTimersByTimeAsync(250);
    const second = await join(b.request());
    const [outA, outB] = [await first.outcome, await second.outcome];
    if (outA.kind !== 'matched' || outB.kind !== 'matched') throw new Error('not matched');
    expect(outA.matchId).toBe(outB.matchId);
    expect([outA.initiator, outB.initiator]).toEqual([true, false]);
    expect(outA.peer).toBe(second.waiter);
    expect(outB.peer).toBe(first.waiter);
    expect(outA.waitedMs).toBe(250);
    expect(outB.waitedMs).toBe(0);
    expect(lobby.waiting).toBe(0);
    expect(queue.waitingFrom('192.0.2.1')).toBe(0);
    expect(a.watching).toBe(0);
  });

  it('times a lone waiter out once and cleans up', async () => {
    const a = new FakeClient('192.0.2.1:1000');
    const ticket = await join(a.request({ timeoutMs: 500 }));
    await vi.advanceTimersByTimeAsync(499);
    expect(await settledNow(ticket)).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(await ticket.outcome).toEqual({ kind: 'timeout', waitedMs: 500 });
    expect(lobby.waiting).toBe(0);
    expect(a.watching).toBe(0);
    expect(queue.waitingFrom(a.ip)).toBe(0);
  });

  it('settles a waiter whose client left as gone, and never pairs it afterwards', async () => {
    const a = new FakeClient('192.0.2.1:1000');
    const ticket = await join(a.request());
    a.leave();
    expect(await ticket.outcome).toEqual({ kind: 'gone' });
    expect(lobby.waiting).toBe(0);
    const b = new FakeClient('192.0.2.1:2000');
    const next = await join(b.request());
    expect(await settledNow(next)).toBe('pending');
    b.leave();
  });

  it('skips a waiter found gone at pairing time, before its close event, and pairs with the next', async () => {
    // Two streams of one HTTP/2 connection, so that they queue one behind the other.
    const dead = new FakeClient('192.0.2.1:1000', '192.0.2.1', 'session');
    const live = new FakeClient('192.0.2.1:1000', '192.0.2.1', 'session');
    const deadTicket = await join(dead.request());
    const liveTicket = await join(live.request());
    dead.gone = true; // socket destroyed, close event not run yet
    const caller = new FakeClient('192.0.2.9:3000');
    const callerTicket = await join(caller.request());
    expect(await deadTicket.outcome).toEqual({ kind: 'gone' });
    expect((await callerTicket.outcome).kind).toBe('matched');
    expect(((await liveTicket.outcome) as { peer: unknown }).peer).toBe(callerTicket.waiter);
    expect(dead.watching).toBe(0);
    dead.onGone?.(); // the late close event finds nothing to do
    expect(lobby.waiting).toBe(0);
    expect(queue.size).toBe(0);
  });

  it('puts the waiter back when the arrival itself is gone by the time of pairing', async () => {
    const a = new FakeClient('192.0.2.1:1000');
    const waiter = await join(a.request());
    const b = new FakeClient('192.0.2.2:2000', '192.0.2.2');
    b.gone = true;
    const arrival = await join(b.request());
    expect(await arrival.outcome).toEqual({ kind: 'gone' });
    expect(await settledNow(waiter)).toBe('pending');
    const c = await join(new FakeClient('192.0.2.3:3000', '192.0.2.3').request());
    expect(((await waiter.outcome) as { peer: unknown }).peer).toBe(c.waiter);
  });

  it('never pairs two requests of one connection', async () => {
    const a = new FakeClient('192.0.2.1:1000');
    const one = await join(a.request());
    const two = await join(a.request());
    expect(lobby.waiting).toBe(2);
    expect(await settledNow(one)).toBe('pending');
    expect(await settledNow(two)).toBe('pending');
    lobby.close();
  });

  describe('two outcomes in one tick: the first wins, the second does nothing', () => {
    it('match, then timeout', async () => {
      const a = new FakeClient('192.0.2.1:1000');
      const waiter = await join(a.request({ timeoutMs: 100 }));
      await vi.advanceTimersByTimeAsync(99);
      await join(new FakeClient('192.0.2.1:2000').request());
      await vi.advanceTimersByTimeAsync(1);
      expect((await waiter.outcome).kind).toBe('matched');
    });

    it('match, then the client leaves', async () => {
      const a = new FakeClient('192.0.2.1:1000');
      const waiter = await join(a.request());
      const onGone = a.onGone;
      await join(new FakeClient('192.0.2.1:2000').request());
      onGone?.(); // a close event already queued when the match happened
      expect((await waiter.outcome).kind).toBe('matched');
      expect(lobby.waiting).toBe(0);
      expect(queue.waitingFrom(a.ip)).toBe(0);
    });

    it('client leaves, then timeout', async () => {
      const a = new FakeClient('192.0.2.1:1000');
      const waiter = await join(a.request({ timeoutMs: 100 }));
      await vi.advanceTimersByTimeAsync(99);
      a.leave();
      await vi.advanceTimersByTimeAsync(1);
      expect(await waiter.outcome).toEqual({ kind: 'gone' });
      expect(queue.waitingFrom(a.ip)).toBe(0);
    });

    it('shutdown, then timeout and leave', async () => {
      const a = new FakeClient('192.0.2.1:1000');
      const waiter = await join(a.request({ timeoutMs: 100 }));
      const onGone = a.onGone;
      expect(lobby.close()).toBe(1);
      onGone?.();
      await vi.advanceTimersByTimeAsync(100);
      expect(await waiter.outcome).toEqual({ kind: 'shutdown' });
      await ticks();
      expect(queue.waitingFrom(a.ip)).toBe(0);
    });

    it('match, then shutdown', async () => {
      const a = new FakeClient('192.0.2.1:1000');
      const waiter = await join(a.request());
      await join(new FakeClient('192.0.2.1:2000').request());
      expect(lobby.close()).toBe(0);
      expect((await waiter.outcome).kind).toBe('matched');
    });

    it('shutdown while a join is in flight: answered shutdown, and nothing left queued', async () => {
      const ticket = lobby.join(new FakeClient('192.0.2.1:1000').request());
      expect(lobby.close()).toBe(1);
      await ticks();
      expect(await ticket.outcome).toEqual({ kind: 'shutdown' });
      expect([lobby.waiting, queue.size]).toEqual([0, 0]);
    });
  });

  it('refuses to queue past the limits but still pairs', async () => {
    const small = new Lobby({ queue: new MemoryQueue(), limits: { maxWaiting: 2, maxWaitingPerIp: 1, codeTtlMs: 60_000 } });
    const a = new FakeClient('192.0.2.1:1000');
    await join(a.request({ pool: 'x' }), small);
    const refusal = async (request: JoinRequest) => (await join(request, small)).outcome;
    expect(await refusal(new FakeClient('192.0.2.1:1001').request({ pool: 'y' }))).toEqual({ kind: 'refused', refusal: 'ip_limit' });
    await join(new FakeClient('192.0.2.2:1000', '192.0.2.2').request({ pool: 'y' }), small);
    expect(await refusal(new FakeClient('192.0.2.3:1000', '192.0.2.3').request({ pool: 'z' }))).toEqual({ kind: 'refused', refusal: 'full' });
    const pairing = await join(new FakeClient('192.0.2.1:1002').request({ pool: 'x' }), small);
    expect((await pairing.outcome).kind).toBe('matched');
    expect(small.waiting).toBe(1);
    expect(small.close()).toBe(1);
    expect(await refusal(a.request())).toEqual({ kind: 'refused', refusal: 'closing' });
  });

  it('answers a request whose queue step failed, once, and tells onError', async () => {
    const errors: unknown[] = [];
    const broken: MatchQueue = {
      join: (): Promise<JoinStep> => Promise.reject(new Error('backend down')),
      commit: () => Promise.resolve(false),
      confirm: () => Promise.resolve(),
      abort: () => Promise.resolve('aborted' as const),
      cancel: () => Promise.resolve(false),
      close: () => Promise.resolve(),
    };
    const failing = new Lobby({ queue: broken, limits: { maxWaiting: 2, maxWaitingPerIp: 0, codeTtlMs: 1 }, onError: (e) => errors.push(e) });
    const ticket = await join(new FakeClient('192.0.2.1:1').request(), failing);
    const outcome = await ticket.outcome;
    expect(outcome.kind).toBe('failed');
    expect(errors).toEqual([new Error('backend down')]);
    expect(failing.waiting).toBe(0);
  });
});

describe('Lobby: rendezvous codes and secrets', () => {
  const SECRET = /^[A-Za-z0-9_-]{43}$/;

  async function matched(ticket: Ticket) {
    const outcome = await ticket.outcome;
    if (outcome.kind !== 'matched') throw new Error(`not matched: ${outcome.kind}`);
    return outcome;
  }
  const CODE_USED = { kind: 'refused', refusal: 'code_used' };

  it('pairs the two holders of a code, both with one 32-byte secret, and refuses the code afterwards', async () => {
    const first = await join(new FakeClient('192.0.2.1:1000').request({ code: 'blue-fox' }));
    const second = await join(new FakeClient('192.0.2.2:2000', '192.0.2.2').request({ code: 'blue-fox' }));
    const [a, b] = [await matched(first), await matched(second)];
    expect(a.peer).toBe(second.waiter);
    expect(a.secret).toMatch(SECRET);
    expect(Buffer.from(a.secret, 'base64url')).toHaveLength(32);
    expect(b.secret).toBe(a.secret);
    expect(b.matchId).toBe(a.matchId);
    const third = await join(new FakeClient('192.0.2.3:3000', '192.0.2.3').request({ code: 'blue-fox' }));
    expect(await third.outcome).toEqual(CODE_USED);
    expect(lobby.waiting).toBe(0);
    expect(queue.footprint.usedCodes).toBe(1);
  });

  it('keeps a used code refused for its whole TTL, however often it is tried, and frees it after', async () => {
    await join(new FakeClient('192.0.2.1:1000').request({ code: 'c1' }));
    await join(new FakeClient('192.0.2.2:2000', '192.0.2.2').request({ code: 'c1' }));
    const third = new FakeClient('192.0.2.3:3000', '192.0.2.3');
    for (let t = 0; t < 59_999; t += 10_000) {
      await vi.advanceTimersByTimeAsync(Math.min(10_000, 59_999 - t));
      expect(await (await join(third.request({ code: 'c1' }))).outcome).toEqual(CODE_USED);
    }
    await vi.advanceTimersByTimeAsync(1);
    const again = await join(third.request({ code: 'c1' }));
    expect(await settledNow(again)).toBe('pending');
    expect(queue.footprint.usedCodes).toBe(0);
    lobby.close();
  });

  it('leaves a code free when its waiter timed out or left, so it can be tried again', async () => {
    const a = new FakeClient('192.0.2.1:1000');
    const timedOut = await join(a.request({ code: 'c2', timeoutMs: 100 }));
    await vi.advanceTimersByTimeAsync(100);
    expect((await timedOut.outcome).kind).toBe('timeout');
    const left = await join(a.request({ code: 'c2' }));
    a.leave();
    expect((await left.outcome).kind).toBe('gone');
    await ticks();
    const retry = await join(new FakeClient('192.0.2.1:1001').request({ code: 'c2' }));
    const partner = await join(new FakeClient('192.0.2.2:2000', '192.0.2.2').request({ code: 'c2' }));
    expect((await matched(retry)).peer).toBe(partner.waiter);
  });

  it('refuses a code its own connection already waits with, and keeps that waiter', async () => {
    const a = new FakeClient('192.0.2.1:1000');
    const waiting = await join(a.request({ code: 'c3' }));
    expect(await (await join(a.request({ code: 'c3' }))).outcome).toEqual({ kind: 'refused', refusal: 'code_taken' });
    expect(lobby.waiting).toBe(1);
    const partner = await join(new FakeClient('192.0.2.2:2000', '192.0.2.2').request({ code: 'c3' }));
    expect((await matched(waiting)).peer).toBe(partner.waiter);
  });

  it('never pairs a code with a pool of the same name, nor two different codes', async () => {
    const byCode = await join(new FakeClient('192.0.2.1:1000').request({ code: 'same' }));
    const byPool = await join(new FakeClient('192.0.2.2:2000', '192.0.2.2').request({ pool: 'same' }));
    const other = await join(new FakeClient('192.0.2.3:3000', '192.0.2.3').request({ code: 'other' }));
    for (const t of [byCode, byPool, other]) expect(await settledNow(t)).toBe('pending');
    expect(queue.footprint).toEqual({ waiting: 3, rooms: 3, keys: 3, usedCodes: 0 });
    lobby.close();
  });

  it('gives every match its own secret, pools included', async () => {
    const secrets = new Set<string>();
    for (let i = 0; i < 20; i++) {
      await join(new FakeClient(`192.0.2.1:${1000 + i}`).request());
      const arrival = await join(new FakeClient(`192.0.2.2:${1000 + i}`, '192.0.2.2').request());
      const { secret } = await matched(arrival);
      expect(secret).toMatch(SECRET);
      secrets.add(secret);
    }
    expect(secrets.size).toBe(20);
  });
});

describe('audit (test helper)', () => {
  it('finds two live clients of different connections waiting in one room, leaving out those gone', async () => {
    const a = new FakeClient('192.0.2.1:1');
    const b = new FakeClient('192.0.2.2:2');
    const [ta, tb] = [lobby.join(a.request()), lobby.join(b.request({ pool: 'other' }))];
    await ticks();
    expect(audit(queue, lobby)).toEqual([]);
    // Only a broken queue could put b beside a: show the audit such a queue's contents.
    const broken = { waiters: () => [ta.waiter, { ...tb.waiter, room: 'pool:p' }] };
    expect(audit(broken, lobby)).toEqual(['pool:p: 192.0.2.2:2 waits beside another live client']);
    a.gone = true;
    expect(audit(broken, lobby)).toEqual([]);
    lobby.close();
  });
});

describe('Lobby: waiters held by another process', () => {
  /** Two lobbies (two processes) on one queue, linked by offers that can be lost on the way. */
  function twoProcesses(link: { lose?: 'offer' | 'answer' } = {}) {
    const shared = new MemoryQueue();
    const limits = { maxWaiting: 10, maxWaitingPerIp: 0, codeTtlMs: 60_000 };
    const lobbies: Record<string, Lobby> = {};
    const peers: PeerLink = {
      async offer(peer, offer) {
        if (link.lose === 'offer') return 'unanswered';
        const answer = await (lobbies[peer.owner] as Lobby).offered(peer.id, offer);
        return link.lose === 'answer' ? 'unanswered' : answer;
      },
    };
    const a = new Lobby({ queue: shared, owner: 'A', limits, peers });
    const b = new Lobby({ queue: shared, owner: 'B', limits, peers });
    lobbies.A = a;
    lobbies.B = b;
    return { shared, a, b };
  }

  async function outcomeOf(ticket: Ticket): Promise<Outcome> {
    await ticks();
    return ticket.outcome;
  }

  it('pairs an arrival with another process’s waiter once that process answered it', async () => {
    const { shared, a, b } = twoProcesses();
    const waiter = await join(new FakeClient('192.0.2.1:1').request(), a);
    const arrival = await join(new FakeClient('192.0.2.2:2').request(), b);
    const [w, r] = [await outcomeOf(waiter), await outcomeOf(arrival)];
    if (w.kind !== 'matched' || r.kind !== 'matched') throw new Error(`not matched: ${w.kind} ${r.kind}`);
    expect([w.matchId, w.secret, w.initiator, w.peer]).toEqual([r.matchId, r.secret, true, arrival.waiter]);
    expect([r.initiator, r.peer]).toEqual([false, waiter.waiter]);
    expect([a.waiting, b.waiting, shared.size]).toEqual([0, 0, 0]);
  });

  it('never hands out a waiter whose process finds its client gone, and drops it', async () => {
    const { shared, a, b } = twoProcesses();
    const left = new FakeClient('192.0.2.1:1');
    const waiter = await join(left.request(), a);
    left.gone = true; // destroyed, close event not run yet
    const arrival = await join(new FakeClient('192.0.2.2:2').request(), b);
    expect(await outcomeOf(waiter)).toEqual({ kind: 'gone' });
    expect(await settledNow(arrival)).toBe('pending'); // it waits in the waiter's place
    expect([a.waiting, b.waiting, shared.size]).toEqual([0, 1, 1]);
    b.close();
  });

  it('answers the arrival matched when only the answer was lost: the claim record says committed', async () => {
    const { shared, a, b } = twoProcesses({ lose: 'answer' });
    const waiter = await join(new FakeClient('192.0.2.1:1').request(), a);
    const arrival = await join(new FakeClient('192.0.2.2:2').request(), b);
    const [w, r] = [await outcomeOf(waiter), await outcomeOf(arrival)];
    expect([w.kind, r.kind]).toEqual(['matched', 'matched']);
    expect((w as { matchId: string }).matchId).toBe((r as { matchId: string }).matchId);
    expect(shared.size).toBe(0);
  });

  it('never answers matched when the offer was lost: the waiter is dropped, its process times it out', async () => {
    const { shared, a, b } = twoProcesses({ lose: 'offer' });
    const waiter = await join(new FakeClient('192.0.2.1:1').request({ timeoutMs: 500 }), a);
    const arrival = await join(new FakeClient('192.0.2.2:2').request({ timeoutMs: 500 }), b);
    expect(await settledNow(arrival)).toBe('pending');
    expect([shared.size, shared.waiters()[0]?.owner]).toEqual([1, 'B']);
    await vi.advanceTimersByTimeAsync(500);
    expect((await waiter.outcome).kind).toBe('timeout');
    expect((await arrival.outcome).kind).toBe('timeout');
  });
});

describe('Lobby: an offer that comes after its claimer gave up', () => {
  it('never commits the claim another arrival made since: the waiter is paired with that arrival alone', async () => {
    const shared = new MemoryQueue();
    const limits = { maxWaiting: 10, maxWaitingPerIp: 0, codeTtlMs: 60_000 };
    const lobbies: Record<string, Lobby> = {};
    /** Offers held on the way, delivered when the test says; the claimer hears nothing until its time is up. */
    const held: { id: string; offer: Parameters<Lobby['offered']>[1]; answered?: (answer: 'matched' | 'gone') => void }[] = [];
    const peers: PeerLink = {
      offer(peer, offer, waitMs) {
        return new Promise((resolve) => {
          const timer = setTimeout(() => resolve('unanswered'), waitMs);
          held.push({
            id: peer.id,
            offer,
            answered: (answer) => {
              clearTimeout(timer);
              resolve(answer);
            },
          });
        });
      },
    };
    const a = new Lobby({ queue: shared, owner: 'A', limits, peers });
    const b = new Lobby({ queue: shared, owner: 'B', limits, peers });
    lobbies.A = a;
    lobbies.B = b;
    const waiter = await join(new FakeClient('192.0.2.1:1').request({ timeoutMs: 5000 }), a);
    const first = await join(new FakeClient('192.0.2.2:2').request({ timeoutMs: 500 }), b);
    expect(held.map((h) => h.offer.arrival.id)).toEqual([first.waiter.id]);
    // The first arrival's offer is slow: its time runs out, the waiter goes back and is claimed by the second.
    await vi.advanceTimersByTimeAsync(500);
    expect((await first.outcome).kind).toBe('timeout');
    const second = await join(new FakeClient('192.0.2.3:3').request({ timeoutMs: 5000 }), b);
    expect(held.map((h) => h.offer.arrival.id)).toEqual([first.waiter.id, second.waiter.id]);
    const [late, current] = held as [(typeof held)[0], (typeof held)[0]];
    // The late offer reaches the waiter's process now: its claim is no longer there to commit.
    expect(await a.offered(late.id, late.offer)).toBe('gone');
    expect(await settledNow(waiter)).toBe('pending');
    current.answered?.(await a.offered(current.id, current.offer));
    await ticks();
    const [w, r] = [await waiter.outcome, await second.outcome];
    if (w.kind !== 'matched' || r.kind !== 'matched') throw new Error(`not matched: ${w.kind} ${r.kind}`);
    expect([w.matchId, w.peer, r.peer]).toEqual([r.matchId, second.waiter, waiter.waiter]);
    expect([a.waiting, b.waiting, shared.size]).toEqual([0, 0, 0]);
  });
});
