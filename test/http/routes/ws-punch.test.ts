/**
 * Punch attempts timed by the server over GET /ws (src/protocol/punch.ts, src/http/ws-punch.ts).
 */
import { EventEmitter } from 'node:events';
import { WebSocket } from 'ws';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PunchAttempts } from '../../../src/http/ws-punch.js';
import { punchStrategy } from '../../../src/protocol/punch.js';
import type { RelayPunch } from '../../../src/queue/relay-seam.js';
import { eventually, startServer, type TestServer } from '../../helpers/server.js';
import { openSocket, type TestSocket } from '../../helpers/ws-client.js';

let server: TestServer;
const sockets: TestSocket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.socket.terminate();
  await server.close();
});

async function open(): Promise<TestSocket> {
  const socket = await openSocket(server.origin, server.cert);
  sockets.push(socket);
  return socket;
}

const localAddress = (s: TestSocket): string => `127.0.0.1:${(s.socket as unknown as { _socket: { localPort: number } })._socket.localPort}`;

/** Two sockets joined with code `code` and their `punch` fields (undefined: no punch), matched. */
async function pair(code: string, punchA: unknown, punchB: unknown): Promise<[TestSocket, TestSocket]> {
  const a = await open();
  a.send({ type: 'join', code, ...(punchA === undefined ? {} : { punch: punchA }) });
  expect(await a.next()).toEqual({ type: 'queued' });
  const b = await open();
  b.send({ type: 'join', code, ...(punchB === undefined ? {} : { punch: punchB }) });
  expect((await a.next()).type).toBe('matched');
  expect((await b.next()).type).toBe('matched');
  return [a, b];
}

describe('GET /ws: punch', () => {
  it('sends both sides a timed punch with the partner’s mapping and observed address when both mappings are independent', async () => {
    server = await startServer();
    const [a, b] = await pair('punch-timed', { mapping: '127.0.0.1:40001', nat: 'independent' }, { mapping: '127.0.0.1:40002' });
    const [pa, pb] = [await a.next(), await b.next()];
    expect(pa).toEqual({ type: 'punch', attempt: 1, strategy: 'timed', peer: { mapping: '127.0.0.1:40002', observed: localAddress(b) }, rttMs: pa.rttMs, ms: 10_000 });
    expect(pb).toEqual({ type: 'punch', attempt: 1, strategy: 'timed', peer: { mapping: '127.0.0.1:40001', observed: localAddress(a) }, rttMs: pb.rttMs, ms: 10_000 });
    expect(pa.rttMs).toBeGreaterThanOrEqual(0);
    expect(pa.rttMs).toBeLessThan(1000);
  });

  it('tells the farther side first and the nearer after half the difference of their round trips', async () => {
    server = await startServer();
    // A answers pings 300 ms late: its round trip is 300 ms longer than B's.
    const far = new WebSocket(`${server.origin.replace('https:', 'wss:')}/ws`, { ca: server.cert, autoPong: false });
    far.on('ping', (data) => setTimeout(() => far.pong(data), 300));
    await new Promise((resolve) => far.once('open', resolve));
    const farMessages: { at: number; message: Record<string, unknown> }[] = [];
    far.on('message', (data) => farMessages.push({ at: performance.now(), message: JSON.parse((data as Buffer).toString('utf8')) as Record<string, unknown> }));
    far.send(JSON.stringify({ type: 'join', code: 'punch-rtt', punch: { mapping: '127.0.0.1:40001', nat: 'independent' } }));
    await eventually(() => farMessages.length === 1, 2000, 'queued');
    const near = await open();
    near.send({ type: 'join', code: 'punch-rtt', punch: { mapping: '127.0.0.1:40002', nat: 'independent' } });
    expect((await near.next()).type).toBe('matched');
    const nearPunch = await near.next(5000);
    const nearAt = performance.now();
    await eventually(() => farMessages.length === 3, 2000, 'far punch');
    far.terminate();
    const farPunch = farMessages[2] as { at: number; message: Record<string, unknown> };
    expect(farPunch.message.strategy).toBe('timed');
    expect(nearPunch.strategy).toBe('timed');
    expect(farPunch.message.rttMs).toBeGreaterThanOrEqual(300);
    expect(nearPunch.rttMs).toBeLessThan(100);
    // Half of (far - near): the near side hears it about 150 ms after the far side.
    const expectedGap = ((farPunch.message.rttMs as number) - (nearPunch.rttMs as number)) / 2;
    expect(nearAt - farPunch.at).toBeGreaterThan(expectedGap - 40);
    expect(nearAt - farPunch.at).toBeLessThan(expectedGap + 60);
  });

  it('picks spray and probe for a dependent and an independent mapping, relay for two dependent ones', async () => {
    server = await startServer();
    const [a, b] = await pair('punch-hard', { mapping: '127.0.0.1:40001', nat: 'dependent' }, { mapping: '127.0.0.1:40002', nat: 'unknown' });
    const [pa, pb] = [await a.next(), await b.next()];
    expect(pa).toEqual({ type: 'punch', attempt: 1, strategy: 'spray', peer: { mapping: '127.0.0.1:40002', observed: localAddress(b) }, rttMs: pa.rttMs, ms: 10_000, ports: 256 });
    expect(pb).toEqual({ type: 'punch', attempt: 1, strategy: 'probe', peer: { mapping: '127.0.0.1:40001', observed: localAddress(a) }, rttMs: pb.rttMs, ms: 10_000, probes: 2048, probesPerS: 250 });
    const [c, d] = await pair('punch-both-hard', { mapping: '127.0.0.1:40003', nat: 'dependent' }, { mapping: '127.0.0.1:40004', nat: 'dependent' });
    expect((await c.next()).strategy).toBe('relay');
    expect((await d.next()).strategy).toBe('relay');
  });

  it('never has a side send to an address other than where its partner is seen: a mapping elsewhere gets relay, for both', async () => {
    server = await startServer();
    const [a, b] = await pair('punch-elsewhere', { mapping: '198.51.100.7:40001', nat: 'dependent' }, { mapping: '127.0.0.1:40002', nat: 'independent' });
    expect((await a.next()).strategy).toBe('relay');
    expect((await b.next()).strategy).toBe('relay');
    // The independent side aiming its partner's timed hellos or sprays at somebody else: the same.
    const [c, d] = await pair('punch-elsewhere-2', { mapping: '127.0.0.1:40003', nat: 'dependent' }, { mapping: '198.51.100.7:53', nat: 'independent' });
    expect((await c.next()).strategy).toBe('relay');
    expect((await d.next()).strategy).toBe('relay');
    const side = (mapping: string, nat: 'dependent' | 'independent', observed: string) => ({ mapping, nat, observed });
    expect(punchStrategy(side('[2001:db8::1]:5', 'independent', '[2001:db8::1]:9'), side('[2001:DB8:0::7]:6', 'dependent', '[2001:db8::7]:10'))).toBe('probe');
    expect(punchStrategy(side('[2001:db8::7]:6', 'dependent', '[2001:db8::7]:10'), side('[::ffff:203.0.113.1]:5', 'independent', '203.0.113.1:9'))).toBe('spray');
    expect(punchStrategy(side('203.0.113.9:6', 'independent', '203.0.113.9:10'), side('203.0.113.1:5', 'independent', '203.0.113.2:9'))).toBe('relay');
  });

  it('gives the nearer side its first attempt even when the farther asks again before it was sent', async () => {
    server = await startServer();
    // A answers pings 600 ms late, hears its punch at once, and asks again at once: B's first punch was still due.
    const far = new WebSocket(`${server.origin.replace('https:', 'wss:')}/ws`, { ca: server.cert, autoPong: false });
    far.on('ping', (data) => setTimeout(() => far.pong(data), 600));
    await new Promise((resolve) => far.once('open', resolve));
    far.on('message', (data) => {
      const message = JSON.parse((data as Buffer).toString('utf8')) as Record<string, unknown>;
      if (message.type === 'punch' && message.attempt === 1) far.send(JSON.stringify({ type: 'punch_again' }));
    });
    far.send(JSON.stringify({ type: 'join', code: 'punch-early-again', punch: { mapping: '127.0.0.1:40001', nat: 'independent' } }));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const near = await open();
    near.send({ type: 'join', code: 'punch-early-again', punch: { mapping: '127.0.0.1:40002', nat: 'independent' } });
    expect((await near.next()).type).toBe('matched');
    expect((await near.next(8000)).attempt).toBe(1);
    expect((await near.next(8000)).attempt).toBe(2);
    far.terminate();
  });

  it('tells a punching side relay when its partner did not ask to punch; the partner hears nothing of it', async () => {
    server = await startServer();
    const [a, b] = await pair('punch-one', { mapping: '127.0.0.1:40001', nat: 'independent' }, undefined);
    const pa = await a.next();
    expect(pa).toEqual({ type: 'punch', attempt: 1, strategy: 'relay', peer: { observed: localAddress(b) }, rttMs: pa.rttMs, ms: 10_000 });
    b.send({ type: 'signal', data: 'still here' });
    expect(await a.next()).toEqual({ type: 'signal', data: 'still here' });
    expect(b.received.map((m) => m.type)).toEqual(['matched']);
  });

  it('times a new attempt for both on punch_again, three in all; a fourth is too_many_punches (4000), the partner told', async () => {
    server = await startServer();
    const [a, b] = await pair('punch-again', { mapping: '127.0.0.1:40001', nat: 'independent' }, { mapping: '127.0.0.1:40002', nat: 'independent' });
    expect([(await a.next()).attempt, (await b.next()).attempt]).toEqual([1, 1]);
    a.send({ type: 'punch_again' });
    expect([(await a.next()).attempt, (await b.next()).attempt]).toEqual([2, 2]);
    // Both ask at once: one attempt, not two.
    b.send({ type: 'punch_again' });
    a.send({ type: 'punch_again' });
    expect([(await a.next()).attempt, (await b.next()).attempt]).toEqual([3, 3]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect([a.received.length, b.received.length]).toEqual([5, 4]);
    a.send({ type: 'punch_again' });
    expect(await a.next()).toEqual({ type: 'error', error: 'too_many_punches', message: 'a match has at most 3 punch attempts (the first included)' });
    expect(await a.closed).toBe(4000);
    expect(await b.next()).toEqual({ type: 'peer_left' });
    expect(await b.closed).toBe(4002);
    await eventually(() => server.app.lobby.waiting === 0, 2000, 'nobody waiting');
  });

  it('refuses punch_again out of order: before the match, before the first punch, without punch in the join', async () => {
    server = await startServer();
    const early = await open();
    early.send({ type: 'join', code: 'punch-early', punch: { mapping: '127.0.0.1:40001', nat: 'independent' } });
    expect(await early.next()).toEqual({ type: 'queued' });
    early.send({ type: 'punch_again' });
    expect(await early.next()).toEqual({ type: 'error', error: 'unexpected_message', message: 'WebSocket message punch_again is not expected before the match' });
    expect(await early.closed).toBe(4000);

    const [a, b] = await pair('punch-order', { mapping: '127.0.0.1:40001', nat: 'independent' }, undefined);
    // At once after the match: the first attempt's round trips are still being measured.
    a.send({ type: 'punch_again' });
    expect(await a.next()).toEqual({ type: 'error', error: 'unexpected_message', message: 'WebSocket message punch_again is not expected before the first punch' });
    expect(await b.next()).toEqual({ type: 'peer_left' });

    const [c] = await pair('punch-none', undefined, undefined);
    c.send({ type: 'punch_again' });
    expect(await c.next()).toEqual({ type: 'error', error: 'unexpected_message', message: 'WebSocket message punch_again is not expected from a client whose join had no punch' });
  });

  it('refuses a join whose punch is not one: unknown NAT, a mapping that is no address, unknown fields (4000, field punch)', async () => {
    server = await startServer();
    const cases: [unknown, string][] = [
      [{ mapping: '127.0.0.1:40001', nat: 'symmetric' }, 'punch.nat must be one of independent, dependent, unknown'],
      [{ mapping: 'localhost:40001' }, 'punch.mapping must be the UDP mapping STUN gave, "ip:port" or "[ipv6]:port"'],
      [{ mapping: '127.0.0.1:0' }, 'punch.mapping must be the UDP mapping STUN gave, "ip:port" or "[ipv6]:port"'],
      ...['0.0.0.0:5', '255.255.255.255:9', '224.0.0.251:5353', '[::]:80', '[ff02::1]:80', '[:::::::]:80', '[.:.]:80', '[1:2:3:4:5:6:7:8:9]:80', '::1:80'].map(
        (mapping): [unknown, string] => [{ mapping }, 'punch.mapping must be the UDP mapping STUN gave, "ip:port" or "[ipv6]:port"'],
      ),
      [{ mapping: '127.0.0.1:40001', strategy: 'spray' }, 'punch has unknown field "strategy"; allowed: mapping, nat'],
      ['127.0.0.1:40001', 'punch must be an object {mapping, nat}'],
    ];
    for (const [punch, why] of cases) {
      const s = await open();
      s.send({ type: 'join', pool: 'p', punch });
      expect(await s.next()).toEqual({ type: 'error', error: 'invalid_message', message: `WebSocket message is not valid: ${why}`, field: 'punch' });
      expect(await s.closed).toBe(4000);
    }
    expect(server.app.lobby.waiting).toBe(0);
  });

  it('sends no punch to a side whose partner left while the round trips were measured', async () => {
    server = await startServer();
    const [a, b] = await pair('punch-left', { mapping: '127.0.0.1:40001', nat: 'independent' }, { mapping: '127.0.0.1:40002', nat: 'independent' });
    b.send({ type: 'leave' });
    expect(await a.next()).toEqual({ type: 'peer_left' });
    expect(await a.closed).toBe(4002);
    expect(a.received.map((m) => m.type)).toEqual(['queued', 'matched', 'peer_left']);
  });
});

describe('PunchAttempts', () => {
  /** A socket that answers pings after `delayMs`, with the listeners it holds. */
  function fakeSocket(delayMs: number): EventEmitter & { ping(data: string): void } {
    const socket = new EventEmitter() as EventEmitter & { ping(data: string): void };
    socket.ping = (data: string) => setTimeout(() => socket.emit('pong', Buffer.from(data)), delayMs);
    return socket;
  }

  it('leaves no timer and no listener behind when stopped mid-attempt, and delivers nothing after', () => {
    vi.useFakeTimers();
    try {
      const socket = fakeSocket(10);
      const sent: RelayPunch[] = [];
      const delivered: unknown[] = [];
      const attempts = new PunchAttempts({
        socket: socket as never,
        observed: '127.0.0.1:5000',
        request: { mapping: '127.0.0.1:40001', nat: 'independent' },
        toPartner: (part) => sent.push(part),
        deliver: (message) => delivered.push(message),
      });
      attempts.start();
      vi.advanceTimersByTime(35);
      expect(sent).toEqual([{ t: 'punch', attempt: 1, rttMs: sent[0]?.rttMs, observed: '127.0.0.1:5000', mapping: '127.0.0.1:40001', nat: 'independent' }]);
      attempts.fromPartner({ t: 'punch', attempt: 1, rttMs: 500, observed: '127.0.0.1:6000', mapping: '127.0.0.1:40002', nat: 'independent' });
      // Due after (500 - rtt) / 2 ≈ 245 ms: stopped before.
      attempts.stop();
      expect(socket.listenerCount('pong')).toBe(0);
      expect(vi.getTimerCount()).toBe(0);
      vi.advanceTimersByTime(1000);
      expect(delivered).toEqual([]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('answers a partner’s attempts once each when this side does not punch, and ignores attempts past the third', () => {
    const sent: RelayPunch[] = [];
    const attempts = new PunchAttempts({ socket: fakeSocket(1) as never, observed: '127.0.0.1:5000', request: undefined, toPartner: (part) => sent.push(part), deliver: () => undefined });
    const part = (attempt: number): RelayPunch => ({ t: 'punch', attempt, rttMs: 3, observed: '127.0.0.1:6000', mapping: '127.0.0.1:40002', nat: 'independent' });
    attempts.fromPartner(part(1));
    attempts.fromPartner(part(1));
    attempts.fromPartner(part(2));
    attempts.fromPartner(part(4));
    expect(sent).toEqual([
      { t: 'punch', attempt: 1, rttMs: 0, observed: '127.0.0.1:5000' },
      { t: 'punch', attempt: 2, rttMs: 0, observed: '127.0.0.1:5000' },
    ]);
    attempts.stop();
  });
});
