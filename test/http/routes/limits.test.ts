import { Agent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { ask, eventually, json, startServer, TestClient, type TestServer } from '../../helpers/server.js';

let server: TestServer | undefined;
const clients: TestClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  expect(server?.warnings()).toEqual([]);
  await server?.close();
  server = undefined;
});

async function setUp(env: Record<string, string>) {
  const s = await startServer(env);
  server = s;
  const get = (path: string) => {
    const c = new TestClient(s.origin, s.cert);
    clients.push(c);
    return ask(c.client, s.origin, path, { headers: { accept: 'application/json' } });
  };
  return { s, get };
}

describe('MAX_WAITING_PER_IP', () => {
  it('refuses the next waiter from the same IP with 429 and lets a pairing request through', async () => {
    const { s, get } = await setUp({ MAX_WAITING_PER_IP: '2' });
    const one = get('/?pool=a');
    const two = get('/?pool=b');
    await eventually(() => s.app.lobby.waiting === 2);

    const refused = await get('/?pool=c');
    expect(refused.status).toBe(429);
    expect(refused.headers['retry-after']).toBe('1');
    expect(json(refused)).toEqual({
      error: 'too_many_waiting_from_ip',
      message: 'this address already has 2 requests waiting (MAX_WAITING_PER_IP)',
    });
    expect(s.app.lobby.waiting).toBe(2);

    // A request that finds a partner at once never waits, so the limit does not apply to it.
    const pairs = await get('/?pool=a');
    expect(pairs.status).toBe(200);
    expect(json(await one).matchId).toBe(json(pairs).matchId);
    expect(s.queue.waitingFrom('127.0.0.1')).toBe(1);

    // The slot freed by the pairing can be used again.
    const three = get('/?pool=c');
    await eventually(() => s.app.lobby.waiting === 2);
    expect((await get('/?pool=b')).status).toBe(200);
    expect((await get('/?pool=c')).status).toBe(200);
    expect((await two).status).toBe(200);
    expect((await three).status).toBe(200);
    expect(s.queue.waitingFrom('127.0.0.1')).toBe(0);
  });

  it('is off at 0', async () => {
    const { s, get } = await setUp({ MAX_WAITING_PER_IP: '0' });
    const waiting = Array.from({ length: 70 }, (_, i) => get(`/?pool=p${i}&timeout=0.5`));
    await eventually(() => s.app.lobby.waiting === 70);
    expect((await Promise.all(waiting)).map((a) => a.status)).toEqual(Array<number>(70).fill(408));
  });
});

describe('MAX_WAITING', () => {
  it('refuses new waiters with 503 once full, while partners still get in', async () => {
    const { s, get } = await setUp({ MAX_WAITING: '2' });
    const one = get('/?pool=a');
    const two = get('/?pool=b');
    await eventually(() => s.app.lobby.waiting === 2);
    const refused = await get('/?pool=c');
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect(json(refused)).toEqual({
      error: 'server_full',
      message: 'server has 2 requests waiting (MAX_WAITING); try again shortly',
    });
    expect((await get('/?pool=a')).status).toBe(200);
    expect((await get('/?pool=b')).status).toBe(200);
    expect([(await one).status, (await two).status]).toEqual([200, 200]);
    expect(s.app.lobby.waiting).toBe(0);
  });
});

describe('a flood at the caps', () => {
  it('refuses everyone past MAX_WAITING, holds no more than the cap, and still serves those waiting', async () => {
    const { s } = await setUp({ MAX_WAITING: '50' });
    const agent = new Agent({ connect: { ca: s.cert }, connections: 100 });
    try {
      const statuses: (number | undefined)[] = Array<number | undefined>(1000).fill(undefined);
      const asks = Array.from({ length: 1000 }, (_, i) =>
        ask(agent, s.origin, `/?pool=cap-${i}`, { headers: { accept: 'application/json' } }).then((answer) => {
          statuses[i] = answer.status;
          return answer;
        }),
      );
      await eventually(() => statuses.filter((x) => x !== undefined).length === 950, 20_000, '950 answers');
      expect(statuses.filter((x) => x === 503)).toHaveLength(950);
      expect(s.queue.footprint).toEqual({ waiting: 50, rooms: 50, keys: 1, usedCodes: 0 });

      // The 50 that got in are unaffected: a partner for each pairs with it.
      const waitingIndexes = statuses.flatMap((x, i) => (x === undefined ? [i] : []));
      expect(waitingIndexes).toHaveLength(50);
      const partners = await Promise.all(
        waitingIndexes.map((i) => ask(agent, s.origin, `/?pool=cap-${i}`, { headers: { accept: 'application/json' } })),
      );
      expect(partners.map((a) => a.status)).toEqual(Array<number>(50).fill(200));
      const waiters = await Promise.all(waitingIndexes.map((i) => asks[i] ?? Promise.reject(new Error(`no request ${i}`))));
      expect(waiters.map((a) => a.status)).toEqual(Array<number>(50).fill(200));
      expect(s.queue.footprint).toEqual({ waiting: 0, rooms: 0, keys: 0, usedCodes: 0 });
    } finally {
      await agent.destroy();
    }
  });
});
