/**
 * App keys (APP_KEYS_FILE) on real servers: who may ask (401 key_required / unknown_key), from which
 * pages (403), in which namespace, within which quotas (429), with or without TURN; over GET /,
 * POST / and /ws alike.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AppKeys, hashKey, parseAppKeys } from '../../../src/net/app-keys.js';
import { ask, eventually, json, startServer, TestClient, type TestServer } from '../../helpers/server.js';
import { openSocket, type TestSocket } from '../../helpers/ws-client.js';

const CHESS_KEY = 'pairup_chess-test-key-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const GO_KEY = 'pairup_go-test-key-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
const PAGE_KEY = 'pairup_page-test-key-cccccccccccccccccccccccccccccccccc';
const TURN = { TURN_URLS: 'turn:turn.example:3478', TURN_SECRET: 'turn-secret-for-tests', STUN_PORT: '0' };

function keysFile(entries: Record<string, unknown>[]): AppKeys {
  return new AppKeys(parseAppKeys(JSON.stringify({ keys: entries })));
}

const KEYS = [
  { app: 'chess', sha256: hashKey(CHESS_KEY) },
  { app: 'go', sha256: hashKey(GO_KEY), maxWaiting: 1, pairingsPerMinute: 1, turn: false },
  { app: 'page', sha256: hashKey(PAGE_KEY), origins: ['https://page.example'] },
];

const KEY_REQUIRED = { error: 'key_required', message: 'this server takes requests with an app key: send Authorization: Bearer KEY, or ?key=KEY' };
const UNKNOWN_KEY = { error: 'unknown_key', message: 'this app key is not valid here' };

let server: TestServer | undefined;
const clients: TestClient[] = [];
const sockets: TestSocket[] = [];

function running(): TestServer {
  if (server === undefined) throw new Error('no server started');
  return server;
}

function client(): TestClient {
  const c = new TestClient(running().origin, running().cert);
  clients.push(c);
  return c;
}
const bearer = (key: string) => ({ accept: 'application/json', authorization: `Bearer ${key}` });
const get = (path: string, headers: Record<string, string> = { accept: 'application/json' }) => ask(client().client, running().origin, path, { headers });
const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  ask(client().client, running().origin, path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
const waitFor = (n: number) => eventually(() => running().app.lobby.waiting === n, 2000, `${n} waiting`);

async function socket(query: string, headers?: Record<string, string>): Promise<TestSocket> {
  const s = await openSocket(running().origin, running().cert, { query, ...(headers === undefined ? {} : { headers }) });
  sockets.push(s);
  return s;
}

afterEach(async () => {
  for (const s of sockets.splice(0)) s.socket.terminate();
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await server?.close();
  server = undefined;
});

describe('app keys', () => {
  it('refuses a request with no key, or an unknown one, with 401 on GET / and POST /', async () => {
    server = await startServer({}, '127.0.0.1', { appKeys: keysFile(KEYS) });
    // An Authorization that is not a bearer token names no key.
    for (const answer of [await get('/?pool=chess'), await post('/', { pool: 'chess' }), await get('/?pool=chess', { accept: 'application/json', authorization: 'Basic eDp5' })]) {
      expect({ status: answer.status, body: json(answer) }).toEqual({ status: 401, body: KEY_REQUIRED });
    }
    for (const answer of [
      await get('/?pool=chess', bearer('pairup_nobody')),
      await get('/?pool=chess&key=pairup_nobody'),
      await post('/?key=pairup_nobody', { pool: 'chess' }),
    ]) {
      expect({ status: answer.status, body: json(answer) }).toEqual({ status: 401, body: UNKNOWN_KEY });
    }
    expect(server.app.lobby.waiting).toBe(0);
    // The key is never logged.
    expect(JSON.stringify(server.logs)).not.toContain('pairup_nobody');
  });

  it('pairs clients of one app by a Bearer key or ?key=, over GET and POST', async () => {
    server = await startServer({}, '127.0.0.1', { appKeys: keysFile(KEYS) });
    const first = get('/?pool=chess', bearer(CHESS_KEY));
    await waitFor(1);
    const second = await post(`/?key=${CHESS_KEY}`, { pool: 'chess' });
    expect(second.status).toBe(200);
    expect(json(second)).toMatchObject({ pool: 'chess', initiator: false });
    expect((await first).status).toBe(200);
  });

  it('keeps each app in its own namespace: two apps using pool chess never meet', async () => {
    server = await startServer({}, '127.0.0.1', { appKeys: keysFile(KEYS) });
    const chess = get('/?pool=chess&timeout=0.5', bearer(CHESS_KEY));
    await waitFor(1);
    const go = get('/?pool=chess&timeout=0.5', bearer(GO_KEY));
    await waitFor(2);
    const [a, b] = await Promise.all([chess, go]);
    expect([a.status, json(a).error, b.status, json(b).error]).toEqual([408, 'timeout', 408, 'timeout']);
  });

  it('refuses a page its key does not list (403), and serves the pages it does', async () => {
    server = await startServer({}, '127.0.0.1', { appKeys: keysFile(KEYS) });
    const refused = await get('/?pool=p', { ...bearer(PAGE_KEY), origin: 'https://evil.example' });
    expect({ status: refused.status, body: json(refused) }).toEqual({
      status: 403,
      body: { error: 'origin_not_allowed', message: 'pages of origin "https://evil.example" may not use this server (its app key)' },
    });
    const allowed = await get('/?pool=p&timeout=0.05', { ...bearer(PAGE_KEY), origin: 'https://page.example' });
    expect(allowed.status).toBe(408);
  });

  it('refuses a client over its app\'s maxWaiting with 429 app_over_quota and Retry-After', async () => {
    server = await startServer({}, '127.0.0.1', { appKeys: keysFile(KEYS) });
    const waiting = get('/?pool=one&timeout=1', bearer(GO_KEY));
    await waitFor(1);
    const over = await get('/?pool=two', bearer(GO_KEY));
    expect({ status: over.status, retryAfter: over.headers['retry-after'], body: json(over) }).toEqual({
      status: 429,
      retryAfter: '1',
      body: { error: 'app_over_quota', message: 'this app already has 1 clients waiting (its maxWaiting in APP_KEYS_FILE)' },
    });
    // Another app is not held to it.
    const other = await get('/?pool=two&timeout=0.05', bearer(CHESS_KEY));
    expect(other.status).toBe(408);
    expect((await waiting).status).toBe(408);
    // Its place is given back when it stops waiting.
    expect((await get('/?pool=one&timeout=0.05', bearer(GO_KEY))).status).toBe(408);
  });

  it('refuses an app past its pairingsPerMinute with 429 too_many_pairings and the window\'s Retry-After; its matches carry no TURN', async () => {
    server = await startServer(TURN, '127.0.0.1', { appKeys: keysFile([...KEYS.slice(0, 1), { ...KEYS[1], maxWaiting: 0 }]) });
    const first = get('/?pool=p', bearer(GO_KEY));
    await waitFor(1);
    const second = await post('/', { pool: 'p' }, { authorization: `Bearer ${GO_KEY}` });
    expect(second.status).toBe(200);
    expect(json(second).iceServers).toEqual([]);
    expect((await first).status).toBe(200);
    const third = await get('/?pool=p', bearer(GO_KEY));
    const retryAfter = Number(third.headers['retry-after']);
    expect({ status: third.status, body: json(third) }).toEqual({
      status: 429,
      body: { error: 'too_many_pairings', message: 'this app has made its 1 pairings of this minute (its pairingsPerMinute in APP_KEYS_FILE)' },
    });
    expect(retryAfter >= 1 && retryAfter <= 60).toBe(true);
    // An app whose key allows TURN gets its credential.
    const a = get('/?pool=t', bearer(CHESS_KEY));
    await waitFor(1);
    const b = json(await get('/?pool=t', bearer(CHESS_KEY)));
    await a;
    expect((b.iceServers as { urls: string[] }[]).map((s) => s.urls)).toEqual([['turn:turn.example:3478']]);
  });

  it('over /ws: a bad key gets the error frame and close 4008 before any join; a good one pairs in its namespace', async () => {
    server = await startServer({}, '127.0.0.1', { appKeys: keysFile(KEYS) });
    const none = await socket('');
    expect(await none.next()).toEqual({ type: 'error', ...KEY_REQUIRED });
    expect(await none.closed).toBe(4008);
    const unknown = await socket('?key=pairup_nobody');
    expect(await unknown.next()).toEqual({ type: 'error', ...UNKNOWN_KEY });
    expect(await unknown.closed).toBe(4008);
    const page = await socket(`?key=${PAGE_KEY}`, { origin: 'https://evil.example' });
    expect(await page.next()).toEqual({ type: 'error', error: 'origin_not_allowed', message: 'pages of origin "https://evil.example" may not use this server (its app key)' });
    expect(await page.closed).toBe(4008);

    const a = await socket(`?key=${CHESS_KEY}`);
    a.send({ type: 'join', pool: 'chess' });
    expect(await a.next()).toEqual({ type: 'queued' });
    const other = await socket('', { authorization: `Bearer ${GO_KEY}` });
    other.send({ type: 'join', pool: 'chess' });
    expect(await other.next()).toEqual({ type: 'queued' });
    const b = await socket('', { authorization: `Bearer ${CHESS_KEY}` });
    b.send({ type: 'join', pool: 'chess' });
    expect(await b.next()).toMatchObject({ type: 'matched', pool: 'chess', initiator: false });
    expect(await a.next()).toMatchObject({ type: 'matched', pool: 'chess', initiator: true });
    // The go client is still waiting alone (it is its app's one waiting client): another is over quota.
    const over = await socket(`?key=${GO_KEY}`);
    over.send({ type: 'join', pool: 'x' });
    expect(await over.next()).toEqual({ type: 'error', error: 'app_over_quota', message: 'this app already has 1 clients waiting (its maxWaiting in APP_KEYS_FILE)' });
    expect(await over.closed).toBe(1013);
  });

  it('with no keys configured, ?key= is an unknown parameter as before and no key is asked for', async () => {
    server = await startServer();
    const answer = await get('/?key=x');
    expect({ status: answer.status, body: json(answer) }).toEqual({
      status: 400,
      body: { error: 'unknown_parameter', message: 'unknown query parameter "key"; allowed: pool, code, timeout, size, min', field: 'key' },
    });
    expect((await get('/?timeout=0.05')).status).toBe(408);
  });
});
