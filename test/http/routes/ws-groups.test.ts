/**
 * Groups of more than two over GET /ws, on the real server: the group's matched message, signals
 * addressed by member (`to`, arriving with `from`), members leaving one by one (`peer_left` naming
 * each, the socket closed after the last), HTTP members in a WebSocket group, and bad input.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ask, eventually, json, startServer, TestClient, type TestServer } from '../../helpers/server.js';
import { openSocket, type TestSocket } from '../../helpers/ws-client.js';
import { RelayHub } from '../../../src/core/relay.js';

let server: TestServer;
const sockets: TestSocket[] = [];
const clients: TestClient[] = [];

beforeAll(async () => {
  server = await startServer({});
});
afterEach(async () => {
  for (const s of sockets.splice(0)) s.socket.terminate();
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await eventually(() => server.app.lobby.waiting === 0, 2000, 'nobody waiting');
  expect(server.warnings()).toEqual([]);
});
afterAll(() => server.close());

async function open(): Promise<TestSocket> {
  const socket = await openSocket(server.origin, server.cert);
  sockets.push(socket);
  return socket;
}

const addressOf = (s: TestSocket) => `127.0.0.1:${(s.socket as unknown as { _socket: { localPort: number } })._socket.localPort}`;

/** `size` sockets joined in `pool` one after another (so each one's index is its place), their matched messages. */
async function group(size: number, pool: string): Promise<{ members: TestSocket[]; matched: Record<string, unknown>[] }> {
  const members: TestSocket[] = [];
  for (let i = 0; i < size; i++) {
    const s = await open();
    s.send({ type: 'join', pool, size, meta: { name: `m${i}` } });
    if (i < size - 1) expect(await s.next()).toEqual({ type: 'queued' });
    members.push(s);
  }
  return { members, matched: await Promise.all(members.map((s) => s.next())) };
}

describe('groups over the WebSocket', () => {
  it('matches three with the group answer: one matchId and secret, each its index, the others with their meta, the lower index offering', async () => {
    const { members, matched } = await group(3, 'three');
    const addresses = members.map(addressOf);
    const { matchId, secret } = matched[0] as { matchId: string; secret: string };
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    for (const [index, message] of matched.entries()) {
      expect({ ...message, waitedMs: 0 }).toEqual({
        type: 'matched',
        matchId,
        pool: 'three',
        secret,
        size: 3,
        self: { index, address: addresses[index] },
        members: [0, 1, 2]
          .filter((other) => other !== index)
          .map((other) => ({ index: other, address: addresses[other], via: 'socket', portIsSource: true, meta: { name: `m${other}` } })),
        offerTo: [0, 1, 2].filter((other) => other > index),
        waitedMs: 0,
        iceServers: [],
      });
    }
    await eventually(() => server.logs.some((line) => line.msg === 'grouped' && line.matchId === matchId), 2000, 'the grouped line');
    expect(server.logs.filter((line) => line.matchId === matchId).map(({ level, msg, pool, size, members }) => ({ level, msg, pool, size, members }))).toEqual([
      { level: 30, msg: 'grouped', pool: 'three', size: 3, members: addresses },
    ]);
  });

  it('relays a signal to the member it names, in order, as from its sender; nobody else hears it', async () => {
    const { members } = await group(4, 'relay');
    const [m0, m1, m2, m3] = members as [TestSocket, TestSocket, TestSocket, TestSocket];
    m0.send({ type: 'signal', to: 2, data: { sdp: 'offer 0→2' } });
    m0.send({ type: 'signal', to: 2, data: 'second' });
    m3.send({ type: 'signal', to: 1, data: [1, 2, 3] });
    m1.send({ type: 'signal', to: 0, data: null });
    expect([await m2.next(), await m2.next()]).toEqual([
      { from: 0, type: 'signal', to: 2, data: { sdp: 'offer 0→2' } },
      { from: 0, type: 'signal', to: 2, data: 'second' },
    ]);
    expect(await m1.next()).toEqual({ from: 3, type: 'signal', to: 1, data: [1, 2, 3] });
    expect(await m0.next()).toEqual({ from: 1, type: 'signal', to: 0, data: null });
    // A round trip more, so that anything misdelivered would have arrived by now.
    m2.send({ type: 'signal', to: 3, data: 'last' });
    expect(await m3.next()).toEqual({ from: 2, type: 'signal', to: 3, data: 'last' });
    // queued (but the last), matched, then the signals for each.
    expect(members.map((s) => s.received.length)).toEqual([3, 3, 4, 2]);
  });

  it('relays the frame as it came, from put at its front: data nested thousands deep is neither parsed into a value again nor refused', async () => {
    const { members } = await group(3, 'deep');
    const [m0, m1] = members as [TestSocket, TestSocket];
    const frame = `{"type":"signal", "to":1,"data":${'['.repeat(6000)}${']'.repeat(6000)}}`;
    const raw = new Promise<string>((resolve) => m1.socket.once('message', (data) => resolve((data as Buffer).toString('utf8'))));
    m0.send(frame);
    expect(await raw).toBe(`{"from":0,"type":"signal", "to":1,"data":${'['.repeat(6000)}${']'.repeat(6000)}}`);
    // Everyone else still served.
    m1.send({ type: 'signal', to: 0, data: 'after' });
    expect((await m0.next()).data).toBe('after');
    const health = new TestClient(server.origin, server.cert);
    clients.push(health);
    expect(json(await ask(health.client, server.origin, '/healthz'))).toEqual({ status: 'ok', waiting: 0 });
  });

  it('tells every member still there who left; the socket stays open until the last other member left (4002)', async () => {
    const { members } = await group(3, 'leaving');
    const [m0, m1, m2] = members as [TestSocket, TestSocket, TestSocket];
    m1.send({ type: 'leave' });
    expect(await m1.closed).toBe(1000);
    expect(await m0.next()).toEqual({ type: 'peer_left', member: 1 });
    expect(await m2.next()).toEqual({ type: 'peer_left', member: 1 });
    // The two left still talk; a signal to the member who left is dropped.
    m0.send({ type: 'signal', to: 1, data: 'too late' });
    m0.send({ type: 'signal', to: 2, data: 'still here' });
    expect(await m2.next()).toEqual({ from: 0, type: 'signal', to: 2, data: 'still here' });
    m2.socket.close();
    expect(await m0.next()).toEqual({ type: 'peer_left', member: 2 });
    expect(await m0.closed).toBe(4002);
    expect(m0.received.map((m) => m.type)).toEqual(['queued', 'matched', 'peer_left', 'peer_left']);
  });

  it('counts a member that asked over HTTP as left at once', async () => {
    const http = new TestClient(server.origin, server.cert);
    clients.push(http);
    const answer = ask(http.client, server.origin, '/?pool=mixed&size=3', { headers: { accept: 'application/json' } });
    await eventually(() => server.app.lobby.waiting === 1, 2000, 'the HTTP member waiting');
    const a = await open();
    a.send({ type: 'join', pool: 'mixed', size: 3 });
    expect(await a.next()).toEqual({ type: 'queued' });
    const b = await open();
    b.send({ type: 'join', pool: 'mixed', size: 3 });
    const [ma, mb] = [await a.next(), await b.next()];
    expect([ma.type, (ma.self as { index: number }).index, mb.type, (mb.self as { index: number }).index]).toEqual(['matched', 1, 'matched', 2]);
    expect(((json(await answer).self as { index: number }).index)).toBe(0);
    expect([await a.next(), await b.next()]).toEqual([
      { type: 'peer_left', member: 0 },
      { type: 'peer_left', member: 0 },
    ]);
    a.send({ type: 'signal', to: 2, data: 'hi' });
    expect(await b.next()).toEqual({ from: 1, type: 'signal', to: 2, data: 'hi' });
  });

  it('closes every member once the others are gone (all but one leave at once)', async () => {
    const { members } = await group(3, 'all');
    const [m0, m1, m2] = members as [TestSocket, TestSocket, TestSocket];
    m0.socket.terminate();
    m1.socket.terminate();
    const left = [await m2.next(), await m2.next()];
    expect(left.sort((x, y) => (x.member as number) - (y.member as number))).toEqual([
      { type: 'peer_left', member: 0 },
      { type: 'peer_left', member: 1 },
    ]);
    expect(await m2.closed).toBe(4002);
  });
});

describe('groups over the WebSocket: word that came before the match', () => {
  it('tells a member once of another that left before this process heard of the match', async () => {
    // Another process answered its members first and one of them left at once: its `left` reached
    // this process before its own word of the group, and is held for the member's endpoint.
    const hub = new RelayHub('early');
    const own = await startServer({}, '127.0.0.1', { relay: hub, owner: 'early' });
    const mine: TestSocket[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const s = await openSocket(own.origin, own.cert);
        mine.push(s);
        s.send({ type: 'join', pool: 'early', size: 3 });
        if (i < 2) expect(await s.next()).toEqual({ type: 'queued' });
        // The first member's ticket is this lobby's first: member 2's leaving is held for it.
        if (i === 1) hub.receive(`${own.app.lobby.owner}.1`, { t: 'left', from: 2 });
      }
      const first = mine[0] as TestSocket;
      expect((await first.next()).type).toBe('matched');
      expect(await first.next()).toEqual({ type: 'peer_left', member: 2 });
      // Member 1 signals: that comes next, nothing in between.
      (mine[1] as TestSocket).send({ type: 'signal', to: 0, data: 'next' });
      expect(await first.next()).toEqual({ from: 1, type: 'signal', to: 0, data: 'next' });
    } finally {
      for (const s of mine) s.socket.terminate();
      await own.close();
    }
  });
});

describe('groups over the WebSocket: bad input', () => {
  const refusals: [string, Record<string, unknown>, Record<string, unknown>][] = [
    ['a size over MAX_GROUP_SIZE', { type: 'join', size: 9 }, { error: 'invalid_size', message: 'size must be a whole number from 2 to 8 (MAX_GROUP_SIZE)', field: 'size' }],
    ['a size of 1', { type: 'join', size: 1 }, { error: 'invalid_size', message: 'size must be a whole number from 2 to 8 (MAX_GROUP_SIZE)', field: 'size' }],
    ['min above size', { type: 'join', size: 3, min: 4 }, { error: 'invalid_min', message: 'min must be a whole number from 2 to size (3)', field: 'min' }],
    [
      'punch in a group',
      { type: 'join', size: 3, punch: { mapping: '192.0.2.1:4000' } },
      { error: 'invalid_message', message: 'WebSocket message is not valid: punch is for pairs: a join with size above 2 cannot punch', field: 'punch' },
    ],
  ];
  it.each(refusals)('refuses %s with an error frame naming the field, and closes 4000', async (_, join, error) => {
    const s = await open();
    s.send(join);
    expect(await s.next()).toEqual({ type: 'error', ...error });
    expect(await s.closed).toBe(4000);
  });

  it('refuses a signal whose to names no other member, or has none, and closes that member alone', async () => {
    const { members } = await group(3, 'bad-to');
    const [m0, m1, m2] = members as [TestSocket, TestSocket, TestSocket];
    m0.send({ type: 'signal', to: 3, data: 'x' });
    expect(await m0.next()).toEqual({
      type: 'error',
      error: 'invalid_message',
      message: "WebSocket message is not valid: signal's to must be the index of another member (0 to 2, not 0), got 3",
      field: 'to',
    });
    expect(await m0.closed).toBe(4000);
    expect(await m1.next()).toEqual({ type: 'peer_left', member: 0 });
    m1.send({ type: 'signal', data: 'x' });
    expect(await m1.next()).toEqual({
      type: 'error',
      error: 'invalid_message',
      message: 'WebSocket message is not valid: a signal in a group needs to: the index of another member (0 to 2, not 1)',
      field: 'to',
    });
    expect(await m1.closed).toBe(4000);
    expect([await m2.next(), await m2.next()]).toEqual([
      { type: 'peer_left', member: 0 },
      { type: 'peer_left', member: 1 },
    ]);
    expect(await m2.closed).toBe(4002);
  });

  it.each([
    [{ type: 'signal', to: 2, data: 'x' }, 'invalid_message', "WebSocket message is not valid: signal's to must be the index of another member (0 to 2, not 2), got 2", 'to'],
    [{ type: 'signal', to: -1, data: 'x' }, 'invalid_message', "WebSocket message is not valid: signal's to must be a member's index, a whole number from 0; got -1", 'to'],
    [{ type: 'signal', to: 1.5, data: 'x' }, 'invalid_message', "WebSocket message is not valid: signal's to must be a member's index, a whole number from 0; got 1.5", 'to'],
    [{ type: 'signal', to: '1', data: 'x' }, 'invalid_message', "WebSocket message is not valid: signal's to must be a member's index, a whole number from 0; got a string", 'to'],
    [{ type: 'signal', to: [[[1]]], data: 'x' }, 'invalid_message', "WebSocket message is not valid: signal's to must be a member's index, a whole number from 0; got an array", 'to'],
    [{ type: 'signal', to: 64, data: 'x' }, 'invalid_message', "WebSocket message is not valid: signal's to must be the index of another member (0 to 2, not 2), got 64", 'to'],
    [{ type: 'connected', via: 'direct', ms: 10 }, 'invalid_message', 'WebSocket message is not valid: a connected report in a group needs to: the index of another member (0 to 2, not 2)', 'to'],
    [{ type: 'failed', to: 3 }, 'invalid_message', "WebSocket message is not valid: failed's to must be the index of another member (0 to 2, not 2), got 3", 'to'],
    [{ type: 'connected', to: '1', via: 'direct', ms: 10 }, 'invalid_message', "WebSocket message is not valid: connected's to must be a member's index, a whole number from 0; got a string", 'to'],
    [{ type: 'punch_again' }, 'unexpected_message', 'WebSocket message punch_again is not expected in a group (punching is for pairs)', undefined],
  ])('refuses %j from a member', async (message, error, text, field) => {
    const { members } = await group(3, `bad-${JSON.stringify(message).length}-${error.length}`);
    const last = members[2] as TestSocket;
    last.send(message);
    expect(await last.next()).toEqual({ type: 'error', error, message: text, ...(field === undefined ? {} : { field }) });
    expect(await last.closed).toBe(4000);
  });

  it("refuses a pair's signal with to", async () => {
    const a = await open();
    a.send({ type: 'join', pool: 'pair-to' });
    expect(await a.next()).toEqual({ type: 'queued' });
    const b = await open();
    b.send({ type: 'join', pool: 'pair-to', size: 2 });
    expect([(await a.next()).type, (await b.next()).type]).toEqual(['matched', 'matched']);
    b.send({ type: 'signal', to: 0, data: 'x' });
    expect(await b.next()).toEqual({
      type: 'error',
      error: 'invalid_message',
      message: "WebSocket message is not valid: to is for groups: a pair's signal goes to its partner",
      field: 'to',
    });
    expect(await b.closed).toBe(4000);
    expect(await a.next()).toEqual({ type: 'peer_left' });
  });
});
