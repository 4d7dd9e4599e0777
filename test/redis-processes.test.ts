/**
 * Several pairup processes sharing one Redis (a redis-server the test starts): clients of one process
 * are paired with clients of another, a flood with aborts leaves no ghost and no double match, and a
 * process killed with waiters never has them handed out.
 */
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { freePort, spawnServer, type ServerProcess } from './helpers/process.js';
import { keysOn, startRedis, startRedisCluster, type RedisCluster, type RedisServer } from './helpers/redis.js';
import { ask, testCertificate, TestClient } from './helpers/server.js';

let redis: RedisServer;
let redisCluster: RedisCluster;
let dir: string;
let cert: string;
const processes: ServerProcess[] = [];
let prefixes = 0;

beforeAll(async () => {
  [redis, redisCluster] = await Promise.all([startRedis(), startRedisCluster()]);
  dir = await mkdtemp(join(tmpdir(), 'pairup-redis-'));
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

/** `n` pairup processes on one Redis (or the Redis Cluster) and prefix; their origins. */
async function cluster(n: number, prefix: string, on: 'redis' | 'cluster' = 'redis'): Promise<{ procs: ServerProcess[]; origins: string[] }> {
  const shared: Record<string, string> = on === 'redis' ? { REDIS_URL: redis.url } : { REDIS_URL: redisCluster.url, REDIS_CLUSTER: 'on' };
  const procs = Array.from({ length: n }, () =>
    spawnServer(
      // Every client comes from 127.0.0.1: its waiters are all counted under one address.
      { HOST: '127.0.0.1', PORT: '0', STUN_PORT: '0', TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem', MAX_WAITING_PER_IP: '500', REDIS_PREFIX: prefix, ...shared },
      dir,
    ),
  );
  processes.push(...procs);
  const ports = await Promise.all(procs.map((p) => p.port));
  return { procs, origins: ports.map((port) => `https://127.0.0.1:${port}`) };
}

interface Seen {
  readonly client: number;
  readonly process: number;
  readonly address: string;
  aborted: boolean;
  match?: { matchId: string; self: string; peer: string; initiator: boolean; peerMeta: { id: number } | null };
  status?: number;
}

/** Every key under the prefix, on the one Redis or on every node of the cluster. */
const keysUnder = (prefix: string, on: 'redis' | 'cluster'): Promise<string[]> =>
  keysOn(on === 'redis' ? [redis.url] : redisCluster.nodes.map((n) => n.url), prefix);

describe('several processes on one Redis, and on a Redis Cluster', () => {
  it.each(['redis', 'cluster'] as const)('pairs clients across processes through a flood with aborts: symmetric, no ghost, nothing left waiting (%s)', async (on) => {
    const prefix = `flood${++prefixes}:`;
    const { procs, origins } = await cluster(3, prefix, on);
    const seen: Seen[] = [];
    const clients: TestClient[] = [];
    const runs: Promise<void>[] = [];
    const CLIENTS = 150;
    for (let i = 0; i < CLIENTS; i++) {
      const process = i % 3;
      const client = new TestClient(origins[process] as string, cert, { h2: i % 2 === 1 });
      clients.push(client);
      const aborting = i % 3 === 2;
      const controller = new AbortController();
      if (aborting) setTimeout(() => controller.abort(), 20 + ((i * 37) % 400));
      runs.push(
        (async () => {
          await new Promise((resolve) => setTimeout(resolve, (i * 7) % 300));
          const record: Seen = { client: i, process, address: '', aborted: false };
          seen.push(record);
          try {
            // Each client names itself in its meta: an address can be two clients' at once, on
            // connections to two processes (the same local port towards two server ports).
            const answer = await ask(client.client, origins[process] as string, '/', {
              method: 'POST',
              headers: { accept: 'application/json', 'content-type': 'application/json' },
              body: JSON.stringify({ pool: 'flood', timeout: 3, meta: { id: i } }),
              signal: controller.signal,
            });
            record.status = answer.status;
            if (answer.status === 200) record.match = JSON.parse(answer.text) as Seen['match'];
          } catch {
            record.aborted = true;
          }
        })(),
      );
    }
    await Promise.all(runs);
    await Promise.all(clients.map((c) => c.close()));

    const answered = seen.filter((s) => s.match !== undefined);
    expect(seen.filter((s) => !s.aborted && s.status !== 200 && s.status !== 408)).toEqual([]);
    // Every match is two clients who name each other, one the initiator, or one client whose
    // partner aborted (its answer was written as the client left).
    const byMatch = new Map<string, Seen[]>();
    for (const s of answered) byMatch.set(s.match?.matchId ?? '', [...(byMatch.get(s.match?.matchId ?? '') ?? []), s]);
    let crossProcess = 0;
    const broken: Seen[][] = [];
    for (const sides of byMatch.values()) {
      const [one, two] = sides;
      if (sides.length > 2 || one?.match === undefined) broken.push(sides);
      else if (two?.match === undefined) {
        // The partner was not answered 200: it must be a client that aborted.
        const partner = seen.find((s) => s.client === one.match?.peerMeta?.id);
        if (partner === undefined || !partner.aborted || partner.client === one.client) broken.push(sides);
      } else if (
        one.match.peerMeta?.id !== two.client ||
        two.match.peerMeta?.id !== one.client ||
        one.match.peer !== two.match.self ||
        two.match.peer !== one.match.self ||
        one.match.initiator === two.match.initiator
      )
        broken.push(sides);
      else if (one.process !== two.process) crossProcess++;
    }
    expect(broken).toEqual([]);
    const complete = [...byMatch.values()].filter((sides) => sides.length === 2).length;
    expect(complete).toBeGreaterThan(30);
    // Which process a client's partner is on depends on connection timing; runs here gave 10 to 22 of ~50.
    expect(crossProcess).toBeGreaterThanOrEqual(5);
    const aborted = seen.filter((s) => s.aborted).length;
    const oneSided = [...byMatch.values()].filter((sides) => sides.length === 1).length;
    expect(oneSided).toBeLessThanOrEqual(aborted);

    // Nothing waiting afterwards, in any process or in Redis.
    for (const origin of origins) {
      const health = new TestClient(origin, cert);
      expect(JSON.parse((await ask(health.client, origin, '/healthz')).text)).toEqual({ status: 'ok', waiting: 0 });
      await health.close();
    }
    // Nothing left in Redis either: no waiter, no claim, no limit entry; only the processes' shared secret key.
    // Limit entries are released beside the answers, and one put back by a claim undone as its
    // waiter's client left lapses at its deadline (3 s) and grace (5 s): both are given that long.
    for (let i = 0; i < 45 && (await keysUnder(prefix, on)).length > 1; i++) await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await keysUnder(prefix, on)).toEqual([`${prefix}secret-key`]);
    for (const proc of procs) expect(proc.stdout.filter((line) => /"level":(40|50|60)/.test(line))).toEqual([]);
    for (const proc of procs) proc.child.kill('SIGTERM');
    for (const proc of procs) expect(await proc.exit).toEqual({ code: 0, signal: null });
  });

  it('never hands out the waiters of a process killed with -9', async () => {
    const prefix = `kill${++prefixes}:`;
    const { procs, origins } = await cluster(2, prefix);
    const [survivor, victim] = procs as [ServerProcess, ServerProcess];
    // Four streams of one HTTP/2 connection: never paired with each other, so all four wait.
    const victim1 = new TestClient(origins[1] as string, cert, { h2: true });
    const victims = [victim1];
    const waiting = Array.from({ length: 4 }, () =>
      ask(victim1.client, origins[1] as string, '/?pool=doomed&timeout=20', { headers: { accept: 'application/json' } }).catch(() => undefined),
    );
    const probe = createClient({ url: redis.url });
    await probe.connect();
    try {
      for (let i = 0; i < 100 && (await probe.lLen(`${prefix}{pool:doomed}:q`)) < 4; i++) await new Promise((r) => setTimeout(r, 20));
      expect(await probe.lLen(`${prefix}{pool:doomed}:q`)).toBe(4);
      victim.child.kill('SIGKILL');
      await victim.exit;
      const victimAddresses = new Set(victims.map((c) => `127.0.0.1:${c.localPort}`));
      // Newcomers at the survivor: the dead process's waiters are dropped, the newcomers pair among themselves.
      const newcomers = Array.from({ length: 4 }, () => new TestClient(origins[0] as string, cert));
      const answers = await Promise.all(
        newcomers.map((c) => ask(c.client, origins[0] as string, '/?pool=doomed&timeout=5', { headers: { accept: 'application/json' } })),
      );
      const peers = answers.map((a) => (a.status === 200 ? (JSON.parse(a.text) as { peer: string }).peer : `status ${a.status}`));
      expect(peers.filter((peer) => victimAddresses.has(peer))).toEqual([]);
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
      expect(await probe.lLen(`${prefix}{pool:doomed}:q`)).toBe(0);
      await Promise.all([...victims, ...newcomers].map((c) => c.close()));
      await Promise.all(waiting);
    } finally {
      await probe.quit();
    }
    survivor.child.kill('SIGTERM');
    expect(await survivor.exit).toEqual({ code: 0, signal: null });
  });

  it('answers 503 backend_unavailable while Redis is down, the waiters too, once; pairs again when it is back', async () => {
    const own = await startRedis();
    const adminPort = await freePort();
    const proc = spawnServer(
      { HOST: '127.0.0.1', PORT: '0', STUN_PORT: '0', TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem', REDIS_URL: own.url, ADMIN_PORT: String(adminPort) },
      dir,
    );
    processes.push(proc);
    const origin = `https://127.0.0.1:${await proc.port}`;
    const readyz = async () => (await request(`http://127.0.0.1:${adminPort}/readyz`)).statusCode;
    const [waiterClient, other, third] = [new TestClient(origin, cert), new TestClient(origin, cert), new TestClient(origin, cert)];
    let restarted: RedisServer | undefined;
    try {
      const json = { headers: { accept: 'application/json' } };
      const waiting = ask(waiterClient.client, origin, '/?pool=outage&timeout=30', json);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await own.stop();
      const started = Date.now();
      const answered = await waiting;
      expect([answered.status, answered.headers['retry-after'], JSON.parse(answered.text)]).toEqual([
        503,
        '1',
        { error: 'backend_unavailable', message: 'the shared queue (Redis) cannot be reached; try again shortly' },
      ]);
      const refused = await ask(other.client, origin, '/?pool=outage&timeout=5', json);
      expect([refused.status, (JSON.parse(refused.text) as { error: string }).error]).toEqual([503, 'backend_unavailable']);
      expect(Date.now() - started).toBeLessThan(2000);
      expect(await readyz()).toBe(503);

      restarted = await startRedis(own.port);
      await proc.line(/^Redis reachable again$/);
      const pairing = ask(other.client, origin, '/?pool=back&timeout=10', json);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const second = await ask(third.client, origin, '/?pool=back&timeout=10', json);
      expect([second.status, (await pairing).status]).toEqual([200, 200]);
      expect(await readyz()).toBe(200);
      const loud = proc.stdout.filter((line) => /"level":(40|50|60)/.test(line)).map((line) => (JSON.parse(line) as { msg: string }).msg);
      expect(loud).toEqual(['Redis unreachable: new requests are answered 503 backend_unavailable until it is back']);
      expect(proc.child.exitCode).toBe(null);
    } finally {
      await Promise.all([waiterClient, other, third].map((c) => c.close()));
      proc.child.kill('SIGTERM');
      await proc.exit;
      await restarted?.stop();
    }
  });
});

describe('Redis killed and restarted in the middle of a flood', () => {
  it('answers every request once (matched, 503 or 408), never doubles a match, and pairs again once Redis is back', async () => {
    const own = await startRedis();
    const env = { HOST: '127.0.0.1', PORT: '0', STUN_PORT: '0', TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem', REDIS_URL: own.url, MAX_WAITING_PER_IP: '500' };
    const procs = [spawnServer(env, dir), spawnServer(env, dir)];
    processes.push(...procs);
    const origins = (await Promise.all(procs.map((p) => p.port))).map((port) => `https://127.0.0.1:${port}`);
    let restarted: RedisServer | undefined;
    type Phase = 'before' | 'down' | 'back';
    let phase = 'before' as Phase;
    let running = true;
    interface Answered {
      readonly client: number;
      readonly phase: Phase;
      readonly status: number;
      readonly error?: string;
      readonly match?: { matchId: string; self: string; peer: string; peerMeta: { id: number } | null };
      readonly ms: number;
    }
    const answered: Answered[] = [];
    // 40 clients, each on its own connection to one of the two processes, asking again and again.
    const clients = Array.from({ length: 40 }, (_, i) => ({ client: new TestClient(origins[i % 2] as string, cert), origin: origins[i % 2] as string }));
    const loops = clients.map(async ({ client, origin }, i) => {
      await new Promise((resolve) => setTimeout(resolve, i * 5));
      while (running) {
        const asked = phase;
        const started = Date.now();
        // The client names itself in its meta: its address may be another client's too, towards the other process.
        const answer = await ask(client.client, origin, '/', {
          method: 'POST',
          headers: { accept: 'application/json', 'content-type': 'application/json' },
          body: JSON.stringify({ pool: 'storm', timeout: 2, meta: { id: i } }),
        });
        const body = JSON.parse(answer.text) as { error?: string; matchId?: string; self?: string; peer?: string };
        answered.push({
          client: i,
          phase: asked,
          status: answer.status,
          ms: Date.now() - started,
          ...(body.error === undefined ? {} : { error: body.error }),
          ...(answer.status === 200 ? { match: body as Answered['match'] } : {}),
        });
        if (answer.status === 503) await new Promise((resolve) => setTimeout(resolve, 100));
      }
    });
    try {
      await new Promise((resolve) => setTimeout(resolve, 800));
      own.child.kill('SIGKILL');
      await own.stop();
      phase = 'down';
      await new Promise((resolve) => setTimeout(resolve, 800));
      restarted = await startRedis(own.port);
      await Promise.all(procs.map((p) => p.line(/^Redis reachable again$/)));
      phase = 'back';
      await new Promise((resolve) => setTimeout(resolve, 1000));
    } finally {
      running = false;
      await Promise.all(loops);
      await Promise.all(clients.map(({ client }) => client.close()));
    }
    // Every answer is a match, 503 backend_unavailable or 408 timeout, within its timeout and a margin.
    expect(answered.filter((a) => !(a.status === 200 || (a.status === 503 && a.error === 'backend_unavailable') || (a.status === 408 && a.error === 'timeout')))).toEqual([]);
    expect(answered.filter((a) => a.ms > 4000)).toEqual([]);
    // Matches are mutual and never doubled: each matchId names two clients who name each other. The
    // one exception is a match in flight as Redis went: its waiter was answered, but the arrival's
    // process could no longer learn so (the confirmation and its record went with Redis), and
    // answered its client 503. That client is then the waiter's partner, answered 503 while down.
    const byMatch = new Map<string, Answered[]>();
    for (const a of answered) if (a.match !== undefined) byMatch.set(a.match.matchId, [...(byMatch.get(a.match.matchId) ?? []), a]);
    let inFlight = 0;
    for (const sides of byMatch.values()) {
      const [one, two] = sides as [Answered, Answered | undefined];
      expect(sides.length).toBeLessThanOrEqual(2);
      if (two === undefined) {
        inFlight++;
        const partner = one.match?.peerMeta?.id;
        expect(answered.some((a) => a.client === partner && a.status === 503 && a.phase !== 'back')).toBe(true);
      } else {
        expect([one.match?.peer, two.match?.peer, one.match?.peerMeta?.id, two.match?.peerMeta?.id]).toEqual([two.match?.self, one.match?.self, two.client, one.client]);
      }
    }
    expect(inFlight).toBeLessThanOrEqual(2);
    const count = (p: Phase, status: number) => answered.filter((a) => a.phase === p && a.status === status).length;
    expect(count('before', 200)).toBeGreaterThan(20);
    expect(count('down', 503)).toBeGreaterThan(0);
    expect(count('back', 200)).toBeGreaterThan(20);
    for (const proc of procs) {
      const loud = proc.stdout.filter((line) => /"level":(40|50|60)/.test(line)).map((line) => (JSON.parse(line) as { msg: string }).msg);
      expect(loud).toEqual(['Redis unreachable: new requests are answered 503 backend_unavailable until it is back']);
      expect(proc.stdout.filter((line) => line.includes('Redis reachable again')).length).toBe(1);
      proc.child.kill('SIGTERM');
      expect(await proc.exit).toEqual({ code: 0, signal: null });
    }
    await restarted.stop();
  });
});

describe('a request is answered by its own deadline, whatever other processes do', () => {
  it('answers 408 at the asked timeout while the process holding every waiter is stalled (kill -STOP)', async () => {
    const prefix = `stall${++prefixes}:`;
    const { procs, origins } = await cluster(2, prefix);
    const [stalled, other] = procs as [ServerProcess, ServerProcess];
    // Ten streams of one HTTP/2 connection: never paired with each other, so all ten wait at the stalled process.
    const holder = new TestClient(origins[0] as string, cert, { h2: true });
    const held = Array.from({ length: 10 }, () =>
      ask(holder.client, origins[0] as string, '/?pool=stall&timeout=30', { headers: { accept: 'application/json' } }).catch(() => undefined),
    );
    const probe = createClient({ url: redis.url });
    await probe.connect();
    const asker = new TestClient(origins[1] as string, cert);
    try {
      for (let i = 0; i < 100 && (await probe.lLen(`${prefix}{pool:stall}:q`)) < 10; i++) await new Promise((r) => setTimeout(r, 20));
      expect(await probe.lLen(`${prefix}{pool:stall}:q`)).toBe(10);
      stalled.child.kill('SIGSTOP');
      const started = Date.now();
      const answer = await ask(asker.client, origins[1] as string, '/?pool=stall&timeout=3', { headers: { accept: 'application/json' } });
      const took = Date.now() - started;
      expect([answer.status, (JSON.parse(answer.text) as { error: string }).error]).toEqual([408, 'timeout']);
      // Its own three seconds, not two seconds for each of the stalled process's ten waiters.
      expect(took).toBeGreaterThanOrEqual(2900);
      expect(took).toBeLessThan(4000);
    } finally {
      stalled.child.kill('SIGCONT');
      await probe.quit();
      await Promise.all([holder.close(), asker.close()]);
      await Promise.all(held);
    }
    for (const proc of [stalled, other]) {
      proc.child.kill('SIGTERM');
      expect(await proc.exit).toEqual({ code: 0, signal: null });
    }
  });
});
