/**
 * The Redis backend, against a real redis-server the test starts on a free port: the same
 * conformance suite as the in-memory backend.
 */
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisQueue } from '../../src/queue/redis.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { describeQueueConformance, waiter } from './conformance.js';

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

describeQueueConformance('redis', async () => {
  const prefix = `test${++runs}:`;
  const queue = new RedisQueue(client, { prefix, owner: 'test' });
  await queue.ready();
  return {
    queue,
    async cleanup() {
      await queue.close();
      for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 100 })) {
        if (keys.length > 0) await client.del(keys);
      }
    },
  };
});

describe('RedisQueue and processes that die', () => {
  it('never hands out the waiter of a process whose heartbeat is gone, and drops it', async () => {
    const prefix = `dead${++runs}:`;
    const live = new RedisQueue(client, { prefix, owner: 'live' });
    const dying = new RedisQueue(client, { prefix, owner: 'dying' });
    await Promise.all([live.ready(), dying.ready()]);
    const orphan = { ...waiter('pool:p', 'A'), owner: 'dying' };
    const request = { byCode: false, mayWait: true, maxPerKey: 0, codeTtlMs: 1000 };
    expect(await dying.join({ ...request, waiter: orphan })).toEqual({ kind: 'queued' });
    await dying.close(); // as its heartbeat running out would
    const arrival = { ...waiter('pool:p', 'B'), owner: 'live' };
    expect(await live.join({ ...request, waiter: arrival })).toEqual({ kind: 'queued' });
    expect(await client.lRange(`${prefix}{pool:p}:q`, 0, -1)).toEqual([arrival.id]);
    expect(await client.hGetAll(`${prefix}limits`)).toEqual({ k: '1' });
    await live.close();
  });
});
