/**
 * The lobby's groups: gathered in one process in one turn, or across processes (two lobbies on one
 * queue, linked by a hold/decide link the test can delay or lose): all or nothing, never a member
 * answered with one that left, a lost word costing a delay and never a double answer.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Lobby } from '../../src/core/lobby.js';
import type { Ticket } from '../../src/core/ticket.js';
import type { JoinRequest, Outcome } from '../../src/core/types.js';
import { MemoryQueue } from '../../src/queue/memory.js';
import type { GroupOffer, MatchQueue, PeerLink, Waiter } from '../../src/queue/seam.js';

let connections = 0;

class FakeClient {
  gone = false;
  onGone: (() => void) | undefined;
  constructor(
    readonly address: string,
    readonly connection = `c${++connections}`,
  ) {}

  request(size: number, overrides: Partial<JoinRequest> & { min?: number; pool?: string } = {}): JoinRequest {
    const { min, pool = 'p', ...rest } = overrides;
    return {
      room: min === undefined ? { kind: 'pool', name: pool, size } : { kind: 'pool', name: pool, size, min },
      limitKey: 'ip',
      address: this.address,
      via: 'socket',
      connection: this.connection,
      meta: undefined,
      timeoutMs: 10_000,
      isGone: () => this.gone,
      watch: (onGone) => {
        this.onGone = onGone;
        return () => {
          this.onGone = undefined;
        };
      },
      ...rest,
    };
  }

  leave(): void {
    this.gone = true;
    this.onGone?.();
  }
}

async function ticks(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

async function settledNow(ticket: Ticket): Promise<Outcome | 'pending'> {
  await ticks();
  return Promise.race([ticket.outcome, Promise.resolve('pending' as const)]);
}

/** What a grouped ticket was told: its index and the group's addresses, by index. */
function grouped(outcome: Outcome | 'pending'): { matchId: string; index: number; members: string[] } {
  if (outcome === 'pending' || outcome.kind !== 'grouped') throw new Error(`not grouped: ${outcome === 'pending' ? outcome : outcome.kind}`);
  return { matchId: outcome.matchId, index: outcome.index, members: outcome.members.map((m) => m.address) };
}

const limits = { maxWaiting: 100, maxWaitingPerIp: 0, codeTtlMs: 60_000, fillWaitMs: 1000 };

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('Lobby: groups in one process', () => {
  it('answers every member of a group of four in the turn the fourth arrives: one matchId, indexes by waiting order', async () => {
    const queue = new MemoryQueue();
    const lobby = new Lobby({ queue, limits });
    const clients = [1, 2, 3, 4].map((i) => new FakeClient(`192.0.2.${i}:1`));
    const tickets = clients.slice(0, 3).map((c) => lobby.join(c.request(4)));
    expect(await settledNow(tickets[2] as Ticket)).toBe('pending');
    const last = lobby.join((clients[3] as FakeClient).request(4));
    // Answered before join returned: no promise, no turn.
    expect(last.result?.kind).toBe('grouped');
    const answers = [...tickets, last].map((t) => grouped(t.result ?? 'pending'));
    const addresses = clients.map((c) => c.address);
    expect(answers).toEqual([0, 1, 2, 3].map((index) => ({ matchId: answers[0]?.matchId, index, members: addresses })));
    expect([lobby.waiting, queue.size, queue.groupsHeld]).toEqual([0, 0, 0]);
  });

  it('drops a member whose client left before its close event ran, the others keeping their places', () => {
    const queue = new MemoryQueue();
    const lobby = new Lobby({ queue, limits });
    const [a, b, c, d, e] = [1, 2, 3, 4, 5].map((i) => new FakeClient(`192.0.2.${i}:1`));
    const [ta, tb, tc] = [a, b, c].map((x) => lobby.join((x as FakeClient).request(4)));
    (b as FakeClient).gone = true; // destroyed; its close event has not run
    const td = lobby.join((d as FakeClient).request(4));
    expect(tb?.result).toEqual({ kind: 'gone' });
    expect(td.result).toBeUndefined(); // it waits, after a and c
    expect(queue.waiters().map((w) => w.address)).toEqual([a, c, d].map((x) => x?.address));
    const te = lobby.join((e as FakeClient).request(4));
    const expected = [a, c, d, e].map((x) => x?.address);
    for (const [index, ticket] of [ta, tc, td, te].entries()) expect(grouped(ticket?.result ?? 'pending')).toEqual({ matchId: te.result?.kind === 'grouped' ? te.result.matchId : '', index, members: expected });
    expect([lobby.waiting, queue.size, queue.groupsHeld]).toEqual([0, 0, 0]);
  });

  it('forms a group of min when the oldest has waited FILL_WAIT_MS, by its own timer', async () => {
    const queue = new MemoryQueue();
    const lobby = new Lobby({ queue, limits });
    const [a, b] = [new FakeClient('192.0.2.1:1'), new FakeClient('192.0.2.2:1')];
    const ta = lobby.join(a.request(4, { min: 2 }));
    await vi.advanceTimersByTimeAsync(500);
    const tb = lobby.join(b.request(4, { min: 2 }));
    await vi.advanceTimersByTimeAsync(499);
    expect([ta.result, tb.result]).toEqual([undefined, undefined]);
    await vi.advanceTimersByTimeAsync(1);
    expect(grouped(ta.result ?? 'pending')).toEqual({ matchId: expect.any(String) as unknown, index: 0, members: [a.address, b.address] });
    expect(grouped(tb.result ?? 'pending').index).toBe(1);
    expect([lobby.waiting, queue.size]).toEqual([0, 0]);
  });

  it('never forms a partial group below min, nor for a request without min', async () => {
    const queue = new MemoryQueue();
    const lobby = new Lobby({ queue, limits });
    const ta = lobby.join(new FakeClient('192.0.2.1:1').request(4, { min: 3 }));
    const tb = lobby.join(new FakeClient('192.0.2.2:1').request(4, { min: 3 }));
    const tc = lobby.join(new FakeClient('192.0.2.3:1').request(4));
    const td = lobby.join(new FakeClient('192.0.2.4:1').request(4));
    await vi.advanceTimersByTimeAsync(5000);
    expect([ta, tb, tc, td].map((t) => t.result)).toEqual([undefined, undefined, undefined, undefined]);
    expect(queue.size).toBe(4);
    lobby.close();
  });
});

describe('Lobby: groups across processes', () => {
  interface LinkControl {
    /** Hold answers wait for this before they are delivered. */
    gate?: Promise<void>;
    /** Lose the word of the group's fate, or the hold's answer. */
    lose?: 'decide' | 'answer';
  }

  /** Two lobbies (two processes) on one queue, linked the way redis-link.ts links them, with faults on demand. */
  function twoProcesses(control: LinkControl = {}) {
    const shared = new MemoryQueue();
    const lobbies: Record<string, Lobby> = {};
    const lobbyOf = (w: Waiter) => lobbies[w.owner] as Lobby;
    const peers: PeerLink = {
      offer: () => Promise.resolve('unanswered'),
      async hold(member: Waiter, offer: GroupOffer) {
        const answer = lobbyOf(member).held(member.id, offer);
        await control.gate;
        return control.lose === 'answer' ? 'unanswered' : answer;
      },
      decide(member, groupId, decision) {
        if (control.lose !== 'decide') lobbyOf(member).decided(member.id, groupId, decision);
      },
    };
    const a = new Lobby({ queue: shared, owner: 'A', limits, peers, groupHoldMs: 3000 });
    const b = new Lobby({ queue: shared, owner: 'B', limits, peers, groupHoldMs: 3000 });
    lobbies.A = a;
    lobbies.B = b;
    return { shared, a, b };
  }

  it("gathers members of two processes: each process answers its own, after every member's process held it", async () => {
    const { shared, a, b } = twoProcesses();
    const [x, y, z] = [new FakeClient('192.0.2.1:1'), new FakeClient('192.0.2.2:1'), new FakeClient('192.0.2.3:1')];
    const tx = a.join(x.request(3));
    const ty = b.join(y.request(3));
    const tz = b.join(z.request(3));
    const answers = [grouped(await settledNow(tx)), grouped(await settledNow(ty)), grouped(await settledNow(tz))];
    const members = [x.address, y.address, z.address];
    expect(answers).toEqual([0, 1, 2].map((index) => ({ matchId: answers[0]?.matchId, index, members })));
    // The committed group's record stays for a member's process that would miss the word (Redis lets it lapse).
    expect([a.waiting, b.waiting, shared.size, shared.groupsHeld]).toEqual([0, 0, 0, 1]);
  });

  it('releases the group when a held member leaves before the commit: nobody is answered, the others wait on in their places', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const { shared, a, b } = twoProcesses({ gate });
    const [x, y, z, w] = [new FakeClient('192.0.2.1:1'), new FakeClient('192.0.2.2:1'), new FakeClient('192.0.2.3:1'), new FakeClient('192.0.2.4:1')];
    const tx = a.join(x.request(3));
    const ty = b.join(y.request(3));
    const tz = b.join(z.request(3)); // claims x (held by A, its answer held at the gate) and y (held here)
    await ticks();
    y.leave(); // y leaves while the group waits for A: it withdraws itself
    open();
    expect(await settledNow(ty)).toEqual({ kind: 'gone' });
    expect([await settledNow(tx), await settledNow(tz)]).toEqual(['pending', 'pending']);
    // x went back to its place, and z (the arrival) waits after it.
    expect(shared.waiters().map((m) => m.address)).toEqual([x.address, z.address]);
    const tw = a.join(w.request(3));
    const expected = [x.address, z.address, w.address];
    for (const [index, ticket] of [tx, tz, tw].entries()) {
      const answer = grouped(await settledNow(ticket));
      expect([answer.index, answer.members]).toEqual([index, expected]);
    }
    // The released group is forgotten once every member was decided; the committed one stays for its record.
    expect([a.waiting, b.waiting, shared.size, shared.groupsHeld]).toEqual([0, 0, 0, 1]);
  });

  it('withdraws a held member whose time runs out before the commit: it is answered timeout, nobody grouped', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const { shared, a, b } = twoProcesses({ gate });
    const [x, y, z] = [new FakeClient('192.0.2.1:1'), new FakeClient('192.0.2.2:1'), new FakeClient('192.0.2.3:1')];
    const tx = a.join(x.request(3, { timeoutMs: 1000 }));
    const ty = b.join(y.request(3));
    await vi.advanceTimersByTimeAsync(900);
    const tz = b.join(z.request(3));
    await ticks();
    await vi.advanceTimersByTimeAsync(100); // x's timeout, while held for the group
    open();
    expect((await settledNow(tx)) as Outcome).toEqual({ kind: 'timeout', waitedMs: 1000 });
    expect([await settledNow(ty), await settledNow(tz)]).toEqual(['pending', 'pending']);
    expect(shared.waiters().map((m) => m.address)).toEqual([y.address, z.address]);
    a.close();
    b.close();
  });

  it('answers a held member from the group record when the word of the commit was lost', async () => {
    const { shared, a, b } = twoProcesses({ lose: 'decide' });
    const [x, y, z] = [new FakeClient('192.0.2.1:1'), new FakeClient('192.0.2.2:1'), new FakeClient('192.0.2.3:1')];
    const tx = a.join(x.request(3));
    const ty = b.join(y.request(3));
    const tz = b.join(z.request(3));
    const arrival = grouped(await settledNow(tz));
    expect(grouped(await settledNow(ty)).matchId).toBe(arrival.matchId);
    expect(await settledNow(tx)).toBe('pending'); // held, no word yet
    await vi.advanceTimersByTimeAsync(3000);
    expect(grouped(await settledNow(tx))).toEqual({ matchId: arrival.matchId, index: 0, members: [x.address, y.address, z.address] });
    expect([a.waiting, b.waiting, shared.size]).toEqual([0, 0, 0]);
  });

  it('tells the request of a held member that left after the commit (word of it lost) that its group stands without it', async () => {
    const { shared, a, b } = twoProcesses({ lose: 'decide' });
    const [x, y, z] = [new FakeClient('192.0.2.1:1'), new FakeClient('192.0.2.2:1'), new FakeClient('192.0.2.3:1')];
    const late: Outcome[] = [];
    const tx = a.join(x.request(3, { lateGroup: (outcome) => late.push(outcome) }));
    const ty = b.join(y.request(3));
    const tz = b.join(z.request(3));
    const arrival = grouped(await settledNow(tz));
    expect(grouped(await settledNow(ty)).matchId).toBe(arrival.matchId);
    expect(await settledNow(tx)).toBe('pending'); // held, no word yet
    x.leave(); // it withdraws itself, but the record says the group was committed first
    expect(await settledNow(tx)).toEqual({ kind: 'gone' });
    expect(late.map(grouped)).toEqual([{ matchId: arrival.matchId, index: 0, members: [x.address, y.address, z.address] }]);
    await vi.advanceTimersByTimeAsync(3000);
    expect(late.length).toBe(1);
    expect([a.waiting, b.waiting, shared.size]).toEqual([0, 0, 0]);
  });

  it('never groups a member whose ready answer was lost: dropped, it waits out its time and is never in two groups', async () => {
    const { shared, a, b } = twoProcesses({ lose: 'answer' });
    const [x, y, z] = [new FakeClient('192.0.2.1:1'), new FakeClient('192.0.2.2:1'), new FakeClient('192.0.2.3:1')];
    const tx = a.join(x.request(3, { timeoutMs: 5000 }));
    const ty = b.join(y.request(3));
    const tz = b.join(z.request(3));
    await ticks();
    // x was dropped (unconfirmed); y went back; z waits after it.
    expect(shared.waiters().map((m) => m.address)).toEqual([y.address, z.address]);
    await vi.advanceTimersByTimeAsync(3000); // x's hold: the record says the group was released
    expect(await settledNow(tx)).toBe('pending');
    await vi.advanceTimersByTimeAsync(2000);
    expect((await settledNow(tx)) as Outcome).toEqual({ kind: 'timeout', waitedMs: 5000 });
    expect([await settledNow(ty), await settledNow(tz)]).toEqual(['pending', 'pending']);
    a.close();
    b.close();
  });
  it('keeps a member held for the group that claimed it since, when the release of the group before is answered late', async () => {
    const shared = new MemoryQueue();
    // B's releases take effect at once in the queue, but B hears their answer only once the gate opens.
    let openRelease!: () => void;
    const releaseAnswered = new Promise<void>((resolve) => (openRelease = resolve));
    const slow = new Proxy(shared, {
      get(target, key) {
        if (key === 'release') {
          return (...args: Parameters<MemoryQueue['release']>) => {
            const result = target.release(...args);
            return releaseAnswered.then(() => result);
          };
        }
        const value: unknown = Reflect.get(target, key);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    }) as MatchQueue;
    const lobbies: Record<string, Lobby> = {};
    const lobbyOf = (w: Waiter) => lobbies[w.owner] as Lobby;
    // The word of a group's fate comes when the test lets it.
    const words: (() => void)[] = [];
    const peers: PeerLink = {
      offer: () => Promise.resolve('unanswered'),
      hold: (member: Waiter, offer: GroupOffer) => Promise.resolve(lobbyOf(member).held(member.id, offer)),
      decide: (member, groupId, decision) => words.push(() => lobbyOf(member).decided(member.id, groupId, decision)),
    };
    const a = new Lobby({ queue: shared, owner: 'A', limits, peers, groupHoldMs: 3000 });
    const b = new Lobby({ queue: slow, owner: 'B', limits, peers, groupHoldMs: 3000 });
    lobbies.A = a;
    lobbies.B = b;
    const [m, r, n, p, q] = ['192.0.2.1:1', '192.0.2.2:1', '192.0.2.3:1', '192.0.2.4:1', '192.0.2.5:1'].map((address) => new FakeClient(address)) as [
      FakeClient,
      FakeClient,
      FakeClient,
      FakeClient,
      FakeClient,
    ];
    const tm = b.join(m.request(3, { timeoutMs: 5000 }));
    a.join(r.request(3));
    await ticks();
    r.gone = true; // its client left; A has not heard yet
    // n's arrival on B claims m (B's) and r (A's); r is gone, so the group is released, m back in its place.
    const tn = b.join(n.request(3));
    await ticks();
    expect(shared.waiters().map((w) => w.address)).toEqual([m.address]);
    // Before B hears that release answered, A gathers m with p and q: B holds m for that group.
    const tp = a.join(p.request(3));
    await ticks();
    const tq = a.join(q.request(3));
    await ticks();
    const group = grouped(await settledNow(tq));
    expect(group.members).toEqual([m.address, p.address, q.address]);
    expect(grouped(await settledNow(tp)).matchId).toBe(group.matchId);
    openRelease();
    await ticks();
    // Then the word of the commit: m is answered with the group its partners were answered with.
    for (const word of words.splice(0)) word();
    expect(grouped(await settledNow(tm))).toEqual({ matchId: group.matchId, index: 0, members: group.members });
    expect(await settledNow(tn)).toBe('pending');
    a.close();
    b.close();
  });
});
