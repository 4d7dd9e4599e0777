/**
 * WORKERS=N: one port served by N node:cluster workers sharing pools through a redis-server the test
 * starts. Clients are paired across workers, the admin listener adds up every worker's metrics, STUN
 * answers each datagram once, a worker killed with -9 is replaced, SIGHUP reaches every worker and
 * SIGTERM closes them all.
 */
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, runNode, spawnServer, type ServerProcess } from './helpers/process.js';
import { startRedis, type RedisServer } from './helpers/redis.js';
import { ask, eventually, testCertificate, TestClient } from './helpers/server.js';
import { bindingRequest, exchange } from './helpers/stun-client.js';

let redis: RedisServer;
let dir: string;
let cert: string;
let proc: ServerProcess | undefined;

beforeAll(async () => {
  redis = await startRedis();
  dir = await mkdtemp(join(tmpdir(), 'pairup-workers-'));
  const pem = await testCertificate();
  cert = pem.cert;
  await writeFile(join(dir, 'cert.pem'), pem.cert);
  await writeFile(join(dir, 'key.pem'), pem.key);
});
afterAll(async () => {
  if (proc !== undefined && proc.child.exitCode === null) proc.child.kill('SIGKILL');
  await redis.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Log lines (parsed) whose msg matches. */
function lines(p: ServerProcess, pattern: RegExp): Record<string, unknown>[] {
  return p.stdout
    .map((text) => {
      try {
        return JSON.parse(text) as Record<string, unknown>;
      } catch {
        return undefined;
      }
    })
    .filter((line): line is Record<string, unknown> => line !== undefined && pattern.test(String(line.msg)));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `n` clients, each on its own connection, asking at once; their answers. */
async function pairUp(origin: string, n: number, pool: string): Promise<{ status: number; self: string; peer: string }[]> {
  const clients = Array.from({ length: n }, () => new TestClient(origin, cert));
  try {
    return await Promise.all(
      clients.map(async (client) => {
        const answer = await ask(client.client, origin, `/?pool=${pool}&timeout=5`, { headers: { accept: 'application/json' } });
        const body = JSON.parse(answer.text) as { self: string; peer: string };
        return { status: answer.status, self: body.self, peer: body.peer };
      }),
    );
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

async function metric(adminPort: number, name: string): Promise<string[]> {
  const text = await (await request(`http://127.0.0.1:${adminPort}/metrics`)).body.text();
  return text.split('\n').filter((line) => line.startsWith(name));
}

describe('WORKERS', () => {
  it('refuses WORKERS>1 without REDIS_URL, with one line', async () => {
    const started = spawnServer({ HOST: '127.0.0.1', PORT: '0', WORKERS: '2', TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem' }, dir);
    expect(await started.exit).toEqual({ code: 1, signal: null });
    expect(started.stderr).toBe('pairup: WORKERS is 2, which needs REDIS_URL: workers share pools only through Redis\n');
  });

  it('serves one port with two workers: pairs across them, adds up their metrics, answers STUN once, replaces a dead one, closes on SIGTERM', async () => {
    const [adminPort, port] = [await freePort(), await freePort()];
    proc = spawnServer(
      {
        HOST: '127.0.0.1',
        PORT: String(port),
        STUN_PORT: String(port),
        WORKERS: '2',
        REDIS_URL: redis.url,
        REDIS_PREFIX: 'workers:',
        ADMIN_PORT: String(adminPort),
        TLS_CERT: 'cert.pem',
        TLS_KEY: 'key.pem',
        MAX_WAITING_PER_IP: '0',
      },
      dir,
    );
    const running = proc;
    await running.line(/^2 workers listening$/);
    const primary = Number((await running.line(/^starting 2 workers$/)).pid);
    const workerPids = () => [...new Set(lines(running, /^Server listening at https:/).map((line) => Number(line.pid)))];
    // Workers write their log 4 KiB or 200 ms at a time.
    await eventually(() => workerPids().length === 2, 3000, 'two workers listening');
    const origin = `https://127.0.0.1:${port}`;

    // 40 clients on 40 connections, spread over both workers by the primary.
    const answers = await pairUp(origin, 40, 'w');
    expect(answers.map((a) => a.status)).toEqual(Array(40).fill(200));
    const bySelf = new Map(answers.map((a) => [a.self, a]));
    for (const a of answers) expect(bySelf.get(a.peer)?.peer).toBe(a.self);
    expect(await metric(adminPort, 'pairup_matches_total')).toEqual(['pairup_matches_total{pool="w"} 20']);
    expect(await metric(adminPort, 'pairup_requests_total')).toEqual(['pairup_requests_total{status="200"} 40']);
    expect(await metric(adminPort, 'pairup_workers ')).toEqual(['pairup_workers 2']);
    // Each pairing is logged once, by the arrival's worker; both workers paired, some across workers.
    await eventually(() => lines(running, /^paired$/).length === 20, 3000, '20 paired lines');
    const paired = lines(running, /^paired$/);
    expect(new Set(paired.map((line) => line.pid)).size).toBe(2);
    expect(paired.filter((line) => line.across === true).length).toBeGreaterThan(0);

    // STUN: one socket, one UDP port shared by both workers; every request answered exactly once.
    const socket: Socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    let replies = 0;
    socket.on('message', () => replies++);
    for (let i = 0; i < 10; i++) await exchange(socket, port, '127.0.0.1', bindingRequest(randomBytes(12)));
    await new Promise((resolve) => setTimeout(resolve, 200));
    socket.close();
    expect(replies).toBe(10);
    expect(await metric(adminPort, 'pairup_stun_requests_total')).toEqual(['pairup_stun_requests_total 10']);
    const notAfter = Date.parse(new X509Certificate(cert).validTo) / 1000;
    expect(await metric(adminPort, 'pairup_certificate_expiry_timestamp_seconds ')).toEqual([`pairup_certificate_expiry_timestamp_seconds ${notAfter}`]);
    expect((await request(`http://127.0.0.1:${adminPort}/readyz`)).statusCode).toBe(200);
    expect(await (await request(`http://127.0.0.1:${adminPort}/healthz`)).body.json()).toEqual({ status: 'ok', waiting: 0 });

    // SIGHUP reaches every worker: each reloads the certificate.
    running.child.kill('SIGHUP');
    await eventually(() => lines(running, /^certificate reloaded$/).length === 2, 3000, 'two reloads');
    expect(new Set(lines(running, /^certificate reloaded$/).map((line) => line.pid))).toEqual(new Set(workerPids()));

    // A worker killed with -9 is replaced; the pair of workers pairs again.
    const [victim] = workerPids() as [number];
    process.kill(victim, 'SIGKILL');
    const died = await running.line(/^a worker died: starting another$/);
    // The primary's line about a worker names the worker apart from its own pid, once each.
    expect([died.pid, died.workerPid]).toEqual([primary, victim]);
    const diedText = running.stdout.filter((text) => text.includes('"msg":"a worker died: starting another"'));
    expect(diedText.map((text) => text.match(/"pid":/g)?.length)).toEqual([1]);
    await eventually(() => workerPids().length === 3, 5000, 'a third worker');
    const again = await pairUp(origin, 10, 'again');
    expect(again.map((a) => a.status)).toEqual(Array(10).fill(200));
    expect(await metric(adminPort, 'pairup_worker_restarts_total')).toEqual(['pairup_worker_restarts_total 1']);
    expect(await metric(adminPort, 'pairup_workers ')).toEqual(['pairup_workers 2']);

    running.child.kill('SIGTERM');
    expect(await running.exit).toEqual({ code: 0, signal: null });
    expect(workerPids().filter(alive)).toEqual([]);
    expect(alive(primary)).toBe(false);
    expect(running.stdout.filter((line) => /"level":(50|60)/.test(line))).toEqual([]);
    expect(lines(running, /^a worker died: starting another$/).length).toBe(1);
  });

  it('takes --workers from pairup serve', async () => {
    const cli = join(import.meta.dirname, '..', 'src', 'cli.ts');
    const usage = await runNode(['--import', import.meta.resolve('tsx'), cli, 'serve', '--workers', 'two'], dir);
    expect([usage.code, usage.stderr]).toEqual([1, 'pairup: --workers needs a whole number, got "two"\n']);
    const served = spawnServer({ HOST: '127.0.0.1', PORT: '0', TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem' }, dir, [cli, 'serve', '--workers', '3']);
    expect(await served.exit).toEqual({ code: 1, signal: null });
    expect(served.stderr).toBe('pairup: WORKERS is 3, which needs REDIS_URL: workers share pools only through Redis\n');
  });
});
