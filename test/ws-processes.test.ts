/**
 * GET /ws in whole pairup processes: shutdown with 1000 open sockets, and two partners on different
 * processes (sharing a redis-server the test starts) relaying to each other.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnServer, type ServerProcess } from './helpers/process.js';
import { startRedis, type RedisServer } from './helpers/redis.js';
import { testCertificate } from './helpers/server.js';
import { openSocket, type TestSocket } from './helpers/ws-client.js';

let dir: string;
let cert: string;
const processes: ServerProcess[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairup-ws-'));
  const pem = await testCertificate();
  cert = pem.cert;
  await writeFile(join(dir, 'cert.pem'), pem.cert);
  await writeFile(join(dir, 'key.pem'), pem.key);
});
afterAll(async () => {
  for (const proc of processes) if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

const BASE = { HOST: '127.0.0.1', PORT: '0', STUN_PORT: '0', TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem', MAX_WAITING_PER_IP: '0' };

describe('GET /ws in a whole process', () => {
  it('closes 1000 open sockets once each with 1001 at SIGTERM, waiters told why, and exits within the grace', async () => {
    const proc = spawnServer({ ...BASE, SHUTDOWN_GRACE_MS: '5000' }, dir);
    processes.push(proc);
    const origin = `https://127.0.0.1:${await proc.port}`;
    const sockets: TestSocket[] = [];
    // 400 waiting alone, 300 pairs relaying.
    for (let batch = 0; batch < 10; batch++) {
      sockets.push(...(await Promise.all(Array.from({ length: 100 }, () => openSocket(origin, cert)))));
    }
    const waiting = sockets.slice(0, 400);
    const relaying = sockets.slice(400);
    waiting.forEach((s, i) => s.send({ type: 'join', pool: `alone-${i}`, timeout: 60 }));
    relaying.forEach((s, i) => s.send({ type: 'join', pool: `pair-${Math.floor(i / 2)}` }));
    await Promise.all(waiting.map(async (s) => expect(await s.next()).toEqual({ type: 'queued' })));
    await Promise.all(relaying.map(async (s) => {
      for (;;) if ((await s.next()).type === 'matched') return;
    }));
    const closes: number[] = [];
    let closeEvents = 0;
    for (const s of sockets) s.socket.on('close', () => closeEvents++);
    const started = Date.now();
    proc.child.kill('SIGTERM');
    closes.push(...(await Promise.all(sockets.map((s) => s.closed))));
    expect(await proc.exit).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(closes).toEqual(Array(1000).fill(1001));
    expect(closeEvents).toBe(1000);
    for (const s of waiting) {
      expect(s.received).toEqual([
        { type: 'queued' },
        { type: 'error', error: 'shutting_down', message: 'server shutting down' },
      ]);
    }
    for (const s of relaying) expect(s.received.filter((m) => m.type === 'peer_left' || m.type === 'error')).toEqual([]);
    expect(proc.stdout.filter((line) => /"level":(40|50|60)/.test(line))).toEqual([]);
  }, 60_000);
});

describe('GET /ws across processes (Redis)', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(() => redis.stop());

  it('relays between partners held by two processes, in order, both ways, and tells each when the other left', async () => {
    const env = { ...BASE, REDIS_URL: redis.url, REDIS_PREFIX: 'ws:' };
    const procs = [spawnServer(env, dir), spawnServer(env, dir)];
    processes.push(...procs);
    const [one, two] = (await Promise.all(procs.map((p) => p.port))).map((port) => `https://127.0.0.1:${port}`) as [string, string];
    for (const round of [0, 1]) {
      const a = await openSocket(one, cert);
      a.send({ type: 'join', code: `cross-${round}` });
      expect(await a.next()).toEqual({ type: 'queued' });
      const b = await openSocket(two, cert);
      b.send({ type: 'join', code: `cross-${round}`, meta: { round } });
      const [ma, mb] = [await a.next(), await b.next()];
      expect([ma.type, mb.type, ma.matchId === mb.matchId, ma.peer, mb.peer, ma.peerMeta]).toEqual(['matched', 'matched', true, mb.self, ma.self, { round }]);
      // The arrival may speak first: its first signals reach a waiter its process has just answered.
      for (let i = 0; i < 30; i++) b.send({ type: 'signal', data: { from: 'b', i } });
      for (let i = 0; i < 30; i++) a.send({ type: 'signal', data: { from: 'a', i } });
      const atA = await Promise.all(Array.from({ length: 30 }, () => a.next()));
      const atB = await Promise.all(Array.from({ length: 30 }, () => b.next()));
      expect(atA).toEqual(Array.from({ length: 30 }, (_, i) => ({ type: 'signal', data: { from: 'b', i } })));
      expect(atB).toEqual(Array.from({ length: 30 }, (_, i) => ({ type: 'signal', data: { from: 'a', i } })));
      const [leaver, stayer] = round === 0 ? [a, b] : [b, a];
      if (round === 0) leaver.send({ type: 'leave' });
      else leaver.socket.terminate(); // a closed socket tells the partner too
      expect(await stayer.next()).toEqual({ type: 'peer_left' });
      expect(await stayer.closed).toBe(4002);
    }
    for (const proc of procs) {
      expect(proc.stdout.filter((line) => /"level":(40|50|60)/.test(line))).toEqual([]);
      proc.child.kill('SIGTERM');
      expect(await proc.exit).toEqual({ code: 0, signal: null });
    }
  });
});
