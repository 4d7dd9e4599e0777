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
import { ask, testCertificate, TestClient } from './helpers/server.js';
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

const BASE = { HOST: '127.0.0.1', PORT: '0', STUN_PORT: '0', TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem', MAX_WAITING_PER_IP: '0', MAX_RELAYS_PER_IP: '0' };

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

  it('times a punch for partners held by two processes, each told the other’s mapping, and a second attempt on punch_again; a partner that does not punch is answered for', async () => {
    const env = { ...BASE, REDIS_URL: redis.url, REDIS_PREFIX: 'wspunch:' };
    const procs = [spawnServer(env, dir), spawnServer(env, dir)];
    processes.push(...procs);
    const [one, two] = (await Promise.all(procs.map((p) => p.port))).map((port) => `https://127.0.0.1:${port}`) as [string, string];
    const a = await openSocket(one, cert);
    a.send({ type: 'join', code: 'cross-punch', punch: { mapping: '127.0.0.1:40001', nat: 'dependent' } });
    expect(await a.next()).toEqual({ type: 'queued' });
    const b = await openSocket(two, cert);
    b.send({ type: 'join', code: 'cross-punch', punch: { mapping: '127.0.0.1:40002', nat: 'independent' } });
    const [ma, mb] = [await a.next(), await b.next()];
    const [pa, pb] = [await a.next(), await b.next()];
    expect(pa).toEqual({ type: 'punch', attempt: 1, strategy: 'spray', peer: { mapping: '127.0.0.1:40002', observed: ma.peer }, rttMs: pa.rttMs, ms: 10_000, ports: 256 });
    expect(pb).toEqual({ type: 'punch', attempt: 1, strategy: 'probe', peer: { mapping: '127.0.0.1:40001', observed: mb.peer }, rttMs: pb.rttMs, ms: 10_000, probes: 2048, probesPerS: 250 });
    b.send({ type: 'punch_again' });
    expect([(await a.next()).attempt, (await b.next()).attempt]).toEqual([2, 2]);

    const c = await openSocket(one, cert);
    c.send({ type: 'join', code: 'cross-punch-one' });
    expect(await c.next()).toEqual({ type: 'queued' });
    const d = await openSocket(two, cert);
    d.send({ type: 'join', code: 'cross-punch-one', punch: { mapping: '127.0.0.1:40003', nat: 'independent' } });
    const mc = await c.next();
    expect((await d.next()).type).toBe('matched');
    const pd = await d.next();
    expect(pd).toEqual({ type: 'punch', attempt: 1, strategy: 'relay', peer: { observed: mc.self }, rttMs: pd.rttMs, ms: 10_000 });
    for (const s of [a, b, c, d]) s.socket.terminate();
    for (const proc of procs) {
      expect(proc.stdout.filter((line) => /"level":(40|50|60)/.test(line))).toEqual([]);
      proc.child.kill('SIGTERM');
      expect(await proc.exit).toEqual({ code: 0, signal: null });
    }
  });

  it("tells a socket within seconds that its partner's process died (kill -9)", async () => {
    const env = { ...BASE, REDIS_URL: redis.url, REDIS_PREFIX: 'ws-dead:' };
    const [stays, dies] = [spawnServer(env, dir), spawnServer(env, dir)];
    processes.push(stays, dies);
    const [one, two] = (await Promise.all([stays.port, dies.port])).map((port) => `https://127.0.0.1:${port}`) as [string, string];
    const a = await openSocket(one, cert);
    a.send({ type: 'join', code: 'dead-partner' });
    expect(await a.next()).toEqual({ type: 'queued' });
    const b = await openSocket(two, cert);
    b.send({ type: 'join', code: 'dead-partner' });
    expect([(await a.next()).type, (await b.next()).type]).toEqual(['matched', 'matched']);
    dies.child.kill('SIGKILL');
    await dies.exit;
    const started = Date.now();
    expect(await a.next(6000)).toEqual({ type: 'peer_left' });
    expect(await a.closed).toBe(4002);
    // Asked every 2 s: told within two rounds of that.
    expect(Date.now() - started).toBeLessThan(4500);
    expect(stays.stdout.filter((line) => /"level":(40|50|60)/.test(line))).toEqual([]);
    stays.child.kill('SIGTERM');
    expect(await stays.exit).toEqual({ code: 0, signal: null });
  });

  it('relays each signal frame as it came, byte for byte, across processes', async () => {
    const env = { ...BASE, REDIS_URL: redis.url, REDIS_PREFIX: 'ws-bytes:' };
    const procs = [spawnServer(env, dir), spawnServer(env, dir)];
    processes.push(...procs);
    const [one, two] = (await Promise.all(procs.map((p) => p.port))).map((port) => `https://127.0.0.1:${port}`) as [string, string];
    const a = await openSocket(one, cert);
    a.send({ type: 'join', code: 'bytes' });
    expect(await a.next()).toEqual({ type: 'queued' });
    const b = await openSocket(two, cert);
    b.send({ type: 'join', code: 'bytes' });
    expect([(await a.next()).type, (await b.next()).type]).toEqual(['matched', 'matched']);
    const raw: string[] = [];
    b.socket.on('message', (data) => raw.push((data as Buffer).toString('utf8')));
    // Numbers written short that JSON.stringify writes long (1e20 is 100000000000000000000), spacing, escapes.
    const frames = [
      `{"type":"signal","data":[${Array(3000).fill('1e20').join(',')}]}`,
      '{ "data" : {"s":"\\u00e9\\n","n":1.50} , "type":"signal" }',
    ];
    for (const frame of frames) a.send(frame);
    for (let i = 0; i < 200 && raw.length < frames.length; i++) await new Promise((r) => setTimeout(r, 20));
    expect(raw).toEqual(frames);
    for (const proc of procs) {
      proc.child.kill('SIGTERM');
      expect(await proc.exit).toEqual({ code: 0, signal: null });
    }
  });

  it('pairs across processes while relays across them push megabytes through Redis', async () => {
    const own = await startRedis();
    const env = { ...BASE, REDIS_URL: own.url, REDIS_PREFIX: 'ws-busy:' };
    const procs = [spawnServer(env, dir), spawnServer(env, dir)];
    processes.push(...procs);
    const [one, two] = (await Promise.all(procs.map((p) => p.port))).map((port) => `https://127.0.0.1:${port}`) as [string, string];
    const pairs: [TestSocket, TestSocket][] = [];
    for (let i = 0; i < 10; i++) {
      const a = await openSocket(one, cert);
      a.send({ type: 'join', code: `busy-${i}` });
      await a.next();
      const b = await openSocket(two, cert);
      b.send({ type: 'join', code: `busy-${i}` });
      await Promise.all([a.next(), b.next()]);
      pairs.push([a, b]);
    }
    // Each socket sends 16 KB frames of short numbers at 40 a second (the limit is 50), for 4 s.
    const frame = `{"type":"signal","data":[${Array(3270).fill('1e20').join(',')}]}`;
    let sent = 0;
    const pump = setInterval(() => {
      for (const pair of pairs) {
        for (const s of pair) {
          if (s.socket.readyState !== s.socket.OPEN || s.socket.bufferedAmount >= 1_000_000) continue;
          s.socket.send(frame);
          sent++;
        }
      }
    }, 25);
    const stop = setTimeout(() => clearInterval(pump), 4000);
    const [x, y] = [new TestClient(one, cert), new TestClient(two, cert)];
    try {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const started = Date.now();
      const json = { headers: { accept: 'application/json' } };
      const waiting = ask(x.client, one, '/?code=busy-pairing&timeout=3', json);
      await new Promise((resolve) => setTimeout(resolve, 100));
      const answers = await Promise.all([ask(y.client, two, '/?code=busy-pairing&timeout=3', json), waiting]);
      expect(answers.map((a) => a.status)).toEqual([200, 200]);
      expect(Date.now() - started).toBeLessThan(1500);
    } finally {
      clearInterval(pump);
      clearTimeout(stop);
      await Promise.all([x.close(), y.close()]);
    }
    // About 800 frames a second were being sent while the pairing was made (12.8 MB/s).
    expect(sent).toBeGreaterThan(500);
    for (const pair of pairs) for (const s of pair) s.socket.terminate();
    for (const proc of procs) {
      proc.child.kill('SIGTERM');
      expect(await proc.exit).toEqual({ code: 0, signal: null });
    }
    await own.stop();
  }, 30_000);
});
