/**
 * GET /ws over real sockets: matching by pool and by code, WebSocket and HTTP clients in one pool,
 * the relay (in order, both ways, partners leaving at once or mid-stream), and everything a socket
 * can do wrong: abort while queued, not read, send too much or too often, send garbage, stop
 * answering pings.
 */
import { hostname } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { ask, eventually, json, startServer, TestClient, type TestServer } from '../../helpers/server.js';
import { openSocket, type TestSocket } from '../../helpers/ws-client.js';
import { RelayHub } from '../../../src/core/relay.js';

let server: TestServer;
const sockets: TestSocket[] = [];

async function open(): Promise<TestSocket> {
  const socket = await openSocket(server.origin, server.cert);
  sockets.push(socket);
  return socket;
}

afterEach(async () => {
  for (const s of sockets.splice(0)) s.socket.terminate();
  await server.close();
});

/** Two sockets matched in `pool`: [waiter, arrival], their matched messages taken. */
async function pair(pool = 'p'): Promise<[TestSocket, TestSocket, Record<string, unknown>, Record<string, unknown>]> {
  const a = await open();
  a.send({ type: 'join', pool });
  expect(await a.next()).toEqual({ type: 'queued' });
  const b = await open();
  b.send({ type: 'join', pool });
  const [ma, mb] = [await a.next(), await b.next()];
  return [a, b, ma, mb];
}

const settledServer = async () => {
  await eventually(() => server.app.lobby.waiting === 0, 2000, 'nobody waiting');
};

describe('GET /ws: matching', () => {
  it('matches two sockets in a pool with the fields of POST /, plus the partner’s meta', async () => {
    server = await startServer();
    const a = await open();
    a.send({ type: 'join', pool: 'chess', meta: { name: 'ann' } });
    expect(await a.next()).toEqual({ type: 'queued' });
    const b = await open();
    b.send({ type: 'join', pool: 'chess', timeout: 5 });
    const [ma, mb] = [await a.next(), await b.next()];
    const addressA = `127.0.0.1:${(a.socket as unknown as { _socket: { localPort: number } })._socket.localPort}`;
    const addressB = `127.0.0.1:${(b.socket as unknown as { _socket: { localPort: number } })._socket.localPort}`;
    expect(ma).toEqual({
      type: 'matched',
      matchId: mb.matchId,
      pool: 'chess',
      secret: mb.secret,
      self: addressA,
      peer: addressB,
      via: 'socket',
      portIsSource: true,
      initiator: true,
      waitedMs: ma.waitedMs,
      iceServers: [],
      peerMeta: null,
    });
    expect(mb).toEqual({ ...ma, self: addressB, peer: addressA, initiator: false, waitedMs: mb.waitedMs, peerMeta: { name: 'ann' } });
    expect(typeof ma.matchId).toBe('string');
    expect(ma.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('pairs exactly two with a code; a third is told the code is used (4005)', async () => {
    server = await startServer();
    const a = await open();
    a.send({ type: 'join', code: 'k3y' });
    expect(await a.next()).toEqual({ type: 'queued' });
    const b = await open();
    b.send({ type: 'join', code: 'k3y' });
    expect([(await a.next()).code, (await b.next()).code]).toEqual(['k3y', 'k3y']);
    const c = await open();
    c.send({ type: 'join', code: 'k3y' });
    expect(await c.next()).toEqual({
      type: 'error',
      error: 'code_used',
      message: 'this code has already been used by a pair or a group; choose a new one (codes stay used for CODE_TTL_MS)',
      field: 'code',
    });
    expect(await c.closed).toBe(4005);
  });

  it('pairs WebSocket and HTTP clients in one pool, both ways; the socket then hears its HTTP partner is gone', async () => {
    server = await startServer();
    const http = new TestClient(server.origin, server.cert);
    try {
      const a = await open();
      a.send({ type: 'join', pool: 'mixed' });
      expect(await a.next()).toEqual({ type: 'queued' });
      const answer = await ask(http.client, server.origin, '/?pool=mixed', { headers: { accept: 'application/json' } });
      const matched = await a.next();
      expect([answer.status, json(answer).matchId, json(answer).peer]).toEqual([200, matched.matchId, matched.self]);
      expect(matched.initiator).toBe(true);
      expect(await a.next()).toEqual({ type: 'peer_left' });
      expect(await a.closed).toBe(4002);

      const waiting = ask(http.client, server.origin, '/?pool=mixed2', { headers: { accept: 'application/json' } });
      await eventually(() => server.app.lobby.waiting === 1, 2000, 'the HTTP client waiting');
      const b = await open();
      b.send({ type: 'join', pool: 'mixed2' });
      const second = await b.next();
      expect([second.type, second.initiator, second.matchId]).toEqual(['matched', false, json(await waiting).matchId]);
      expect(await b.next()).toEqual({ type: 'peer_left' });
      expect(await b.closed).toBe(4002);
    } finally {
      await http.close();
    }
  });

  it('answers a wait that runs out with timeout (4001), and a plain GET /ws with 426', async () => {
    server = await startServer();
    const a = await open();
    a.send({ type: 'join', pool: 'alone', timeout: 0.2 });
    expect(await a.next()).toEqual({ type: 'queued' });
    expect(await a.next()).toEqual({ type: 'error', error: 'timeout', message: 'timeout waiting for peer' });
    expect(await a.closed).toBe(4001);
    const http = new TestClient(server.origin, server.cert);
    const plain = await ask(http.client, server.origin, '/ws');
    await http.close();
    expect([plain.status, json(plain)]).toEqual([
      426,
      { error: 'upgrade_required', message: 'GET /ws is a WebSocket: send Connection: Upgrade and Upgrade: websocket over HTTP/1.1 (got Upgrade: none)' },
    ]);
  });

  it('counts waiting sockets with MAX_WAITING: past it, server_full and 1013', async () => {
    server = await startServer({ MAX_WAITING: '1' });
    const a = await open();
    a.send({ type: 'join', pool: 'one' });
    expect(await a.next()).toEqual({ type: 'queued' });
    const b = await open();
    b.send({ type: 'join', pool: 'two' });
    expect(await b.next()).toEqual({ type: 'error', error: 'server_full', message: 'server has 1 requests waiting (MAX_WAITING); try again shortly' });
    expect(await b.closed).toBe(1013);
    // One that finds a partner is still served.
    const c = await open();
    c.send({ type: 'join', pool: 'one' });
    expect((await c.next()).type).toBe('matched');
  });

  it('never hands out a socket that aborted while queued', async () => {
    server = await startServer();
    const a = await open();
    a.send({ type: 'join', pool: 'abort' });
    expect(await a.next()).toEqual({ type: 'queued' });
    a.socket.terminate();
    await settledServer();
    const b = await open();
    b.send({ type: 'join', pool: 'abort' });
    expect(await b.next()).toEqual({ type: 'queued' });
    expect(server.app.lobby.waiting).toBe(1);
    expect(server.queue.size).toBe(1);
  });
});

describe('GET /ws: the relay', () => {
  it('relays signals in order, unchanged, both ways', async () => {
    server = await startServer();
    const [a, b] = await pair();
    const values: unknown[] = ['text', 42, null, true, [1, [2, { x: 'y' }]], { sdp: 'v=0\r\n', candidates: ['a', 'b'] }, 'é ✓ 🎲'];
    for (const data of values) a.send({ type: 'signal', data });
    for (const data of [...values].reverse()) b.send({ type: 'signal', data });
    const atB = await Promise.all(values.map(() => b.next()));
    const atA = await Promise.all(values.map(() => a.next()));
    expect(atB).toEqual(values.map((data) => ({ type: 'signal', data })));
    expect(atA).toEqual([...values].reverse().map((data) => ({ type: 'signal', data })));
  });

  it('sends matched before a signal that came before the match was heard here (another process got there first)', async () => {
    // The partner's process heard of the match first and its client signalled at once: the signal
    // reached this process before its own word of the match, and is held for the arrival's endpoint.
    const hub = new RelayHub('early');
    server = await startServer({}, '127.0.0.1', { relay: hub });
    const a = await open();
    a.send({ type: 'join', pool: 'early' });
    expect(await a.next()).toEqual({ type: 'queued' });
    // The arrival's ticket is this lobby's second.
    hub.receive(`${server.app.lobby.owner}.2`, { t: 'signal', text: '{"type":"signal","data":"early"}' });
    const b = await open();
    b.send({ type: 'join', pool: 'early' });
    expect((await b.next()).type).toBe('matched');
    expect(await b.next()).toEqual({ type: 'signal', data: 'early' });
  });

  it('tells each partner once when both leave at the same instant', async () => {
    server = await startServer();
    const [a, b] = await pair();
    a.send({ type: 'leave' });
    b.send({ type: 'leave' });
    const codes = await Promise.all([a.closed, b.closed]);
    for (const [i, s] of [a, b].entries()) {
      const after = s.received.slice(1); // past "matched" (the waiter's "queued" came before it)
      const lefts = after.filter((m) => m.type === 'peer_left').length;
      expect(lefts).toBeLessThanOrEqual(1);
      expect(codes[i]).toBe(lefts === 1 ? 4002 : 1000);
    }
    await eventually(() => server.app.lobby.waiting === 0, 1000, 'nothing held');
    expect(server.warnings()).toEqual([]);
  });

  it('delivers what was sent before a partner left, in order, then peer_left once', async () => {
    server = await startServer();
    const [a, b] = await pair();
    for (let i = 0; i < 40; i++) a.send({ type: 'signal', data: i });
    a.send({ type: 'leave' });
    expect(await a.closed).toBe(1000);
    expect(await b.closed).toBe(4002);
    const got = b.received.filter((m) => m.type === 'signal').map((m) => m.data);
    expect(got).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(b.received.filter((m) => m.type === 'peer_left')).toEqual([{ type: 'peer_left' }]);
    expect(b.received.at(-1)).toEqual({ type: 'peer_left' });
  });

  it('closes the relay after RELAY_TTL_MS (4003), the partner told', async () => {
    server = await startServer({ RELAY_TTL_MS: '300' });
    const [a, b] = await pair();
    const codes = await Promise.all([a.closed, b.closed]);
    // Both timers run out within a millisecond: each side either closed itself (4003) or heard the other first (4002).
    for (const code of codes) expect([4002, 4003]).toContain(code);
    expect(codes).toContain(4003);
  });
});

describe('GET /ws: sockets that misbehave', () => {
  it('answers garbage with an error naming it, then closes with 4000; everything else keeps working', async () => {
    server = await startServer();
    const cases: [unknown, Record<string, unknown>][] = [
      ['not json', { error: 'invalid_message', message: "WebSocket message is not valid: not JSON (Unexpected token 'o', \"not json\" is not valid JSON)" }],
      [[1, 2], { error: 'invalid_message', message: 'WebSocket message is not valid: not a JSON object' }],
      [{ type: 'hello' }, { error: 'invalid_message', message: 'WebSocket message is not valid: unknown type "hello"; expected join, signal, leave, connected, failed, punch_again', field: 'type' }],
      [{ type: 'join', pool: 'a', colour: 'red' }, { error: 'invalid_message', message: 'WebSocket message is not valid: join has unknown field "colour"; allowed: type, pool, code, meta, timeout, punch, size, min', field: 'colour' }],
      [{ type: 'join', pool: 'a b' }, { error: 'invalid_pool', message: 'pool must match ^[A-Za-z0-9._~-]{1,64}$', field: 'pool' }],
      [{ type: 'join', pool: 'a', code: 'b' }, { error: 'pool_and_code', message: 'give either pool or code, not both', field: 'code' }],
      [{ type: 'join', timeout: 0 }, { error: 'invalid_timeout', message: 'timeout must be a decimal number of seconds greater than 0 and at most 60', field: 'timeout' }],
      [{ type: 'join', meta: 'x' }, { error: 'invalid_meta', message: 'meta must be a JSON object', field: 'meta' }],
      [
        { type: 'join', meta: { a: JSON.parse('['.repeat(16) + ']'.repeat(16)) as unknown } },
        { error: 'meta_too_deep', message: 'meta may nest objects and arrays at most 16 levels deep (itself included)', field: 'meta' },
      ],
      [{ type: 'signal', data: 1 }, { error: 'unexpected_message', message: 'WebSocket message signal is not expected before the match' }],
    ];
    for (const [message, error] of cases) {
      const s = await open();
      s.send(message);
      expect(await s.next()).toEqual({ type: 'error', ...error });
      expect(await s.closed).toBe(4000);
    }
    const twice = await open();
    twice.send({ type: 'join', pool: 'twice' });
    await twice.next();
    twice.send({ type: 'join', pool: 'twice' });
    expect(await twice.next()).toEqual({ type: 'error', error: 'unexpected_message', message: 'WebSocket message join is not expected twice' });
    expect(await twice.closed).toBe(4000);
    const binary = await open();
    binary.socket.send(Buffer.from([1, 2, 3]));
    expect((await binary.next()).error).toBe('invalid_message');
    expect(await binary.closed).toBe(4000);
    // Bytes that are not WebSocket frames at all: ws closes with 1002 (protocol error), nothing logged above debug.
    const raw = await open();
    (raw.socket as unknown as { _socket: { write(b: Buffer): void } })._socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    expect(await raw.closed).toBe(1002);
    await settledServer();
    const [a, b] = await pair('after');
    expect([a.received.at(-1)?.type, b.received.at(-1)?.type]).toEqual(['matched', 'matched']);
    expect(server.warnings()).toEqual([]);
  });

  it('closes a socket that sends more than WS_MAX_MESSAGE_BYTES (1009); its partner hears it left', async () => {
    server = await startServer({ WS_MAX_MESSAGE_BYTES: '1024' });
    const [a, b] = await pair();
    a.send({ type: 'signal', data: 'x'.repeat(2000) });
    expect(await a.closed).toBe(1009);
    expect(await b.next()).toEqual({ type: 'peer_left' });
    expect(await b.closed).toBe(4002);
    expect(server.warnings()).toEqual([]);
  });

  it('closes a socket that sends a text message that is not UTF-8 (1007, from ws); its partner hears it left', async () => {
    server = await startServer();
    const [a, b] = await pair();
    a.socket.send(Buffer.from([0x7b, 0xff, 0x7d]), { binary: false });
    expect(await a.closed).toBe(1007);
    expect(await b.next()).toEqual({ type: 'peer_left' });
    expect(await b.closed).toBe(4002);
    expect(server.warnings()).toEqual([]);
  });

  it('closes a socket that sends more than WS_MAX_MESSAGES_PER_S a second past a burst of twice as many (4004)', async () => {
    server = await startServer({ WS_MAX_MESSAGES_PER_S: '20' });
    const [a, b] = await pair();
    for (let i = 0; i < 100; i++) a.send({ type: 'signal', data: i });
    expect(await a.closed).toBe(4004);
    expect(a.received.filter((m) => m.type === 'error')).toEqual([
      {
        type: 'error',
        error: 'too_many_messages',
        message: 'more than 20 WebSocket messages a second (WS_MAX_MESSAGES_PER_S; bursts of twice as many pass)',
      },
    ]);
    expect(await b.closed).toBe(4002);
    // What came before the flood's limit was relayed, in order: the burst of 40 less the join, and what the time it took refilled.
    const got = b.received.filter((m) => m.type === 'signal').map((m) => m.data);
    expect(got).toEqual(Array.from({ length: got.length }, (_, i) => i));
    expect(got.length).toBeGreaterThanOrEqual(39);
    expect(got.length).toBeLessThan(50);
  });

  it('lets a burst through: messages that reach the server together after a busy moment are not a flood', async () => {
    server = await startServer({ WS_MAX_MESSAGES_PER_S: '20' });
    const [a, b] = await pair();
    // 35 at once: more than 20 within a second, but a sender at 20 a second whose messages were held up sends so.
    for (let i = 0; i < 35; i++) a.send({ type: 'signal', data: i });
    const got = await Promise.all(Array.from({ length: 35 }, () => b.next()));
    expect(got).toEqual(Array.from({ length: 35 }, (_, i) => ({ type: 'signal', data: i })));
    expect([a.socket.readyState, b.socket.readyState]).toEqual([a.socket.OPEN, b.socket.OPEN]);
    expect(a.received.filter((m) => m.type === 'error')).toEqual([]);
  });

  it('closes a relay with no signal either way for RELAY_IDLE_MS (4007), the partner told', async () => {
    server = await startServer({ RELAY_IDLE_MS: '500' });
    const [a, b] = await pair();
    // Signals either way keep it open past RELAY_IDLE_MS.
    for (let i = 0; i < 6; i++) {
      await new Promise((resolve) => setTimeout(resolve, 150));
      (i % 2 === 0 ? a : b).send({ type: 'signal', data: i });
    }
    expect([a.socket.readyState, b.socket.readyState]).toEqual([a.socket.OPEN, b.socket.OPEN]);
    // b's last signal made both relays busy again, b's first: b's goes idle first and is closed, and a hears b left.
    const started = Date.now();
    expect(await b.closed).toBe(4007);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(await a.closed).toBe(4002);
    expect(a.received.at(-1)).toEqual({ type: 'peer_left' });
    await settledServer();
  });

  it('refuses a join from an address already holding MAX_RELAYS_PER_IP sockets, waiting or relaying (4005)', async () => {
    server = await startServer({ MAX_RELAYS_PER_IP: '4' });
    // Every socket here comes from 127.0.0.1: two pairs are four sockets of one address.
    const [a] = await pair('one');
    await pair('two');
    const fifth = await open();
    fifth.send({ type: 'join', pool: 'three' });
    expect(await fifth.next()).toEqual({
      type: 'error',
      error: 'too_many_relays_from_ip',
      message: 'this address already has 4 WebSocket clients waiting or relaying here (MAX_RELAYS_PER_IP)',
    });
    expect(await fifth.closed).toBe(4005);
    // A pair that ends gives its places back.
    a.send({ type: 'leave' });
    expect(await a.closed).toBe(1000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const again = await open();
    again.send({ type: 'join', pool: 'three' });
    expect(await again.next()).toEqual({ type: 'queued' });
  });

  it('logs each WebSocket pairing once, as HTTP pairings are', async () => {
    server = await startServer();
    const before = server.logs.length;
    const [a, b, ma] = await pair('logged-ws');
    const paired = server.logs.slice(before).filter((line) => line.msg === 'paired');
    expect(paired).toEqual([
      {
        level: 30,
        time: paired[0]?.time,
        pid: process.pid,
        hostname: hostname(),
        pool: 'logged-ws',
        matchId: ma.matchId,
        waiter: `127.0.0.1:${(a.socket as unknown as { _socket: { localPort: number } })._socket.localPort}`,
        arrival: `127.0.0.1:${(b.socket as unknown as { _socket: { localPort: number } })._socket.localPort}`,
        msg: 'paired',
      },
    ]);
  });

  it('drops a client that does not read once WS_MAX_BUFFERED_BYTES wait for it; its partner hears it left', async () => {
    server = await startServer({ WS_MAX_BUFFERED_BYTES: '65536', WS_MAX_MESSAGE_BYTES: '1048576', WS_MAX_MESSAGES_PER_S: '100000' });
    const [a, b] = await pair();
    (b.socket as unknown as { _socket: { pause(): void } })._socket.pause(); // b reads nothing more
    const chunk = 'y'.repeat(1_000_000);
    for (let i = 0; i < 64 && a.socket.readyState === a.socket.OPEN; i++) {
      a.send({ type: 'signal', data: chunk });
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(await a.next(10_000)).toEqual({ type: 'peer_left' });
    expect(await a.closed).toBe(4002);
    await eventually(() => server.app.lobby.waiting === 0, 1000, 'nothing held');
  });

  it('drops a peer that stops answering pings; its partner hears it left', async () => {
    server = await startServer({ KEEPALIVE_MS: '150' });
    const [a, b] = await pair();
    (b.socket as unknown as { _socket: { pause(): void } })._socket.pause(); // reads no ping, answers no pong
    expect(await a.next(3000)).toEqual({ type: 'peer_left' });
    expect(await a.closed).toBe(4002);
  });

  it('closes a socket that sends no join within HEADERS_TIMEOUT_MS (4000)', async () => {
    server = await startServer({ HEADERS_TIMEOUT_MS: '200' });
    const s = await open();
    expect(await s.next()).toEqual({ type: 'error', error: 'request_timeout', message: 'the request was not received in time' });
    expect(await s.closed).toBe(4000);
  });

  it('keeps the TLS port working for a client that sends an upgrade and then garbage', async () => {
    server = await startServer();
    const socket = tlsConnect({ host: '127.0.0.1', port: server.port, ca: server.cert, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    socket.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: bad\r\n\r\n');
    const reply = await new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString())));
    expect(reply.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
    socket.destroy();
    const [a, b] = await pair('still');
    expect([a.received.at(-1)?.type, b.received.at(-1)?.type]).toEqual(['matched', 'matched']);
  });
});

describe('GET /ws: a flood with random aborts', () => {
  it('leaves no ghost: every match symmetric, nothing waiting afterwards, no warning in the log', async () => {
    server = await startServer();
    const CLIENTS = 120;
    interface Seen {
      socket?: TestSocket;
      match?: Record<string, unknown>;
      aborted: boolean;
    }
    const seen: Seen[] = [];
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, i) => {
        await new Promise((resolve) => setTimeout(resolve, (i * 13) % 400));
        const record: Seen = { aborted: false };
        seen.push(record);
        const s = await open();
        record.socket = s;
        s.send({ type: 'join', pool: 'flood', timeout: 2 });
        if (i % 3 === 2) {
          setTimeout(() => {
            record.aborted = true;
            s.socket.terminate();
          }, (i * 37) % 300);
        }
        // Matched sockets stay open (the relay): each client ends its own after 2.5 s.
        await Promise.race([s.closed, new Promise((resolve) => setTimeout(resolve, 2500))]);
        record.match = s.received.find((m) => m.type === 'matched');
        s.socket.terminate();
      }),
    );
    const matched = seen.filter((s) => s.match !== undefined);
    const byId = new Map<unknown, Seen[]>();
    for (const s of matched) byId.set(s.match?.matchId, [...(byId.get(s.match?.matchId) ?? []), s]);
    let complete = 0;
    for (const sides of byId.values()) {
      expect(sides.length).toBeLessThanOrEqual(2);
      if (sides.length === 2) {
        complete++;
        const [one, two] = sides as [Seen, Seen];
        expect([one.match?.peer, two.match?.peer]).toEqual([two.match?.self, one.match?.self]);
        expect(one.match?.initiator).not.toBe(two.match?.initiator);
      } else {
        // One side only: its partner aborted as the match was made, and it heard so.
        const [one] = sides as [Seen];
        expect(one.socket?.received.some((m) => m.type === 'peer_left')).toBe(true);
      }
    }
    expect(complete).toBeGreaterThan(20);
    await settledServer();
    expect(server.queue.size).toBe(0);
    expect(server.warnings()).toEqual([]);
  });
});
