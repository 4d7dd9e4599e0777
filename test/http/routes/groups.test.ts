/**
 * Groups of more than two over HTTP (`GET /`, `POST /` with `size`, `min`), on the real server: the
 * answer of each member, text and JSON, codes, the fill rule, a member that leaves, and bad input.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ask, eventually, json, startServer, TestClient, type TestServer } from '../../helpers/server.js';

const JSON_ACCEPT = { accept: 'application/json' };
const SECRET = /^[A-Za-z0-9_-]{43}$/;

describe('groups over HTTP', () => {
  let server: TestServer;
  const clients: TestClient[] = [];
  const client = (): TestClient => {
    const c = new TestClient(server.origin, server.cert);
    clients.push(c);
    return c;
  };
  const get = (c: TestClient, path: string, headers: Record<string, string> = JSON_ACCEPT, signal?: AbortSignal) => ask(c.client, server.origin, path, { headers, signal });
  const post = (c: TestClient, body: unknown) =>
    ask(c.client, server.origin, '/', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const waitFor = (n: number) => eventually(() => server.app.lobby.waiting === n, 2000, `${n} waiting`);
  const address = (c: TestClient) => `127.0.0.1:${c.localPort}`;

  beforeAll(async () => {
    server = await startServer({ FILL_WAIT_MS: '300' });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    expect(server.warnings()).toEqual([]);
  });
  afterAll(() => server.close());

  it('gathers four into one group: one matchId and secret, each its own index, the others by index, the lower index offering', async () => {
    const [a, b, c, d] = [client(), client(), client(), client()];
    const first = get(a, '/?pool=four&size=4');
    await waitFor(1);
    const second = get(b, '/?pool=four&size=4');
    await waitFor(2);
    const third = get(c, '/?pool=four&size=4');
    await waitFor(3);
    const answers = [await get(d, '/?pool=four&size=4'), await first, await second, await third];
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200]);
    const [ad, aa, ab, ac] = answers.map(json);
    const addresses = [address(a), address(b), address(c), address(d)];
    const { matchId, secret } = aa as { matchId: string; secret: string };
    expect(secret).toMatch(SECRET);
    // By index: a waited longest (0), d completed the group (3).
    for (const [index, answer] of [aa, ab, ac, ad].entries()) {
      expect(answer).toEqual({
        matchId,
        pool: 'four',
        secret,
        size: 4,
        self: { index, address: addresses[index] },
        members: [0, 1, 2, 3]
          .filter((other) => other !== index)
          .map((other) => ({ index: other, address: addresses[other], via: 'socket', portIsSource: true })),
        offerTo: [0, 1, 2, 3].filter((other) => other > index),
        waitedMs: expect.any(Number) as unknown,
        iceServers: [],
      });
    }
    expect(server.app.lobby.waiting).toBe(0);
    // One line for the group, by its first member's request.
    await eventually(() => server.logs.some((line) => line.msg === 'grouped' && line.matchId === matchId), 2000, 'the grouped line');
    expect(server.logs.filter((line) => line.matchId === matchId).map(({ level, msg, pool, size, members }) => ({ level, msg, pool, size, members }))).toEqual([
      { level: 30, msg: 'grouped', pool: 'four', size: 4, members: addresses },
    ]);
  });

  it("answers text with the other members' addresses, one a line, by index", async () => {
    const [a, b, c] = [client(), client(), client()];
    const first = get(a, '/?size=3', {});
    await waitFor(1);
    const second = get(b, '/?size=3', {});
    await waitFor(2);
    const third = await get(c, '/?size=3', {});
    expect(third.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(third.text).toBe(`${address(a)}\n${address(b)}\n`);
    expect((await first).text).toBe(`${address(b)}\n${address(c)}\n`);
    expect((await second).text).toBe(`${address(a)}\n${address(c)}\n`);
  });

  it("tells POST members each other's meta (null: none), and keeps sizes apart from pairs in one pool", async () => {
    const [a, b, c, p] = [client(), client(), client(), client()];
    const first = post(a, { pool: 'meta', size: 3, meta: { name: 'ann' } });
    await waitFor(1);
    // A pair in the same pool neither joins the group nor is paired with its waiter.
    const pair = post(p, { pool: 'meta', timeout: 0.5 });
    await waitFor(2);
    const second = post(b, { pool: 'meta', size: 3 });
    await waitFor(3);
    const third = json(await post(c, { pool: 'meta', size: 3, meta: { name: 'cy' } }));
    expect(third['members']).toEqual([
      { index: 0, address: address(a), via: 'socket', portIsSource: true, meta: { name: 'ann' } },
      { index: 1, address: address(b), via: 'socket', portIsSource: true, meta: null },
    ]);
    expect(json(await second)['members']).toEqual([
      { index: 0, address: address(a), via: 'socket', portIsSource: true, meta: { name: 'ann' } },
      { index: 2, address: address(c), via: 'socket', portIsSource: true, meta: { name: 'cy' } },
    ]);
    expect(json(await first)['offerTo']).toEqual([1, 2]);
    expect((await pair).status).toBe(408);
  });

  it('keeps a pair (size 2) the pair it always was: peer, peerMeta, initiator', async () => {
    const [a, b] = [client(), client()];
    const first = post(a, { pool: 'two', size: 2, min: 2 });
    await waitFor(1);
    const second = json(await post(b, { pool: 'two', size: 2 }));
    expect(Object.keys(second).sort()).toEqual(['iceServers', 'initiator', 'matchId', 'peer', 'peerMeta', 'pool', 'portIsSource', 'secret', 'self', 'via', 'waitedMs']);
    expect(second['peer']).toBe(address(a));
    expect(second['initiator']).toBe(false);
    expect(json(await first)['initiator']).toBe(true);
  });

  it('forms a group of min once the oldest has waited FILL_WAIT_MS, and not before', async () => {
    const [a, b, c] = [client(), client(), client()];
    const started = Date.now();
    const first = get(a, '/?pool=fill&size=5&min=3');
    await waitFor(1);
    const second = get(b, '/?pool=fill&size=5&min=3');
    await waitFor(2);
    // Two of min 3: nothing forms, however long they wait.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(server.app.lobby.waiting).toBe(2);
    // The third makes three: the oldest has waited past 300 ms, so the group forms at once with three.
    const third = json(await get(c, '/?pool=fill&size=5&min=3'));
    expect(third['size']).toBe(3);
    expect(third['self']).toEqual({ index: 2, address: address(c) });
    const oldest = json(await first);
    expect(oldest['members']).toEqual([
      { index: 1, address: address(b), via: 'socket', portIsSource: true },
      { index: 2, address: address(c), via: 'socket', portIsSource: true },
    ]);
    expect(oldest['waitedMs']).toBeGreaterThanOrEqual(400);
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    expect(json(await second)['size']).toBe(3);
  });

  it('forms a group of min by its own fill timer when nobody else comes', async () => {
    const [a, b] = [client(), client()];
    const first = get(a, '/?pool=timer&size=4&min=2');
    await waitFor(1);
    const second = get(b, '/?pool=timer&size=4&min=2');
    const [answerA, answerB] = [json(await first), json(await second)];
    expect(answerA['size']).toBe(2);
    expect(answerA['self']).toEqual({ index: 0, address: address(a) });
    expect(answerB['self']).toEqual({ index: 1, address: address(b) });
    expect(answerA['waitedMs']).toBeGreaterThanOrEqual(299);
    expect(answerA['waitedMs']).toBeLessThan(1000);
    expect(answerA['matchId']).toBe(answerB['matchId']);
  });

  it('gathers one group with a code, then refuses the code (409 code_used)', async () => {
    const [a, b, c, d] = [client(), client(), client(), client()];
    const first = get(a, '/?code=g-1&size=3');
    await waitFor(1);
    const second = get(b, '/?code=g-1&size=3');
    await waitFor(2);
    expect(json(await get(c, '/?code=g-1&size=3'))['code']).toBe('g-1');
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
    const late = await get(d, '/?code=g-1&size=3');
    expect(late.status).toBe(409);
    expect(json(late)).toEqual({
      error: 'code_used',
      message: 'this code has already been used by a pair or a group; choose a new one (codes stay used for CODE_TTL_MS)',
      field: 'code',
    });
  });

  it('drops a member that left and gathers the group without it, the others keeping their places', async () => {
    const [a, b, c, d, e] = [client(), client(), client(), client(), client()];
    const first = get(a, '/?pool=leave&size=4');
    await waitFor(1);
    const leaving = new AbortController();
    const gone = get(b, '/?pool=leave&size=4', JSON_ACCEPT, leaving.signal).catch((error: unknown) => error);
    await waitFor(2);
    const third = get(c, '/?pool=leave&size=4');
    await waitFor(3);
    leaving.abort();
    await gone;
    await waitFor(2);
    const fourth = get(d, '/?pool=leave&size=4');
    await waitFor(3);
    const last = json(await get(e, '/?pool=leave&size=4'));
    expect(last['members']).toEqual([
      { index: 0, address: address(a), via: 'socket', portIsSource: true },
      { index: 1, address: address(c), via: 'socket', portIsSource: true },
      { index: 2, address: address(d), via: 'socket', portIsSource: true },
    ]);
    for (const answer of [await first, await third, await fourth]) expect(json(answer)['matchId']).toBe(last['matchId']);
  });

  it.each([
    ['/?size=1', 'invalid_size', 'size must be a whole number from 2 to 8 (MAX_GROUP_SIZE)', 'size'],
    ['/?size=9', 'invalid_size', 'size must be a whole number from 2 to 8 (MAX_GROUP_SIZE)', 'size'],
    ['/?size=2.5', 'invalid_size', 'size must be a whole number from 2 to 8 (MAX_GROUP_SIZE)', 'size'],
    ['/?size=four', 'invalid_size', 'size must be a whole number from 2 to 8 (MAX_GROUP_SIZE)', 'size'],
    ['/?size=4&min=5', 'invalid_min', 'min must be a whole number from 2 to size (4)', 'min'],
    ['/?size=4&min=1', 'invalid_min', 'min must be a whole number from 2 to size (4)', 'min'],
    ['/?min=3', 'invalid_min', 'min must be a whole number from 2 to size (2)', 'min'],
  ])('refuses GET %s with 400 %s', async (path, error, message, field) => {
    const answer = await get(client(), path);
    expect(answer.status).toBe(400);
    expect(json(answer)).toEqual({ error, message, field });
    expect(server.app.lobby.waiting).toBe(0);
  });

  it.each([
    ['size=3&size=4', 'invalid_size', 'size must be a whole number from 2 to 8 (MAX_GROUP_SIZE)', 'size'],
    ['size=3&min=2&min=3', 'invalid_min', 'min must be a whole number from 2 to size (3)', 'min'],
    ['min=2&min=2', 'invalid_min', 'min must be a whole number from 2 to size (2)', 'min'],
  ])('refuses GET /?%s (a parameter given twice) with 400 %s', async (query, error, message, field) => {
    const answer = await get(client(), `/?${query}`);
    expect(answer.status).toBe(400);
    expect(json(answer)).toEqual({ error, message, field });
  });

  it.each([
    [{ size: '3' }, 'invalid_size', 'size must be a whole number from 2 to 8 (MAX_GROUP_SIZE)', 'size'],
    [{ size: 3.5 }, 'invalid_size', 'size must be a whole number from 2 to 8 (MAX_GROUP_SIZE)', 'size'],
    [{ size: 1e9 }, 'invalid_size', 'size must be a whole number from 2 to 8 (MAX_GROUP_SIZE)', 'size'],
    [{ size: null }, 'invalid_size', 'size must be a whole number from 2 to 8 (MAX_GROUP_SIZE)', 'size'],
    [{ size: 4, min: 4.5 }, 'invalid_min', 'min must be a whole number from 2 to size (4)', 'min'],
    [{ size: 4, min: [2] }, 'invalid_min', 'min must be a whole number from 2 to size (4)', 'min'],
  ])('refuses POST %j with 400 %s', async (body, error, message, field) => {
    const answer = await post(client(), body);
    expect(answer.status).toBe(400);
    expect(json(answer)).toEqual({ error, message, field });
  });
});

describe('MAX_GROUP_SIZE', () => {
  it('bounds size by the server’s own limit', async () => {
    const server = await startServer({ MAX_GROUP_SIZE: '3' });
    const c = new TestClient(server.origin, server.cert);
    try {
      const answer = await ask(c.client, server.origin, '/?size=4', { headers: JSON_ACCEPT });
      expect(answer.status).toBe(400);
      expect(json(answer)).toEqual({ error: 'invalid_size', message: 'size must be a whole number from 2 to 3 (MAX_GROUP_SIZE)', field: 'size' });
    } finally {
      await c.close();
      await server.close();
    }
  });
});
