/**
 * Groups across several pairup processes sharing one Redis, and a Redis Cluster (servers the test
 * starts): a flood of group requests with aborts leaves no member in two groups, no group that
 * differs between its members, nobody answered with a member that was not an aborting client, and
 * nothing waiting; a process killed with -9 never has its waiters in anyone's group; a group over the
 * WebSocket relays between members of three processes and hears of each member that leaves, its
 * process killed with -9 included.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnServer, type ServerProcess } from './helpers/process.js';
import { keysOn, startRedis, startRedisCluster, type RedisCluster, type RedisServer } from './helpers/redis.js';
import { ask, testCertificate, TestClient } from './helpers/server.js';
import { openSocket, type TestSocket } from './helpers/ws-client.js';

let redis: RedisServer;
let redisCluster: RedisCluster;
let dir: string;
let cert: string;
const processes: ServerProcess[] = [];
let prefixes = 0;

beforeAll(async () => {
  [redis, redisCluster] = await Promise.all([startRedis(), startRedisCluster()]);
  dir = await mkdtemp(join(tmpdir(), 'pairup-groups-'));
  const pem = await testCertificate();
  cert = pem.cert;
  await writeFile(join(dir, 'cert.pem'), pem.cert);
  await writeFile(join(dir, 'key.pem'), pem.key);
}, 30_000);
afterAll(async () => {
  for (const proc of processes) if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
  await Promise.all([redis.stop(), redisCluster.stop()]);
  await rm(dir, { recursive: true, force: true });
});

async function servers(n: number, prefix: string, on: 'redis' | 'cluster'): Promise<{ procs: ServerProcess[]; origins: string[] }> {
  const shared: Record<string, string> = on === 'redis' ? { REDIS_URL: redis.url } : { REDIS_URL: redisCluster.url, REDIS_CLUSTER: 'on' };
  const procs = Array.from({ length: n }, () =>
    spawnServer(
      { HOST: '127.0.0.1', PORT: '0', STUN_PORT: '0', TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem', MAX_WAITING_PER_IP: '500', REDIS_PREFIX: prefix, FILL_WAIT_MS: '300', ...shared },
      dir,
    ),
  );
  processes.push(...procs);
  const ports = await Promise.all(procs.map((p) => p.port));
  return { procs, origins: ports.map((port) => `https://127.0.0.1:${port}`) };
}

interface GroupAnswer {
  matchId: string;
  secret: string;
  size: number;
  self: { index: number; address: string };
  members: { index: number; address: string; meta?: { id: number } | null }[];
}

interface Seen {
  /** Who the client is: its meta says it to the others (an address can be two clients' at once, on connections to two processes). */
  readonly id: number;
  readonly process: number;
  readonly room: string;
  aborted: boolean;
  status?: number;
  body?: string;
  group?: GroupAnswer;
}

/** The whole group as one member tells it: every address, by index. */
function wholeGroup(answer: GroupAnswer): string[] {
  const all: string[] = [];
  all[answer.self.index] = answer.self.address;
  for (const member of answer.members) all[member.index] = member.address;
  return all;
}

/** The whole group as member `id` tells it: every member's id, by index. */
function groupIds(answer: GroupAnswer, id: number): number[] {
  const all: number[] = [];
  all[answer.self.index] = id;
  for (const member of answer.members) all[member.index] = member.meta?.id ?? -1;
  return all;
}

const keysUnder = (prefix: string, on: 'redis' | 'cluster'): Promise<string[]> => keysOn(on === 'redis' ? [redis.url] : redisCluster.nodes.map((n) => n.url), prefix);

describe('groups across processes on one Redis, and on a Redis Cluster', () => {
  it.each(['redis', 'cluster'] as const)('gathers groups of 3 and of 4 (min 3) through a flood with aborts: one group each, all or nothing, no ghost (%s)', async (on) => {
    const prefix = `groups${++prefixes}:`;
    const { procs, origins } = await servers(3, prefix, on);
    const seen: Seen[] = [];
    const clients: TestClient[] = [];
    const runs: Promise<void>[] = [];
    const CLIENTS = 120;
    const rooms = [
      { pool: 'trio', size: 3 },
      { pool: 'quad', size: 4, min: 3 },
    ];
    for (let i = 0; i < CLIENTS; i++) {
      const process = i % 3;
      const origin = origins[process] as string;
      const client = new TestClient(origin, cert, { h2: i % 2 === 1 });
      clients.push(client);
      const room = rooms[Math.floor(i / 3) % 2] as (typeof rooms)[number];
      const controller = new AbortController();
      if (i % 4 === 3) setTimeout(() => controller.abort(), 20 + ((i * 37) % 400));
      runs.push(
        (async () => {
          await new Promise((resolve) => setTimeout(resolve, (i * 7) % 300));
          const record: Seen = { id: i, process, room: room.pool, aborted: false };
          seen.push(record);
          try {
            const answer = await ask(client.client, origin, '/', {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ ...room, timeout: 3, meta: { id: i } }),
              signal: controller.signal,
            });
            record.status = answer.status;
            if (answer.status !== 200 && answer.status !== 408) record.body = answer.text;
            if (answer.status === 200) record.group = JSON.parse(answer.text) as GroupAnswer;
          } catch {
            record.aborted = true;
          }
        })(),
      );
    }
    await Promise.all(runs);
    await Promise.all(clients.map((c) => c.close()));

    expect(seen.filter((s) => !s.aborted && s.status !== 200 && s.status !== 408)).toEqual([]);
    const aborted = new Set(seen.filter((s) => s.aborted).map((s) => s.id));
    const byMatch = new Map<string, Seen[]>();
    for (const s of seen) if (s.group !== undefined) byMatch.set(s.group.matchId, [...(byMatch.get(s.group.matchId) ?? []), s]);
    const inGroups = new Map<number, string>();
    const problems: string[] = [];
    let crossProcess = 0;
    for (const [matchId, sides] of byMatch) {
      const first = sides[0]?.group as GroupAnswer;
      const group = groupIds(first, sides[0]?.id ?? -1);
      const asked = sides[0]?.room === 'trio' ? { size: 3, min: 3 } : { size: 4, min: 3 };
      if (group.length < asked.min || group.length > asked.size || first.size !== group.length) problems.push(`${matchId}: ${group.length} members`);
      for (const side of sides) {
        const answer = side.group as GroupAnswer;
        // Every member tells the same group, itself at its own place, with the one secret.
        if (JSON.stringify(groupIds(answer, side.id)) !== JSON.stringify(group) || answer.secret !== first.secret) problems.push(`${matchId}: members disagree`);
        if (side.room !== sides[0]?.room) problems.push(`${matchId}: rooms disagree`);
      }
      for (const id of group) {
        // Never in two groups; a member not answered with this group is a client that left.
        if (inGroups.has(id)) problems.push(`client ${id} in ${inGroups.get(id) ?? ''} and ${matchId}`);
        inGroups.set(id, matchId);
        if (!sides.some((side) => side.id === id) && !aborted.has(id)) problems.push(`${matchId}: ghost ${id} (${JSON.stringify(seen.find((s) => s.id === id))}) in ${JSON.stringify(sides.map((side) => [side.id, side.process]))}`);
      }
      if (new Set(sides.map((side) => side.process)).size > 1) crossProcess++;
    }
    expect(problems).toEqual([]);
    expect(byMatch.size).toBeGreaterThanOrEqual(10);
    expect(crossProcess).toBeGreaterThanOrEqual(5);

    for (const origin of origins) {
      const health = new TestClient(origin, cert);
      expect(JSON.parse((await ask(health.client, origin, '/healthz')).text)).toEqual({ status: 'ok', waiting: 0 });
      await health.close();
    }
    // Nothing waiting in Redis: no waiter, no limit entry (those put back lapse at their deadline and
    // grace); only the shared key and the records of committed groups, each lapsing a minute after it formed.
    const left = async () => (await keysUnder(prefix, on)).filter((key) => !/^[^{]*\{[^}]*\}:g:[0-9a-f-]{36}$/.test(key));
    for (let i = 0; i < 45 && (await left()).length > 1; i++) await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await left()).toEqual([`${prefix}secret-key`]);
    const records = (await keysUnder(prefix, on)).filter((key) => key.includes('}:g:'));
    expect(records.length).toBeLessThanOrEqual(byMatch.size);
    for (const proc of procs) expect(proc.stdout.filter((line) => /"level":(40|50|60)/.test(line))).toEqual([]);
    for (const proc of procs) proc.child.kill('SIGTERM');
    for (const proc of procs) expect(await proc.exit).toEqual({ code: 0, signal: null });
  });

  it('never puts the waiters of a process killed with -9 in a group', async () => {
    const prefix = `groupkill${++prefixes}:`;
    const { procs, origins } = await servers(2, prefix, 'redis');
    const [survivor, victim] = procs as [ServerProcess, ServerProcess];
    const doomed = [new TestClient(origins[1] as string, cert), new TestClient(origins[1] as string, cert)];
    const waiting = doomed.map((c) => ask(c.client, origins[1] as string, '/?pool=doomed&size=4&timeout=20', { headers: { accept: 'application/json' } }).catch(() => undefined));
    const probe = new TestClient(origins[1] as string, cert);
    for (let i = 0; i < 100; i++) {
      const health = JSON.parse((await ask(probe.client, origins[1] as string, '/healthz')).text) as { waiting: number };
      if (health.waiting === 2) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await probe.close();
    victim.child.kill('SIGKILL');
    await victim.exit;
    const deadAddresses = new Set(doomed.map((c) => `127.0.0.1:${c.localPort}`));
    const newcomers = Array.from({ length: 4 }, () => new TestClient(origins[0] as string, cert));
    const answers = await Promise.all(
      newcomers.map(async (c, i) => {
        await new Promise((resolve) => setTimeout(resolve, i * 50));
        return ask(c.client, origins[0] as string, '/?pool=doomed&size=4&timeout=5', { headers: { accept: 'application/json' } });
      }),
    );
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    const groups = answers.map((a) => wholeGroup(JSON.parse(a.text) as GroupAnswer));
    expect(groups.flat().filter((address) => deadAddresses.has(address))).toEqual([]);
    expect(new Set(groups.map((g) => JSON.stringify(g))).size).toBe(1);
    // Each newcomer on a new TLS connection: on a busy machine one may arrive before the one asked 50 ms earlier.
    expect([...(groups[0] ?? [])].sort()).toEqual(newcomers.map((c) => `127.0.0.1:${c.localPort}`).sort());
    await Promise.all([...doomed, ...newcomers].map((c) => c.close()));
    await Promise.all(waiting);
    survivor.child.kill('SIGTERM');
    expect(await survivor.exit).toEqual({ code: 0, signal: null });
  });

  it.each(['redis', 'cluster'] as const)('relays a WebSocket group of four on three processes: every member to every other, and each leaving told to the rest, a process killed with -9 too (%s)', async (on) => {
    const prefix = `wsgroup${++prefixes}:`;
    const { procs, origins } = await servers(3, prefix, on);
    // Members 0 and 3 on the first process, 1 on the second, 2 on the third (which is killed).
    const where = [0, 1, 2, 0];
    const members: TestSocket[] = [];
    for (const [index, process] of where.entries()) {
      const s = await openSocket(origins[process] as string, cert);
      s.send({ type: 'join', code: 'ws-four', size: 4, meta: { index } });
      if (index < 3) expect(await s.next()).toEqual({ type: 'queued' });
      members.push(s);
    }
    const matched = await Promise.all(members.map((s) => s.next()));
    expect(matched.map((m) => [m.type, (m.self as { index: number }).index, (m.members as { meta: { index: number } }[]).map((x) => x.meta.index)])).toEqual([
      ['matched', 0, [1, 2, 3]],
      ['matched', 1, [0, 2, 3]],
      ['matched', 2, [0, 1, 3]],
      ['matched', 3, [0, 1, 2]],
    ]);
    for (const [from, s] of members.entries()) for (const to of [0, 1, 2, 3]) if (to !== from) s.send({ type: 'signal', to, data: `${from}→${to}` });
    for (const [index, s] of members.entries()) {
      const heard = await Promise.all([0, 1, 2].map(() => s.next()));
      // In order per sender; senders interleave as they will.
      expect(heard.map((m) => `${m.type as string} ${m.from as number} ${m.data as string}`).sort()).toEqual(
        [0, 1, 2, 3].filter((from) => from !== index).map((from) => `signal ${from} ${from}→${index}`),
      );
      expect(heard.map((m) => m.to)).toEqual([index, index, index]
      );
    }
    const [m0, m1, , m3] = members as [TestSocket, TestSocket, TestSocket, TestSocket];
    m1.send({ type: 'leave' });
    expect(await m1.closed).toBe(1000);
    for (const s of [m0, members[2] as TestSocket, m3]) expect(await s.next()).toEqual({ type: 'peer_left', member: 1 });
    const victim = procs[2] as ServerProcess;
    victim.child.kill('SIGKILL');
    await victim.exit;
    const started = Date.now();
    // Its process asked after every 2 s: told within two rounds of that.
    expect([await m0.next(6000), await m3.next(6000)]).toEqual([
      { type: 'peer_left', member: 2 },
      { type: 'peer_left', member: 2 },
    ]);
    expect(Date.now() - started).toBeLessThan(4500);
    m0.send({ type: 'signal', to: 3, data: 'two of us' });
    expect(await m3.next()).toEqual({ from: 0, type: 'signal', to: 3, data: 'two of us' });
    m3.socket.close();
    expect(await m0.next()).toEqual({ type: 'peer_left', member: 3 });
    expect(await m0.closed).toBe(4002);
    for (const proc of procs.slice(0, 2)) {
      expect(proc.stdout.filter((line) => /"level":(40|50|60)/.test(line))).toEqual([]);
      proc.child.kill('SIGTERM');
      expect(await proc.exit).toEqual({ code: 0, signal: null });
    }
  });
});
