import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Lobby, type JoinRequest, type Outcome, type Ticket } from '../src/lobby.js';
import { Matchmaker } from '../src/matchmaker.js';

/** A client the test controls: it can vanish (noticed or not) and counts how it is watched. */
class FakeClient {
  gone = false;
  onGone: (() => void) | undefined;
  watching = 0;
  constructor(
    readonly address: string,
    readonly ip = '192.0.2.1',
    readonly connection: object = {},
  ) {}

  /** A request to wait in `pool` (default `p`), or with `code` when given. */
  request({ pool = 'p', code, ...overrides }: Partial<JoinRequest> & { pool?: string; code?: string } = {}): JoinRequest {
    return {
      room: code === undefined ? { kind: 'pool', name: pool } : { kind: 'code', name: code },
      ip: this.ip,
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

function ticketOf(joined: Ticket | string): Ticket {
  if (typeof joined === 'string') throw new Error(`refused: ${joined}`);
  return joined;
}

/** The outcome if settled by now, without waiting. */
async function settledNow(ticket: Ticket): Promise<Outcome | 'pending'> {
  return Promise.race([ticket.outcome, Promise.resolve('pending' as const)]);
}

let lobby: Lobby;
beforeEach(() => {
  vi.useFakeTimers();
  lobby = new Lobby(new Matchmaker<Ticket>(), { maxWaiting: 100, maxWaitingPerIp: 10, codeTtlMs: 60_000 });
});
afterEach(() => {
  expect(vi.getTimerCount()).toBe(0);
  vi.useRealTimers();
});

describe('Lobby', () => {
  it('pairs two joins: one matchId, the waiter is the initiator', async () => {
    const a = new FakeClient('192.0.2.1:1000');
    const b = new FakeClient('192.0.2.2:2000', '192.0.2.2');
    const first = ticketOf(lobby.join(a.request()));
    expect(await settledNow(first)).toBe('pending');
    expect(lobby.waiting).toBe(1);
    expect(a.watching).toBe(1);
    await vi.advanceTimersByTimeAsync(250);
    const second = ticketOf(lobby.join(b.request()));
    const [outA, outB] = [await first.outcome, await second.outcome];
    if (outA.kind !== 'matched' || outB.kind !== 'matched') throw new Error('not matched');
    expect(outA.matchId).toBe(outB.matchId);
    expect([outA.initiator, outB.initiator]).toEqual([true, false]);
    expect(outA.peer).toBe(second);
    expect(outB.peer).toBe(first);
    expect(outA.waitedMs).toBe(250);
    expect(outB.waitedMs).toBe(0);
    expect(lobby.waiting).toBe(0);
    expect(lobby.waitingFrom('192.0.2.1')).toBe(0);
    expect(a.watching).toBe(0);
  });

  it('times a lone waiter out once and cleans up', async () => {
    const a = new FakeClient('192.0.2.1:1000');
    const ticket = ticketOf(lobby.join(a.request({ timeoutMs: 500 })));
    await vi.advanceTimersByTimeAsync(499);
    expect(await settledNow(ticket)).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(await ticket.outcome).toEqual({ kind: 'timeout', waitedMs: 500 });
    expect(lobby.waiting).toBe(0);
    expect(a.watching).toBe(0);
    expect(lobby.waitingFrom(a.ip)).toBe(0);
  });

  it('settles a waiter whose client left as gone, and never pairs it afterwards', async () => {
    const a = new FakeClient('192.0.2.1:1000');
    const ticket = ticketOf(lobby.join(a.request()));
    a.leave();
    expect(await ticket.outcome).toEqual({ kind: 'gone' });
    expect(lobby.waiting).toBe(0);
    const b = new FakeClient('192.0.2.1:2000');
    const next = ticketOf(lobby.join(b.request()));
    expect(await settledNow(next)).toBe('pending');
    b.leave();
  });

  it('skips a waiter found gone at pairing time, before its close event, and pairs with the next', async () => {
    // Two streams of one HTTP/2 connection, so that they queue one behind the other.
    const session = {};
    const dead = new FakeClient('192.0.2.1:1000', '192.0.2.1', session);
    const live = new FakeClient('192.0.2.1:1000', '192.0.2.1', session);
    const deadTicket = ticketOf(lobby.join(dead.request()));
    const liveTicket = ticketOf(lobby.join(live.request()));
    dead.gone = true; // socket destroyed, close event not run yet
    const caller = new FakeClient('192.0.2.9:3000');
    const callerTicket = ticketOf(lobby.join(caller.request()));
    expect(await deadTicket.outcome).toEqual({ kind: 'gone' });
    expect((await callerTicket.outcome).kind).toBe('matched');
    expect(((await liveTicket.outcome) as { peer: Ticket }).peer).toBe(callerTicket);
    expect(dead.watching).toBe(0);
    dead.onGone?.(); // the late close event finds nothing to do
    expect(lobby.waiting).toBe(0);
  });

  it('never pairs two requests of one connection', async () => {
    const a = new FakeClient('192.0.2.1:1000');
    const one = ticketOf(lobby.join(a.request()));
    const two = ticketOf(lobby.join(a.request()));
    expect(lobby.waiting).toBe(2);
    expect(await settledNow(one)).toBe('pending');
    expect(await settledNow(two)).toBe('pending');
    lobby.close();
  });

  describe('two outcomes in one tick: the first wins, the second does nothing', () => {
    it('match, then timeout', async () => {
      const a = new FakeClient('192.0.2.1:1000');
      const waiter = ticketOf(lobby.join(a.request({ timeoutMs: 100 })));
      await vi.advanceTimersByTimeAsync(99);
      ticketOf(lobby.join(new FakeClient('192.0.2.1:2000').request()));
      await vi.advanceTimersByTimeAsync(1);
      expect((await waiter.outcome).kind).toBe('matched');
    });

    it('match, then the client leaves', async () => {
      const a = new FakeClient('192.0.2.1:1000');
      const waiter = ticketOf(lobby.join(a.request()));
      const onGone = a.onGone;
      ticketOf(lobby.join(new FakeClient('192.0.2.1:2000').request()));
      onGone?.(); // a close event already queued when the match happened
      expect((await waiter.outcome).kind).toBe('matched');
      expect(lobby.waiting).toBe(0);
      expect(lobby.waitingFrom(a.ip)).toBe(0);
    });

    it('client leaves, then timeout', async () => {
      const a = new FakeClient('192.0.2.1:1000');
      const waiter = ticketOf(lobby.join(a.request({ timeoutMs: 100 })));
      await vi.advanceTimersByTimeAsync(99);
      a.leave();
      await vi.advanceTimersByTimeAsync(1);
      expect(await waiter.outcome).toEqual({ kind: 'gone' });
      expect(lobby.waitingFrom(a.ip)).toBe(0);
    });

    it('shutdown, then timeout and leave', async () => {
      const a = new FakeClient('192.0.2.1:1000');
      const waiter = ticketOf(lobby.join(a.request({ timeoutMs: 100 })));
      const onGone = a.onGone;
      expect(lobby.close()).toBe(1);
      onGone?.();
      await vi.advanceTimersByTimeAsync(100);
      expect(await waiter.outcome).toEqual({ kind: 'shutdown' });
      expect(lobby.waitingFrom(a.ip)).toBe(0);
    });

    it('match, then shutdown', async () => {
      const a = new FakeClient('192.0.2.1:1000');
      const waiter = ticketOf(lobby.join(a.request()));
      ticketOf(lobby.join(new FakeClient('192.0.2.1:2000').request()));
      expect(lobby.close()).toBe(0);
      expect((await waiter.outcome).kind).toBe('matched');
    });
  });

  it('refuses to queue past the limits but still pairs', async () => {
    const small = new Lobby(new Matchmaker<Ticket>(), { maxWaiting: 2, maxWaitingPerIp: 1, codeTtlMs: 60_000 });
    const a = new FakeClient('192.0.2.1:1000');
    ticketOf(small.join(a.request({ pool: 'x' })));
    expect(small.join(new FakeClient('192.0.2.1:1001').request({ pool: 'y' }))).toBe('ip_limit');
    ticketOf(small.join(new FakeClient('192.0.2.2:1000', '192.0.2.2').request({ pool: 'y' })));
    expect(small.join(new FakeClient('192.0.2.3:1000', '192.0.2.3').request({ pool: 'z' }))).toBe('full');
    const pairing = ticketOf(small.join(new FakeClient('192.0.2.1:1002').request({ pool: 'x' })));
    expect((await pairing.outcome).kind).toBe('matched');
    expect(small.waiting).toBe(1);
    expect(small.close()).toBe(1);
    expect(small.join(a.request())).toBe('closing');
  });
});

describe('Lobby: rendezvous codes and secrets', () => {
  const SECRET = /^[A-Za-z0-9_-]{43}$/;

  async function matched(ticket: Ticket) {
    const outcome = await ticket.outcome;
    if (outcome.kind !== 'matched') throw new Error(`not matched: ${outcome.kind}`);
    return outcome;
  }

  it('pairs the two holders of a code, both with one 32-byte secret, and refuses the code afterwards', async () => {
    const first = ticketOf(lobby.join(new FakeClient('192.0.2.1:1000').request({ code: 'blue-fox' })));
    const second = ticketOf(lobby.join(new FakeClient('192.0.2.2:2000', '192.0.2.2').request({ code: 'blue-fox' })));
    const [a, b] = [await matched(first), await matched(second)];
    expect(a.peer).toBe(second);
    expect(a.secret).toMatch(SECRET);
    expect(Buffer.from(a.secret, 'base64url')).toHaveLength(32);
    expect(b.secret).toBe(a.secret);
    expect(b.matchId).toBe(a.matchId);
    expect(lobby.join(new FakeClient('192.0.2.3:3000', '192.0.2.3').request({ code: 'blue-fox' }))).toBe('code_used');
    expect(lobby.waiting).toBe(0);
    expect(lobby.footprint.usedCodes).toBe(1);
  });

  it('keeps a used code refused for its whole TTL, however often it is tried, and frees it after', async () => {
    ticketOf(lobby.join(new FakeClient('192.0.2.1:1000').request({ code: 'c1' })));
    ticketOf(lobby.join(new FakeClient('192.0.2.2:2000', '192.0.2.2').request({ code: 'c1' })));
    const third = new FakeClient('192.0.2.3:3000', '192.0.2.3');
    for (let t = 0; t < 59_999; t += 10_000) {
      await vi.advanceTimersByTimeAsync(Math.min(10_000, 59_999 - t));
      expect(lobby.join(third.request({ code: 'c1' }))).toBe('code_used');
    }
    await vi.advanceTimersByTimeAsync(1);
    const again = ticketOf(lobby.join(third.request({ code: 'c1' })));
    expect(await settledNow(again)).toBe('pending');
    expect(lobby.footprint.usedCodes).toBe(0);
    lobby.close();
  });

  it('leaves a code free when its waiter timed out or left, so it can be tried again', async () => {
    const a = new FakeClient('192.0.2.1:1000');
    const timedOut = ticketOf(lobby.join(a.request({ code: 'c2', timeoutMs: 100 })));
    await vi.advanceTimersByTimeAsync(100);
    expect((await timedOut.outcome).kind).toBe('timeout');
    const left = ticketOf(lobby.join(a.request({ code: 'c2' })));
    a.leave();
    expect((await left.outcome).kind).toBe('gone');
    const retry = ticketOf(lobby.join(new FakeClient('192.0.2.1:1001').request({ code: 'c2' })));
    const partner = ticketOf(lobby.join(new FakeClient('192.0.2.2:2000', '192.0.2.2').request({ code: 'c2' })));
    expect((await matched(retry)).peer).toBe(partner);
  });

  it('refuses a code its own connection already waits with, and keeps that waiter', async () => {
    const a = new FakeClient('192.0.2.1:1000');
    const waiting = ticketOf(lobby.join(a.request({ code: 'c3' })));
    expect(lobby.join(a.request({ code: 'c3' }))).toBe('code_taken');
    expect(lobby.waiting).toBe(1);
    const partner = ticketOf(lobby.join(new FakeClient('192.0.2.2:2000', '192.0.2.2').request({ code: 'c3' })));
    expect((await matched(waiting)).peer).toBe(partner);
  });

  it('never pairs a code with a pool of the same name, nor two different codes', async () => {
    const byCode = ticketOf(lobby.join(new FakeClient('192.0.2.1:1000').request({ code: 'same' })));
    const byPool = ticketOf(lobby.join(new FakeClient('192.0.2.2:2000', '192.0.2.2').request({ pool: 'same' })));
    const other = ticketOf(lobby.join(new FakeClient('192.0.2.3:3000', '192.0.2.3').request({ code: 'other' })));
    for (const t of [byCode, byPool, other]) expect(await settledNow(t)).toBe('pending');
    expect(lobby.footprint).toEqual({ waiting: 3, pools: 3, addresses: 3, usedCodes: 0 });
    lobby.close();
  });

  it('gives every match its own secret, pools included', async () => {
    const secrets = new Set<string>();
    for (let i = 0; i < 20; i++) {
      ticketOf(lobby.join(new FakeClient(`192.0.2.1:${1000 + i}`).request()));
      const arrival = ticketOf(lobby.join(new FakeClient(`192.0.2.2:${1000 + i}`, '192.0.2.2').request()));
      const { secret } = await matched(arrival);
      expect(secret).toMatch(SECRET);
      secrets.add(secret);
    }
    expect(secrets.size).toBe(20);
  });

  it('forgets the oldest used codes past its bound, and only those', async () => {
    const bounded = new Lobby(new Matchmaker<Ticket>(), {
      maxWaiting: 10,
      maxWaitingPerIp: 0,
      codeTtlMs: 60_000,
      maxRememberedCodes: 2,
    });
    for (const code of ['k1', 'k2', 'k3']) {
      ticketOf(bounded.join(new FakeClient('192.0.2.1:1').request({ code })));
      await matched(ticketOf(bounded.join(new FakeClient('192.0.2.2:2', '192.0.2.2').request({ code }))));
    }
    expect(bounded.footprint.usedCodes).toBe(2);
    const stranger = new FakeClient('192.0.2.3:3', '192.0.2.3');
    expect(bounded.join(stranger.request({ code: 'k2' }))).toBe('code_used');
    expect(bounded.join(stranger.request({ code: 'k3' }))).toBe('code_used');
    expect(typeof bounded.join(stranger.request({ code: 'k1' }))).toBe('object');
    bounded.close();
  });
});

describe('Lobby.audit', () => {
  it('finds two live clients of different connections waiting in one pool', () => {
    const queue = new Matchmaker<Ticket>();
    const audited = new Lobby(queue, { maxWaiting: 10, maxWaitingPerIp: 0, codeTtlMs: 60_000 });
    const a = new FakeClient('192.0.2.1:1');
    const b = new FakeClient('192.0.2.2:2');
    ticketOf(audited.join(a.request()));
    expect(audited.audit()).toEqual([]);
    // Only a broken matchmaker could queue b beside a: make one that never pairs.
    const careless = new Lobby(
      {
        size: 0,
        poolCount: 0,
        poolSize: () => 0,
        values: () => queue.values(),
        remove: (slot) => queue.remove(slot),
        dequeueOrEnqueue: (pool, value, _judge, mayWait) => queue.dequeueOrEnqueue(pool, value, () => 'skip', mayWait),
      },
      { maxWaiting: 10, maxWaitingPerIp: 0, codeTtlMs: 60_000 },
    );
    ticketOf(careless.join(b.request()));
    expect(audited.audit()).toEqual(['pool p: 192.0.2.2:2 waits beside another live client']);
    a.gone = true;
    expect(audited.audit()).toEqual([]);
    audited.close();
  });
});
