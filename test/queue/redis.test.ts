/**
 * The Redis backend, against real redis-servers the test starts on free ports: the conformance
 * suite of the in-memory backend, on one Redis and on a three-master Redis Cluster; and what only a
 * shared backend has to do (forget the waiters of a process that died, within a bounded time).
 */
import { createClient, createCluster } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisQueue } from '../../src/queue/redis.js';
import type { JoinRequest } from '../../src/queue/seam.js';
import { keysOn, startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '../helpers/redis.js';
import { describeQueueConformance, waiter } from './conformance.js';

let redis: RedisServer;
let client: ReturnType<typeof createClient>;
let cluster: RedisCluster;
let clusterClient: ReturnType<typeof createCluster>;
let runs = 0;

beforeAll(async () => {
  [redis, cluster] = await Promise.all([startRedis(), startRedisCluster()]);
  client = createClient({ url: redis.url });
  clusterClient = createCluster({ rootNodes: [{ url: cluster.url }] });
  await Promise.all([client.connect(), clusterClient.connect()]);
}, 30_000);
afterAll(async () => {
  await Promise.all([client.close(), clusterClient.close()]);
  await Promise.all([redis.stop(), cluster.stop()]);
});

/** Every key under the prefix on the one Redis. */
const keysUnder = (prefix: string): Promise<string[]> => keysOn([redis.url], prefix);

/**
 * Every key under the prefix on every master of the cluster, through the cluster client's own
 * connections (a connection of its own to each master for every run made the conformance suite's
 * 150 random sequences take 20 s).
 */
async function clusterKeysUnder(prefix: string): Promise<string[]> {
  const found: string[] = [];
  for (const master of clusterClient.masters) {
    const node = await clusterClient.nodeClient(master);
    for await (const keys of node.scanIterator({ MATCH: `${prefix}*`, COUNT: 100 })) found.push(...keys);
  }
  return found;
}

describeQueueConformance('redis', () => {
  const prefix = `test${++runs}:`;
  const queue = new RedisQueue(client, { prefix });
  return Promise.resolve({
    queue,
    async cleanup() {
      await queue.close();
      const keys = await keysUnder(prefix);
      if (keys.length > 0) await client.del(keys);
    },
  });
});

describeQueueConformance('redis cluster (three masters)', () => {
  const prefix = `cluster${++runs}:`;
  const queue = new RedisQueue(clusterClient, { prefix });
  return Promise.resolve({
    queue,
    async cleanup() {
      await queue.close();
      await Promise.all((await clusterKeysUnder(prefix)).map((key) => clusterClient.del(key)));
    },
  });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('RedisQueue and processes that die', () => {
  const request = (w: ReturnType<typeof waiter>, overrides: Partial<JoinRequest> = {}): JoinRequest => ({
    waiter: w,
    byCode: false,
    mayWait: true,
    maxPerKey: 1,
    codeTtlMs: 1000,
    waitMs: 200,
    ...overrides,
  });

  it('drops a waiter nobody took out once past its deadline and grace, and frees its address', async () => {
    const prefix = `dead${++runs}:`;
    const queue = new RedisQueue(client, { prefix, graceMs: 100 });
    const orphan = { ...waiter('pool:p', 'A', 'ip1'), owner: 'died' };
    expect(await queue.join(request(orphan))).toEqual({ kind: 'queued' });
    // Its address may have one waiter: this one counts until it lapses.
    expect(await queue.join(request(waiter('pool:other', 'B', 'ip1')))).toEqual({ kind: 'refused', refusal: 'ip_limit' });
    await sleep(350); // past its deadline (200 ms) and the grace (100 ms)
    const arrival = waiter('pool:p', 'C', 'ip1');
    expect(await queue.join(request(arrival))).toEqual({ kind: 'queued' }); // not handed the orphan, and under the limit again
    expect(await client.lRange(`${prefix}{pool:p}:q`, 0, -1)).toEqual([arrival.id]);
    expect(await client.zRange(`${prefix}limit:{ip1}`, 0, -1)).toEqual([arrival.id]);
  });

  it('lets every key of a room nobody joins again expire on its own', async () => {
    const prefix = `expire${++runs}:`;
    const queue = new RedisQueue(client, { prefix, graceMs: 100 });
    const [a, b] = [waiter('code:x', 'A', 'ip1'), waiter('pool:q', 'B', 'ip2')];
    expect(await queue.join(request(a, { byCode: true, codeTtlMs: 150 }))).toEqual({ kind: 'queued' });
    expect(await queue.join(request(b))).toEqual({ kind: 'queued' });
    const c = waiter('code:x', 'C', 'ip3');
    expect(await queue.join(request(c, { byCode: true, codeTtlMs: 150 }))).toEqual({ kind: 'claimed', peer: a });
    // The claimer died here: the claim is never confirmed nor aborted.
    expect(await keysUnder(prefix)).toEqual(
      [`${prefix}{code:x}:claims`, `${prefix}{code:x}:used`, `${prefix}{pool:q}:q`, `${prefix}{pool:q}:w`, `${prefix}limit:{ip2}`].sort(),
    );
    const ttl = await client.pTTL(`${prefix}{pool:q}:q`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(300); // its wait (200 ms) and the grace (100 ms)
    await sleep(400);
    // Claims are kept longer (a minute): a claim outlives any confirmation, then expires too.
    expect(await keysUnder(prefix)).toEqual([`${prefix}{code:x}:claims`]);
    const claimsTtl = await client.pTTL(`${prefix}{code:x}:claims`);
    expect(claimsTtl).toBeGreaterThan(50_000);
    expect(claimsTtl).toBeLessThanOrEqual(60_000);
  });

  it('keeps all keys of a room in one hash slot of the cluster', async () => {
    const prefix = `slots${++runs}:`;
    const queue = new RedisQueue(clusterClient, { prefix });
    for (const room of ['pool:chess', 'code:a1b2c3', 'pool:}odd{']) {
      const options = { byCode: room.startsWith('code:'), maxPerKey: 0, waitMs: 60_000 };
      const [a, b] = [waiter(room, 'A', 'ip1'), waiter(room, 'B', 'ip2')];
      expect(await queue.join(request(a, options))).toEqual({ kind: 'queued' });
      expect(await queue.join(request(waiter(room, 'A', 'ip1'), options))).toEqual(
        options.byCode ? { kind: 'refused', refusal: 'code_taken' } : { kind: 'queued' },
      );
      expect(await queue.join(request(b, options))).toEqual({ kind: 'claimed', peer: a });
      const keys = await clusterKeysUnder(`${prefix}{${room}}`);
      expect(keys.length).toBeGreaterThanOrEqual(2);
      const slots = new Set(await Promise.all(keys.map((key) => clusterClient.clusterKeySlot(key))));
      expect(slots.size).toBe(1);
    }
    // The three masters share the rooms: not every room is on one node.
    const rooms = Array.from({ length: 30 }, (_, i) => `pool:r${i}`);
    const slots = await Promise.all(rooms.map((room) => clusterClient.clusterKeySlot(`${prefix}{${room}}:q`)));
    const owners = new Set(slots.map((slot) => clusterClient.getSlotRandomNode(slot).port));
    expect(owners.size).toBe(3);
  });
});
