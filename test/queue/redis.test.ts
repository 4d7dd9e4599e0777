/**
 * The Redis backend, against real redis-servers the test starts on free ports: the conformance
 * suite of the in-memory backend, on one Redis and on a three-master Redis Cluster; and what only a
 * shared backend has to do (forget the waiters of a process that died, within a bounded time).
 */
import { createClient, createCluster } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisQueue } from '../../src/queue/redis.js';
import { BackendUnavailableError, type JoinRequest } from '../../src/queue/seam.js';
import { keysOn, startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '../helpers/redis.js';
import { describeQueueConformance, waiter, type QueueUnderTest } from './conformance.js';
import { describeGroupConformance } from './group-conformance.js';

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

/** A queue on the one Redis, or on the cluster, under a prefix of its own; cleanup deletes its keys. */
function onRedis(): Promise<QueueUnderTest> {
  const prefix = `groups${++runs}:`;
  const queue = new RedisQueue(client, { prefix });
  return Promise.resolve({
    queue,
    async cleanup() {
      const keys = await keysUnder(prefix);
      if (keys.length > 0) await client.del(keys);
    },
  });
}

function onCluster(): Promise<QueueUnderTest> {
  const prefix = `cgroups${++runs}:`;
  const queue = new RedisQueue(clusterClient, { prefix });
  return Promise.resolve({
    queue,
    async cleanup() {
      await Promise.all((await clusterKeysUnder(prefix)).map((key) => clusterClient.del(key)));
    },
  });
}

describeGroupConformance('redis', onRedis);
describeGroupConformance('redis cluster (three masters)', onCluster);

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
    // The claimer died here: the claim is never confirmed nor aborted. (The used code is counted beside the pairing.)
    for (let tries = 0; tries < 50 && (await client.exists(`${prefix}codes`)) === 0; tries++) await sleep(10);
    expect(await keysUnder(prefix)).toEqual(
      [`${prefix}codes`, `${prefix}{code:x}:claims`, `${prefix}{code:x}:used`, `${prefix}{pool:q}:q`, `${prefix}{pool:q}:w`, `${prefix}limit:{ip2}`].sort(),
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

  it("never decodes another client's data in a room's step: a waiter with meta nested past Redis's JSON depth is claimed like any other", async () => {
    const prefix = `deep${++runs}:`;
    const queue = new RedisQueue(client, { prefix });
    // 1200 levels of arrays: past the 1000 Redis's JSON decoder allows, and about 2.4 KB.
    let nested: unknown = 1;
    for (let i = 0; i < 1200; i++) nested = [nested];
    const deep = { ...waiter('pool:deep', 'A', 'ip1'), meta: { nested } };
    expect(await queue.join(request(deep, { waitMs: 60_000 }))).toEqual({ kind: 'queued' });
    const other = waiter('pool:deep', 'B', 'ip2');
    expect(await queue.join(request(other, { waitMs: 60_000 }))).toEqual({ kind: 'claimed', peer: deep });
    // Put back (its owner did not answer) and claimed again: the abort script does not decode it either.
    expect(await queue.abort(deep, true)).toBe('aborted');
    expect(await queue.join(request(waiter('pool:deep', 'C', 'ip3'), { waitMs: 60_000 }))).toEqual({ kind: 'claimed', peer: deep });
  });
});

describe('RedisQueue: what groups leave in Redis', () => {
  it('keeps a committed group’s record a minute at most, and none of a released group once every member is decided', async () => {
    const prefix = `grecords${++runs}:`;
    const queue = new RedisQueue(client, { prefix });
    const ask = (w: ReturnType<typeof waiter>, groupId: string) =>
      queue.gather({ waiter: w, byCode: false, mayWait: true, maxPerKey: 0, codeTtlMs: 1000, waitMs: 60_000, size: 3, min: 3, fillWaitMs: 60_000, groupId });
    const [a, b] = [waiter('pool:r#3', 'A', 'ip1'), waiter('pool:r#3', 'B', 'ip2')];
    await ask(a, 'unused-1');
    await ask(b, 'unused-2');
    const first = await ask(waiter('pool:r#3', 'C', 'ip3'), 'one');
    if (first.kind !== 'claimed') throw new Error('not claimed');
    expect(await queue.commitGroup(first.group)).toBe(true);
    const record = `${prefix}{pool:r#3}:g:one`;
    expect(await client.get(record)).toBe('{"state":"committed"}');
    const ttl = await client.pTTL(record);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    const [d, e] = [waiter('pool:r#3', 'D', 'ip1'), waiter('pool:r#3', 'E', 'ip2')];
    await ask(d, 'unused-3');
    await ask(e, 'unused-4');
    const second = await ask(waiter('pool:r#3', 'F', 'ip3'), 'two');
    if (second.kind !== 'claimed') throw new Error('not claimed');
    expect(await client.exists(`${prefix}{pool:r#3}:g:two`)).toBe(1);
    expect(await queue.release(second.group, [d], [])).toBe('aborted');
    expect(await client.exists(`${prefix}{pool:r#3}:g:two`)).toBe(1); // e is not decided yet
    expect(await queue.release(second.group, [], [e])).toBe('aborted');
    expect(await client.exists(`${prefix}{pool:r#3}:g:two`)).toBe(0);
    expect(await client.lRange(`${prefix}{pool:r#3}:q`, 0, -1)).toEqual([d.id]);
  });
});

describe('RedisQueue: a script that fails', () => {
  it('is an error of its own, not Redis being unreachable (which is answered 503 and not logged)', async () => {
    const prefix = `broken${++runs}:`;
    const queue = new RedisQueue(client, { prefix });
    // An entry no version of pairup writes: the join script fails on it.
    await client.rPush(`${prefix}{pool:b}:q`, 'x');
    await client.hSet(`${prefix}{pool:b}:w`, 'x', 'not a waiter');
    const failed = await queue
      .join({ waiter: waiter('pool:b', 'A', 'ip1'), byCode: false, mayWait: true, maxPerKey: 0, codeTtlMs: 1000, waitMs: 1000 })
      .then(() => undefined, (error: unknown) => error);
    expect(failed).toBeInstanceOf(Error);
    expect(failed).not.toBeInstanceOf(BackendUnavailableError);
    expect((failed as Error).message).toMatch(/^Redis script failed: ERR user_script:\d+: /);
  });
});

describe('RedisQueue: what used codes can make Redis hold', () => {
  it('remembers at most maxRememberedCodes used codes across the whole prefix, forgetting the oldest first', async () => {
    const prefix = `codes${++runs}:`;
    const queue = new RedisQueue(client, { prefix, maxRememberedCodes: 3 });
    const join = (room: string, connection: string) =>
      queue.join({ waiter: waiter(room, connection, connection), byCode: true, mayWait: true, maxPerKey: 0, codeTtlMs: 60_000, waitMs: 60_000 });
    for (let i = 1; i <= 5; i++) {
      const first = waiter(`code:c${i}`, 'A', 'A');
      expect(await queue.join({ waiter: first, byCode: true, mayWait: true, maxPerKey: 0, codeTtlMs: 60_000, waitMs: 60_000 })).toEqual({ kind: 'queued' });
      expect(await join(`code:c${i}`, 'B')).toEqual({ kind: 'claimed', peer: first });
      await queue.confirm(first);
    }
    // Forgetting happens beside the pairing, not on its path: wait until it has.
    for (let tries = 0; tries < 50 && (await client.exists(`${prefix}{code:c2}:used`)) === 1; tries++) await sleep(20);
    expect(await client.zRange(`${prefix}codes`, 0, -1)).toEqual(['code:c3', 'code:c4', 'code:c5']);
    expect((await keysUnder(`${prefix}{`)).filter((key) => key.endsWith(':used')).sort()).toEqual(
      [`${prefix}{code:c3}:used`, `${prefix}{code:c4}:used`, `${prefix}{code:c5}:used`],
    );
    // The two oldest may pair again; the three newest are still used.
    expect(await join('code:c1', 'C')).toEqual({ kind: 'queued' });
    expect(await join('code:c5', 'C')).toEqual({ kind: 'refused', refusal: 'code_used' });
    const ttl = await client.pTTL(`${prefix}codes`);
    expect(ttl).toBeGreaterThan(59_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });
});
