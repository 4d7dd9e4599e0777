/**
 * App keys on two pairup processes sharing one Redis: an app's client waiting on one process is
 * paired with the app's client arriving at the other, and each side's outcome report, sent to the
 * process that did not answer it, is counted there under the app (the proof alone says which app:
 * the processes share the key secrets are derived under). Each process's /metrics is read.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createHmac } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashKey } from '../src/net/app-keys.js';
import { freePort, spawnServer, type ServerProcess } from './helpers/process.js';
import { startRedis, type RedisServer } from './helpers/redis.js';
import { ask, testCertificate, TestClient, type AskOptions } from './helpers/server.js';

const KEY = 'pairup_redis-app-metrics-key-cccccccccccccccccccccccccccc';

let redis: RedisServer;
let dir: string;
let cert: string;
const procs: ServerProcess[] = [];
const origins: string[] = [];
const admins: number[] = [];

beforeAll(async () => {
  redis = await startRedis();
  dir = await mkdtemp(join(tmpdir(), 'pairup-access-redis-'));
  const pem = await testCertificate();
  cert = pem.cert;
  await writeFile(join(dir, 'cert.pem'), pem.cert);
  await writeFile(join(dir, 'key.pem'), pem.key);
  await writeFile(join(dir, 'keys.yaml'), `keys:\n  - app: chess\n    sha256: ${hashKey(KEY)}\n`);
  for (let i = 0; i < 2; i++) {
    const admin = await freePort();
    const proc = spawnServer(
      {
        HOST: '127.0.0.1',
        PORT: '0',
        STUN_PORT: '0',
        TLS_CERT: 'cert.pem',
        TLS_KEY: 'key.pem',
        REDIS_URL: redis.url,
        REDIS_PREFIX: 'access-metrics:',
        APP_KEYS_FILE: 'keys.yaml',
        ADMIN_PORT: String(admin),
      },
      dir,
    );
    procs.push(proc);
    admins.push(admin);
    origins.push(`https://127.0.0.1:${await proc.port}`);
  }
}, 60_000);
afterAll(async () => {
  for (const proc of procs) if (proc.child.exitCode === null) proc.child.kill('SIGTERM');
  await Promise.all(procs.map((proc) => proc.exit));
  await redis.stop();
  await rm(dir, { recursive: true, force: true });
});

async function scrape(index: number, prefix: string): Promise<Record<string, number>> {
  const text = await (await request(`http://127.0.0.1:${admins[index] ?? 0}/metrics`)).body.text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const at = line.lastIndexOf(' ');
    out[line.slice(0, at)] = Number(line.slice(at + 1));
  }
  return out;
}

interface MatchBody {
  matchId: string;
  secret: string;
  initiator: boolean;
}

async function call(index: number, path: string, init: AskOptions = {}) {
  const origin = origins[index] ?? '';
  const client = new TestClient(origin, cert);
  try {
    return await ask(client.client, origin, path, init);
  } finally {
    await client.close();
  }
}

const report = (index: number, match: MatchBody, outcome: Record<string, unknown>) =>
  call(index, '/outcome', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ matchId: match.matchId, proof: createHmac('sha256', match.secret).update(match.matchId).digest('base64url'), initiator: match.initiator, ...outcome }),
  });

describe('app keys and metrics across processes (Redis)', () => {
  it('pairs an app across processes and counts each side’s report, sent to the other process, under the app', async () => {
    const headers = { accept: 'application/json', authorization: `Bearer ${KEY}` };
    const waiting = call(0, '/?pool=p&timeout=10', { headers });
    for (let i = 0; i < 100 && (await scrape(0, 'pairup_waiting'))['pairup_waiting{app="chess",pool="p"}'] !== 1; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    const arrival = await call(1, '/?pool=p&timeout=10', { headers });
    const waiter = await waiting;
    expect([waiter.status, arrival.status]).toEqual([200, 200]);
    const [held, came] = [JSON.parse(waiter.text) as MatchBody, JSON.parse(arrival.text) as MatchBody];
    expect([held.matchId, held.initiator, came.initiator]).toEqual([came.matchId, true, false]);

    // Each side reports to the process that did not answer it.
    expect((await report(1, held, { via: 'direct', ms: 80 })).status).toBe(204);
    expect((await report(0, came, { via: 'failed' })).status).toBe(204);
    // A second report of a side is not counted again, on either process (the ledger is shared).
    expect((await report(0, held, { via: 'relay', ms: 90 })).status).toBe(204);

    expect(await scrape(0, 'pairup_connections_total')).toEqual({
      'pairup_connections_total{via="direct"}': 0,
      'pairup_connections_total{via="relay"}': 0,
      'pairup_connections_total{via="failed"}': 0,
      'pairup_connections_total{app="chess",via="direct"}': 0,
      'pairup_connections_total{app="chess",via="relay"}': 0,
      'pairup_connections_total{app="chess",via="failed"}': 1,
    });
    expect(await scrape(1, 'pairup_connections_total')).toEqual({
      'pairup_connections_total{via="direct"}': 0,
      'pairup_connections_total{via="relay"}': 0,
      'pairup_connections_total{via="failed"}': 0,
      'pairup_connections_total{app="chess",via="direct"}': 1,
      'pairup_connections_total{app="chess",via="relay"}': 0,
      'pairup_connections_total{app="chess",via="failed"}': 0,
    });
    // The match is counted once, by the waiter's process; both show the app's pool with nobody waiting.
    expect(await scrape(0, 'pairup_matches_total')).toEqual({ 'pairup_matches_total{app="chess",pool="p"}': 1 });
    expect(await scrape(1, 'pairup_matches_total')).toEqual({ 'pairup_matches_total{app="chess",pool="p"}': 0 });
    expect(await scrape(0, 'pairup_waiting')).toEqual({ 'pairup_waiting{app="chess",pool="p"}': 0 });
    expect(await scrape(1, 'pairup_waiting')).toEqual({ 'pairup_waiting{app="chess",pool="p"}': 0 });
    for (const proc of procs) expect(proc.stdout.filter((line) => /"level":(40|50|60)/.test(line))).toEqual([]);
  }, 60_000);
});
