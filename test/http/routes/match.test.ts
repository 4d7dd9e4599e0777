import { hostname } from 'node:os';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ask, eventually, json, startServer, TestClient, type Answer, type TestServer } from '../../helpers/server.js';

const JSON_ACCEPT = { accept: 'application/json' };

describe.each([
  { protocol: 'HTTP/1.1', h2: false },
  { protocol: 'HTTP/2', h2: true },
])('pairing over $protocol', ({ h2 }) => {
  let server: TestServer;
  const clients: TestClient[] = [];
  const client = (): TestClient => {
    const c = new TestClient(server.origin, server.cert, { h2 });
    clients.push(c);
    return c;
  };
  const get = (c: TestClient, path: string, headers: Record<string, string> = {}, signal?: AbortSignal) =>
    ask(c.client, server.origin, path, { headers, signal });
  const waitFor = (n: number) => eventually(() => server.app.lobby.waiting === n, 2000, `${n} waiting`);

  beforeAll(async () => {
    server = await startServer();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    expect(server.warnings()).toEqual([]);
  });
  afterAll(() => server.close());

  it('pairs two clients with each other’s exact addresses as text', async () => {
    const a = client();
    const b = client();
    const first = get(a, '/');
    await waitFor(1);
    const second = await get(b, '/');
    const answerA = await first;
    expect(answerA.status).toBe(200);
    expect(second.status).toBe(200);
    expect(answerA.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(answerA.text).toBe(`127.0.0.1:${b.localPort}\n`);
    expect(second.text).toBe(`127.0.0.1:${a.localPort}\n`);
    expect(server.app.lobby.waiting).toBe(0);
  });

  it('pairs two clients as JSON with one matchId and one initiator', async () => {
    const a = client();
    const b = client();
    const first = get(a, '/?pool=json-pool', JSON_ACCEPT);
    await waitFor(1);
    const answerB = json(await get(b, '/?pool=json-pool', JSON_ACCEPT));
    const answerA = json(await first);
    expect(Object.keys(answerA).sort()).toEqual([
      'iceServers',
      'initiator',
      'matchId',
      'peer',
      'pool',
      'portIsSource',
      'secret',
      'self',
      'via',
      'waitedMs',
    ]);
    expect(answerA).toMatchObject({
      pool: 'json-pool',
      self: `127.0.0.1:${a.localPort}`,
      peer: `127.0.0.1:${b.localPort}`,
      via: 'socket',
      portIsSource: true,
      initiator: true,
    });
    expect(answerB).toMatchObject({
      pool: 'json-pool',
      self: `127.0.0.1:${b.localPort}`,
      peer: `127.0.0.1:${a.localPort}`,
      initiator: false,
    });
    expect(answerA.matchId).toBe(answerB.matchId);
    expect(answerA.matchId).toMatch(/^[0-9a-f-]{36}$/);
    expect(answerA.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(answerB.secret).toBe(answerA.secret);
    expect(Number.isInteger(answerA.waitedMs)).toBe(true);
    expect(answerB.waitedMs).toBe(0);
  });

  it('pairs two of three clients and keeps the third waiting', async () => {
    const [a, b, c] = [client(), client(), client()];
    const first = get(a, '/?pool=three');
    await waitFor(1);
    const second = get(b, '/?pool=three');
    expect((await first).text).toBe(`127.0.0.1:${b.localPort}\n`);
    expect((await second).text).toBe(`127.0.0.1:${a.localPort}\n`);
    const third = get(c, '/?pool=three&timeout=0.3');
    await waitFor(1);
    expect(server.app.lobby.waiting).toBe(1);
    expect((await third).status).toBe(408);
  });

  it('never mixes pools', async () => {
    const [a, b, c, d] = [client(), client(), client(), client()];
    const inX = get(a, '/?pool=x');
    await waitFor(1);
    const inY = get(b, '/?pool=y');
    await waitFor(2);
    const secondX = await get(c, '/?pool=x');
    const secondY = await get(d, '/?pool=y');
    expect(secondX.text).toBe(`127.0.0.1:${a.localPort}\n`);
    expect(secondY.text).toBe(`127.0.0.1:${b.localPort}\n`);
    expect((await inX).text).toBe(`127.0.0.1:${c.localPort}\n`);
    expect((await inY).text).toBe(`127.0.0.1:${d.localPort}\n`);
  });

  it('answers a lone client 408 after its timeout, as text and as JSON', async () => {
    const started = Date.now();
    const text = await get(client(), '/?pool=lonely&timeout=0.2');
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(text.status).toBe(408);
    expect(text.text).toBe('timeout waiting for peer\n');
    expect(text.headers['retry-after']).toBe('0');
    const asJson = await get(client(), '/?pool=lonely&timeout=0.2', JSON_ACCEPT);
    expect(asJson.status).toBe(408);
    const body = json(asJson);
    expect(Object.keys(body).sort()).toEqual(['error', 'message', 'waitedMs']);
    expect(body.error).toBe('timeout');
    expect(body.message).toBe('timeout waiting for peer');
    expect(body.waitedMs).toBeGreaterThanOrEqual(199);
    expect(asJson.headers['retry-after']).toBe('0');
    expect(server.app.lobby.waiting).toBe(0);
  });

  it('never hands a client that aborted to a later client', async () => {
    const [gone, b, c] = [client(), client(), client()];
    const controller = new AbortController();
    const abandoned = get(gone, '/?pool=abort', {}, controller.signal).catch((error: unknown) => error);
    await waitFor(1);
    controller.abort();
    await expect(abandoned).resolves.toBeInstanceOf(Error);
    await waitFor(0);
    const second = get(b, '/?pool=abort');
    await waitFor(1);
    const third = await get(c, '/?pool=abort');
    expect(third.text).toBe(`127.0.0.1:${b.localPort}\n`);
    expect((await second).text).toBe(`127.0.0.1:${c.localPort}\n`);
  });

  it('drops a POST client that aborts while waiting', async () => {
    const [gone, b, c] = [client(), client(), client()];
    const controller = new AbortController();
    const abandoned = ask(gone.client, server.origin, '/', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"pool":"post-abort","meta":{"x":1}}',
      signal: controller.signal,
    }).catch((error: unknown) => error);
    await waitFor(1);
    controller.abort();
    await expect(abandoned).resolves.toBeInstanceOf(Error);
    await waitFor(0);
    const second = get(b, '/?pool=post-abort');
    await waitFor(1);
    expect((await get(c, '/?pool=post-abort')).text).toBe(`127.0.0.1:${b.localPort}\n`);
    expect((await second).text).toBe(`127.0.0.1:${c.localPort}\n`);
  });

  it('exchanges meta between POST clients and tells GET clients nothing of it', async () => {
    const [a, b, c, d] = [client(), client(), client(), client()];
    const post = (x: TestClient, body: unknown) =>
      ask(x.client, server.origin, '/', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const first = post(a, { pool: 'meta', meta: { udpPort: 40000, key: 'k1', nested: { list: [1, 'two', null] } } });
    await waitFor(1);
    const answerB = json(await post(b, { pool: 'meta', timeout: 5, meta: { udpPort: 40001 } }));
    const answerA = json(await first);
    expect(answerA.peerMeta).toEqual({ udpPort: 40001 });
    expect(answerB.peerMeta).toEqual({ udpPort: 40000, key: 'k1', nested: { list: [1, 'two', null] } });
    expect(answerA.peer).toBe(`127.0.0.1:${b.localPort}`);
    expect(Object.keys(answerA).sort()).toEqual([
      'iceServers',
      'initiator',
      'matchId',
      'peer',
      'peerMeta',
      'pool',
      'portIsSource',
      'secret',
      'self',
      'via',
      'waitedMs',
    ]);

    // A GET partner shares nothing (null), and the GET client hears no meta at all.
    const viaPost = post(c, { pool: 'mixed', meta: { secret: 'not for text' } });
    await waitFor(1);
    const viaGet = await get(d, '/?pool=mixed');
    expect(viaGet.text).toBe(`127.0.0.1:${c.localPort}\n`);
    expect(json(await viaPost).peerMeta).toBeNull();
  });

  it('answers an empty POST with the defaults', async () => {
    const first = ask(client().client, server.origin, '/', { method: 'POST' });
    await waitFor(1);
    const second = await get(client(), '/', JSON_ACCEPT);
    expect(json(second).pool).toBe('default');
    expect(json(await first).pool).toBe('default');
  });

  it('logs each pairing once with both addresses and the pool', async () => {
    const before = server.logs.length;
    const a = client();
    const b = client();
    const first = get(a, '/?pool=logged');
    await waitFor(1);
    await get(b, '/?pool=logged');
    await first;
    const paired = server.logs.slice(before).filter((line) => line.msg === 'paired');
    expect(paired).toHaveLength(1);
    // pino's own fields first (level, time, bindings), then the pairing's, then the message.
    const [line] = paired;
    if (line === undefined) throw new Error('no paired line');
    expect(Object.keys(line)).toEqual(['level', 'time', 'pid', 'hostname', 'pool', 'matchId', 'waiter', 'arrival', 'msg']);
    expect(line).toEqual({
      level: 30,
      time: line.time,
      pid: process.pid,
      hostname: hostname(),
      pool: 'logged',
      matchId: line.matchId,
      waiter: `127.0.0.1:${a.localPort}`,
      arrival: `127.0.0.1:${b.localPort}`,
      msg: 'paired',
    });
    expect(Math.abs(Number(line.time) - Date.now())).toBeLessThan(5000);
    expect(line.matchId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

describe('HTTP/2 connections', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.close());

  it('never pairs two requests that share one connection', async () => {
    const shared = new TestClient(server.origin, server.cert, { h2: true });
    const other = new TestClient(server.origin, server.cert, { h2: true });
    const third = new TestClient(server.origin, server.cert, { h2: true });
    try {
      const one = ask(shared.client, server.origin, '/?pool=same', { headers: JSON_ACCEPT });
      await eventually(() => server.app.lobby.waiting === 1);
      const two = ask(shared.client, server.origin, '/?pool=same', { headers: JSON_ACCEPT });
      await eventually(() => server.app.lobby.waiting === 2);
      const fromOther = json(await ask(other.client, server.origin, '/?pool=same', { headers: JSON_ACCEPT }));
      const fromThird = json(await ask(third.client, server.origin, '/?pool=same', { headers: JSON_ACCEPT }));
      const [answerOne, answerTwo] = [json(await one), json(await two)];
      expect(answerOne.self).toBe(`127.0.0.1:${shared.localPort}`);
      expect(answerOne.peer).toBe(`127.0.0.1:${other.localPort}`);
      expect(answerTwo.peer).toBe(`127.0.0.1:${third.localPort}`);
      expect(fromOther.matchId).toBe(answerOne.matchId);
      expect(fromThird.matchId).toBe(answerTwo.matchId);
      expect(server.warnings()).toEqual([]);
    } finally {
      await Promise.all([shared.close(), other.close(), third.close()]);
    }
  });
});

describe('addresses over IPv6', () => {
  it('shows an IPv6 client in brackets', async () => {
    const server = await startServer({}, '::1');
    const [a, b] = [new TestClient(server.origin, server.cert), new TestClient(server.origin, server.cert)];
    try {
      const first = ask(a.client, server.origin, '/');
      await eventually(() => server.app.lobby.waiting === 1);
      const second: Answer = await ask(b.client, server.origin, '/');
      expect((await first).text).toBe(`[::1]:${b.localPort}\n`);
      expect(second.text).toBe(`[::1]:${a.localPort}\n`);
    } finally {
      await Promise.all([a.close(), b.close()]);
      await server.close();
    }
  });

  it('shows an IPv4 client of a dual-stack listener as plain IPv4', async () => {
    const server = await startServer({}, '::');
    const origin = `https://127.0.0.1:${server.port}`;
    const [a, b] = [new TestClient(origin, server.cert), new TestClient(origin, server.cert)];
    try {
      const first = ask(a.client, origin, '/', { headers: JSON_ACCEPT });
      await eventually(() => server.app.lobby.waiting === 1);
      const second = json(await ask(b.client, origin, '/', { headers: JSON_ACCEPT }));
      expect(second.self).toBe(`127.0.0.1:${b.localPort}`);
      expect(second.peer).toBe(`127.0.0.1:${a.localPort}`);
      expect(json(await first).peer).toBe(`127.0.0.1:${b.localPort}`);
    } finally {
      await Promise.all([a.close(), b.close()]);
      await server.close();
    }
  });
});
