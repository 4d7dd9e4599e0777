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

  request(overrides: Partial<JoinRequest> = {}): JoinRequest {
    return {
      pool: 'p',
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
  lobby = new Lobby(new Matchmaker<Ticket>(), { maxWaiting: 100, maxWaitingPerIp: 10 });
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
    const small = new Lobby(new Matchmaker<Ticket>(), { maxWaiting: 2, maxWaitingPerIp: 1 });
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

describe('Lobby.audit', () => {
  it('finds two live clients of different connections waiting in one pool', () => {
    const queue = new Matchmaker<Ticket>();
    const audited = new Lobby(queue, { maxWaiting: 10, maxWaitingPerIp: 0 });
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
      { maxWaiting: 10, maxWaitingPerIp: 0 },
    );
    ticketOf(careless.join(b.request()));
    expect(audited.audit()).toEqual(['pool p: 192.0.2.2:2 waits beside another live client']);
    a.gone = true;
    expect(audited.audit()).toEqual([]);
    audited.close();
  });
});
