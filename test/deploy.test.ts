/**
 * The scale-out example of deploy/scale-out, run as it is: HAProxy with that very haproxy.cfg in
 * front of two pairup processes sharing one redis-server, all started by the test on loopback.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, spawnServer, type ServerProcess } from './helpers/process.js';
import { startRedis, type RedisServer } from './helpers/redis.js';
import { ask, eventually, testCertificate, TestClient } from './helpers/server.js';

const CONFIG = fileURLToPath(new URL('../deploy/scale-out/haproxy.cfg', import.meta.url));

const stops: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const stop of stops.reverse()) await stop();
});

function parsed(proc: ServerProcess, msg: string): Record<string, unknown>[] {
  return proc.stdout.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.msg === msg);
}

describe('deploy/scale-out: HAProxy, two pairup processes, one Redis', () => {
  it('pairs clients of both processes with each other, each told its partner’s real address and port', async () => {
    if (spawnSync('sh', ['-c', 'command -v haproxy']).status !== 0) throw new Error('haproxy is not installed: apt-get install haproxy');
    const redis: RedisServer = await startRedis();
    stops.push(() => redis.stop());
    const dir = await mkdtemp(join(tmpdir(), 'pairup-deploy-'));
    stops.push(() => rm(dir, { recursive: true, force: true }));
    const { cert, key } = await testCertificate();
    await writeFile(join(dir, 'cert.pem'), cert);
    await writeFile(join(dir, 'key.pem'), key);

    const backends = await Promise.all(
      [1, 2].map(async () => {
        const [port, admin] = [await freePort(), await freePort()];
        const proc = spawnServer(
          {
            HOST: '127.0.0.1',
            PORT: String(port),
            STUN_PORT: '0',
            TLS_CERT: 'cert.pem',
            TLS_KEY: 'key.pem',
            PROXY_PROTOCOL: 'on',
            TRUST_PROXY: '127.0.0.1',
            REDIS_URL: redis.url,
            ADMIN_HOST: '127.0.0.1',
            ADMIN_PORT: String(admin),
          },
          dir,
        );
        stops.push(async () => {
          proc.child.kill('SIGTERM');
          return proc.exit;
        });
        await proc.port;
        return { proc, port, admin };
      }),
    );
    const front = await freePort();
    const [one, two] = backends as [(typeof backends)[0], (typeof backends)[0]];
    const haproxy = spawn('haproxy', ['-db', '-f', CONFIG], {
      env: {
        PATH: process.env.PATH ?? '',
        PAIRUP_BIND: `127.0.0.1:${front}`,
        PAIRUP_1: `127.0.0.1:${one.port}`,
        PAIRUP_1_ADMIN: String(one.admin),
        PAIRUP_2: `127.0.0.1:${two.port}`,
        PAIRUP_2_ADMIN: String(two.admin),
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let haproxyErrors = '';
    haproxy.stderr.setEncoding('utf8').on('data', (chunk: string) => (haproxyErrors += chunk));
    stops.push(
      () =>
        new Promise((resolve) => {
          if (haproxy.exitCode !== null) return resolve(undefined);
          haproxy.once('exit', resolve);
          haproxy.kill('SIGTERM');
        }),
    );
    for (const backend of backends) expect((await request(`http://127.0.0.1:${backend.admin}/readyz`)).statusCode).toBe(200);
    // Both servers pass HAProxy's first health check (every second).
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(haproxy.exitCode).toBe(null);

    const origin = `https://127.0.0.1:${front}`;
    const json = { headers: { accept: 'application/json' } };
    const answers: { status: number; body: { self: string; peer: string; via: string }; port: number | undefined }[] = [];
    // Six pairs, one after another: the first of each waits on one process; leastconn sends the
    // second, on a connection of its own, to the other process.
    for (let pair = 0; pair < 6; pair++) {
      const [first, second] = [new TestClient(origin, cert), new TestClient(origin, cert)];
      const waiting = ask(first.client, origin, '/?pool=deploy&timeout=5', json);
      await new Promise((resolve) => setTimeout(resolve, 150));
      const arriving = ask(second.client, origin, '/?pool=deploy&timeout=5', json);
      for (const [client, answer] of [[first, await waiting], [second, await arriving]] as const) {
        answers.push({ status: answer.status, body: JSON.parse(answer.text) as (typeof answers)[0]['body'], port: client.localPort });
      }
      await Promise.all([first.close(), second.close()]);
    }
    expect(answers.map((a) => a.status)).toEqual(Array(12).fill(200));
    // Each client is told its own address as its own socket has it (through the PROXY header), and pairs are mutual.
    for (const a of answers) expect([a.body.self, a.body.via]).toEqual([`127.0.0.1:${a.port}`, 'socket']);
    const bySelf = new Map(answers.map((a) => [a.body.self, a.body]));
    for (const a of answers) expect(bySelf.get(a.body.peer)?.peer).toBe(a.body.self);
    // Every pair spans the two processes (so both took clients): the arrival's process logs it, `across`.
    await eventually(() => parsed(one.proc, 'paired').length + parsed(two.proc, 'paired').length === 6, 3000, 'six paired lines');
    const lines = [...parsed(one.proc, 'paired'), ...parsed(two.proc, 'paired')];
    expect(lines.map((line) => line.across)).toEqual(Array(6).fill(true));
    expect(haproxyErrors.split('\n').filter((line) => /ALERT/.test(line))).toEqual([]);
  }, 30_000);
});
