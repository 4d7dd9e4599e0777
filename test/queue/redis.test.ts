/**
 * The Redis backend, against a real redis-server the test starts on a free port: the same
 * conformance suite as the in-memory backend.
 */
import { createClient } from 'redis';
import { afterAll, beforeAll } from 'vitest';
import { RedisQueue } from '../../src/queue/redis.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { describeQueueConformance } from './conformance.js';

let redis: RedisServer;
let client: ReturnType<typeof createClient>;
let runs = 0;

beforeAll(async () => {
  redis = await startRedis();
  client = createClient({ url: redis.url });
  await client.connect();
});
afterAll(async () => {
  await client.quit();
  await redis.stop();
});

describeQueueConformance('redis', () => {
  const prefix = `test${++runs}:`;
  return Promise.resolve({
    queue: new RedisQueue(client, { prefix }),
    async cleanup() {
      for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 100 })) {
        if (keys.length > 0) await client.del(keys);
      }
    },
  });
});
