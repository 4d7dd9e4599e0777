/**
 * An app's pairings per minute are counted across processes through Redis: two servers sharing a
 * real redis-server, a pairing made on one, and the other refuses the app's next client.
 */
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppKeys, hashKey, parseAppKeys } from '../../../src/net/app-keys.js';
import { RedisCounter } from '../../../src/queue/redis-counter.js';
import { startRedis, type RedisServer } from '../../helpers/redis.js';
import { openSocket } from '../../helpers/ws-client.js';
import { ask, eventually, json, startServer, TestClient, type TestServer } from '../../helpers/server.js';

const KEY = 'pairup_shared-counter-test-key-dddddddddddddddddddddddd';
const PREFIX = 'pairup-access-test:';

let redis: RedisServer;
const redisClients: ReturnType<typeof createClient>[] = [];
const servers: TestServer[] = [];
const clients: TestClient[] = [];

async function serverOnRedis(): Promise<TestServer> {
  const redisClient = createClient({ url: redis.url });
  await redisClient.connect();
  redisClients.push(redisClient);
  const appKeys = new AppKeys(parseAppKeys(JSON.stringify({ keys: [{ app: 'quiz', sha256: hashKey(KEY), pairingsPerMinute: 1 }] })));
  const server = await startServer({}, '127.0.0.1', { appKeys, counter: new RedisCounter(redisClient, PREFIX) });
  servers.push(server);
  return server;
}

function get(server: TestServer, path: string) {
  const client = new TestClient(server.origin, server.cert);
  clients.push(client);
  return ask(client.client, server.origin, path, { headers: { accept: 'application/json', authorization: `Bearer ${KEY}` } });
}

beforeAll(async () => {
  redis = await startRedis();
}, 30_000);
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.close()));
  await Promise.all(redisClients.map((c) => c.close()));
  await redis.stop();
});

describe('pairingsPerMinute across processes (Redis)', () => {
  it('counts a pairing made on one server against the app on the other, in a key that lapses', async () => {
    const [a, b] = [await serverOnRedis(), await serverOnRedis()];
    const first = get(a, '/?pool=p');
    await eventually(() => a.app.lobby.waiting === 1, 2000, 'one waiting');
    const second = await get(a, '/?pool=p');
    expect([second.status, (await first).status]).toEqual([200, 200]);
    const [client] = redisClients;
    if (client === undefined) throw new Error('no Redis client');
    // The arrival's server counts the pairing after answering: wait for the count to land.
    let keys: string[] = [];
    for (let i = 0; i < 50 && keys.length === 0; i++) {
      keys = await client.keys(`${PREFIX}*`);
      if (keys.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(/^pairup-access-test:\{count:quiz\}:\d+$/);
    expect(await client.get(keys[0] ?? '')).toBe('1');
    const ttl = await client.pTTL(keys[0] ?? '');
    expect(ttl > 60_000 && ttl <= 120_000).toBe(true);
    const refused = await get(b, '/?pool=p');
    expect({ status: refused.status, body: json(refused) }).toEqual({
      status: 429,
      body: { error: 'too_many_pairings', message: 'this app has made its 1 pairings of this minute (its pairingsPerMinute in APP_KEYS_FILE)' },
    });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(60);
    // A WebSocket join is held to the same count (read from Redis before it joins): the error frame, then 1013.
    const socket = await openSocket(b.origin, b.cert, { query: `?key=${KEY}` });
    try {
      socket.send({ type: 'join', pool: 'p' });
      expect(await socket.next()).toEqual({
        type: 'error',
        error: 'too_many_pairings',
        message: 'this app has made its 1 pairings of this minute (its pairingsPerMinute in APP_KEYS_FILE)',
      });
      expect(await socket.closed).toBe(1013);
      expect(b.app.lobby.waiting).toBe(0);
    } finally {
      socket.socket.terminate();
    }
  }, 30_000);
});
