import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ask, eventually, json, startServer, TestClient, type TestServer } from '../../helpers/server.js';

const JSON_ACCEPT = { accept: 'application/json' };
const CODE_RULE = 'code must match ^[A-Za-z0-9._~-]{1,64}$';
const USED = {
  error: 'code_used',
  message: 'this code has already been used by a pair or a group; choose a new one (codes stay used for CODE_TTL_MS)',
  field: 'code',
};

let server: TestServer;
const clients: TestClient[] = [];
const client = (h2 = false): TestClient => {
  const c = new TestClient(server.origin, server.cert, { h2 });
  clients.push(c);
  return c;
};
const get = (c: TestClient, path: string, headers: Record<string, string> = JSON_ACCEPT) =>
  ask(c.client, server.origin, path, { headers });
const post = (c: TestClient, body: unknown) =>
  ask(c.client, server.origin, '/', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
const waitFor = (n: number) => eventually(() => server.app.lobby.waiting === n, 2000, `${n} waiting`);

beforeAll(async () => {
  server = await startServer({ CODE_TTL_MS: '600000' });
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  expect(server.app.lobby.waiting).toBe(0);
  expect(server.warnings()).toEqual([]);
});
afterAll(() => server.close());

describe('rendezvous codes', () => {
  it('pairs the two clients with one code, says so, and refuses the code to a third at once', async () => {
    const [a, b, c] = [client(), client(), client()];
    const first = get(a, '/?code=purple-otter-42');
    await waitFor(1);
    const answerB = json(await get(b, '/?code=purple-otter-42'));
    const answerA = json(await first);
    expect(answerA).toMatchObject({ code: 'purple-otter-42', peer: `127.0.0.1:${b.localPort}`, initiator: true });
    expect(answerB).toMatchObject({ code: 'purple-otter-42', peer: `127.0.0.1:${a.localPort}`, initiator: false });
    expect(answerA).not.toHaveProperty('pool');
    expect(answerB.secret).toBe(answerA.secret);

    const third = await get(c, '/?code=purple-otter-42');
    expect({ status: third.status, body: json(third) }).toEqual({ status: 409, body: USED });
    const thirdText = await get(c, '/?code=purple-otter-42', {});
    expect(thirdText.status).toBe(409);
    expect(server.app.lobby.waiting).toBe(0);
  });

  it('pairs by code in a POST body, with meta and a secret for both', async () => {
    const [a, b] = [client(), client()];
    const first = post(a, { code: 'k-post', meta: { udp: '127.0.0.1:4000' } });
    await waitFor(1);
    const answerB = json(await post(b, { code: 'k-post', timeout: 5 }));
    const answerA = json(await first);
    expect(answerA).toMatchObject({ code: 'k-post', peerMeta: null });
    expect(answerB).toMatchObject({ code: 'k-post', peerMeta: { udp: '127.0.0.1:4000' } });
    expect(answerA.secret).toBe(answerB.secret);
    expect((await post(client(), { code: 'k-post' })).status).toBe(409);
  });

  it('keeps codes and pools apart: a code never meets a pool of the same name', async () => {
    const [a, b] = [client(), client()];
    const byCode = get(a, '/?code=same&timeout=0.3');
    const byPool = get(b, '/?pool=same&timeout=0.3');
    const answers = await Promise.all([byCode, byPool]);
    expect(answers.map((x) => [x.status, json(x).error])).toEqual([
      [408, 'timeout'],
      [408, 'timeout'],
    ]);
  });

  it('lets a client whose wait timed out ask again with the same code, and meet its partner', async () => {
    const [a, b] = [client(), client()];
    expect((await get(a, '/?code=retry-me&timeout=0.1')).status).toBe(408);
    const again = get(a, '/?code=retry-me');
    await waitFor(1);
    const answerB = json(await get(b, '/?code=retry-me'));
    expect(answerB.peer).toBe(`127.0.0.1:${a.localPort}`);
    expect(json(await again).peer).toBe(`127.0.0.1:${b.localPort}`);
  });

  it('refuses a code that a stream of the same HTTP/2 connection is already waiting with', async () => {
    const own = client(true);
    const first = get(own, '/?code=h2-code');
    await waitFor(1);
    const second = await get(own, '/?code=h2-code');
    expect({ status: second.status, body: json(second) }).toEqual({
      status: 409,
      body: {
        error: 'code_taken',
        message: 'this connection is already waiting with this code; the partner must come from another connection',
        field: 'code',
      },
    });
    expect(server.app.lobby.waiting).toBe(1);
    const partner = json(await get(client(true), '/?code=h2-code'));
    expect(partner.code).toBe('h2-code');
    expect((await first).status).toBe(200);
  });

  it('never logs a code or a secret', async () => {
    const [a, b] = [client(), client()];
    const first = get(a, '/?code=do-not-log-me');
    await waitFor(1);
    const { secret } = json(await get(b, '/?code=do-not-log-me'));
    await first;
    const pooled = get(a, '/?pool=logged-pool');
    await waitFor(1);
    const pooledSecret = json(await get(b, '/?pool=logged-pool')).secret;
    await pooled;
    await eventually(() => server.logs.filter((l) => l.msg === 'paired').length >= 2, 2000, 'pairing lines');
    const all = JSON.stringify(server.logs);
    expect(all).not.toContain('do-not-log-me');
    expect(all).not.toContain(String(secret));
    expect(all).not.toContain(String(pooledSecret));
    const lines = server.logs.filter((l) => l.msg === 'paired').slice(-2);
    expect(lines.map((l) => [l.room, l.pool])).toEqual([
      ['code', undefined],
      [undefined, 'logged-pool'],
    ]);
  });
});

describe('bad codes', () => {
  it.each([
    ['/?code=', 'empty'],
    ['/?code=a%20b', 'a space'],
    [`/?code=${'c'.repeat(65)}`, '65 characters'],
    ['/?code=a&code=b', 'repeated'],
  ])('refuses code %s (%s)', async (path) => {
    const answer = await get(client(), path);
    expect({ status: answer.status, body: json(answer) }).toEqual({
      status: 400,
      body: { error: 'invalid_code', message: CODE_RULE, field: 'code' },
    });
  });

  it('refuses a pool and a code together, in the query and in a body', async () => {
    const body = { error: 'pool_and_code', message: 'give either pool or code, not both', field: 'code' };
    const c = client();
    const fromQuery = await get(c, '/?pool=p&code=c');
    const fromBody = await post(c, { pool: 'p', code: 'c' });
    expect([fromQuery.status, json(fromQuery)]).toEqual([400, body]);
    expect([fromBody.status, json(fromBody)]).toEqual([400, body]);
  });

  it('refuses a code that is not a string in a body', async () => {
    const answer = await post(client(), { code: 42 });
    expect([answer.status, json(answer)]).toEqual([400, { error: 'invalid_code', message: CODE_RULE, field: 'code' }]);
  });
});
