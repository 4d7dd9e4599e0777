import { createSocket } from 'node:dgram';
import { request } from 'undici';
import { createHmac, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import http2 from 'node:http2';
import { connect, type TLSSocket } from 'node:tls';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort, runCommand, spawnServer, type ServerProcess } from './helpers/process.js';
import { ask, json, testCertificate, TestClient } from './helpers/server.js';
import { bindingRequest, exchange, readResponse } from './helpers/stun-client.js';

let dir: string;
let running: ServerProcess | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairup-main-'));
});
afterEach(async () => {
  if (running !== undefined && running.child.exitCode === null) running.child.kill('SIGKILL');
  running = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** Start with a certificate written to the temp dir, on an ephemeral loopback port. */
async function start(env: Record<string, string> = {}): Promise<{ proc: ServerProcess; origin: string; cert: string }> {
  const { cert, key } = await testCertificate();
  await writeFile(join(dir, 'cert.pem'), cert);
  await writeFile(join(dir, 'key.pem'), key);
  const proc = spawnServer(
    { HOST: '127.0.0.1', PORT: '0', TLS_CERT: join(dir, 'cert.pem'), TLS_KEY: join(dir, 'key.pem'), ...env },
    dir,
  );
  running = proc;
  const port = await proc.port;
  return { proc, origin: `https://127.0.0.1:${port}`, cert };
}

/** A request whose body never finishes: the server must not wait for it at shutdown. */
function halfSentPost(origin: string, cert: string, protocol: 'h1' | 'h2'): Promise<void> {
  const { hostname, port } = new URL(origin);
  if (protocol === 'h2') {
    return new Promise((resolve, reject) => {
      const session = http2.connect(origin, { ca: cert });
      session.on('error', () => undefined).once('error', reject);
      const stream = session.request({ ':method': 'POST', ':path': '/', 'content-type': 'application/json' }, { endStream: false });
      stream.on('error', () => undefined);
      stream.write('{', () => resolve());
    });
  }
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), ca: cert, ALPNProtocols: ['http/1.1'] }, () => {
      socket.write('POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{');
      resolve();
    });
    socket.on('error', () => undefined);
    socket.once('error', reject);
  });
}

/**
 * A waiter on an HTTP/2 session that grants the server no flow-control window: the server cannot
 * send the body of its 503 at shutdown, so close() waits (until the grace) for a client that does
 * not read. Resolves once the request is waiting.
 */
function unreadingWaiter(origin: string, cert: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(origin, { ca: cert, settings: { initialWindowSize: 0 } });
    session.on('error', () => undefined).once('error', reject);
    const stream = session.request({ ':path': '/?pool=unread' });
    stream.on('error', () => undefined);
    // The server's own PING answer tells that the request has been read.
    stream.once('ready', () => setTimeout(resolve, 200));
  });
}

describe('start-up errors: one line naming the variable, exit 1, no stack trace', () => {
  it.each([
    [{ PORT: 'abc' }, 'pairup: PORT must be a whole number from 0 to 65535, got "abc"\n'],
    [{ MATCH_TIMEOUT_MS: '0' }, 'pairup: MATCH_TIMEOUT_MS must be a whole number from 1 to 86400000, got "0"\n'],
    [{ LOG_LEVEL: 'loud' }, 'pairup: LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "loud"\n'],
    [{ TLS_CERT: 'cert.pem' }, 'pairup: TLS_KEY must be set too: TLS_CERT and TLS_KEY go together\n'],
    [
      { NODE_ENV: 'production' },
      'pairup: TLS_CERT and TLS_KEY must be set when NODE_ENV=production (no development certificate)\n',
    ],
  ])('%j', async (env, message) => {
    const proc = spawnServer({ HOST: '127.0.0.1', PORT: '0', ...env }, dir);
    running = proc;
    expect(await proc.exit).toEqual({ code: 1, signal: null });
    expect(proc.stderr).toBe(message);
  });

  it('names an unreadable certificate file', async () => {
    const proc = spawnServer({ HOST: '127.0.0.1', PORT: '0', TLS_CERT: 'missing.pem', TLS_KEY: 'missing-key.pem' }, dir);
    running = proc;
    expect(await proc.exit).toEqual({ code: 1, signal: null });
    expect(proc.stderr).toMatch(/^pairup: TLS_(CERT|KEY) cannot be read: ENOENT: no such file or directory, open 'missing(-key)?\.pem'\n$/);
  });

  it.each([
    ['garbage certificate', 'cert', 'not a certificate\n', /^pairup: TLS_CERT \(cert\.pem\) is not a PEM certificate \(.+\)\n$/],
    ['garbage key', 'key', 'not a key\n', /^pairup: TLS_KEY \(key\.pem\) is not a PEM private key \(.+\)\n$/],
    [
      'an RSA key with an EC certificate',
      'key',
      'rsa',
      /^pairup: TLS_KEY \(key\.pem\) does not belong to the certificate in TLS_CERT \(an RSA key for an EC certificate\)\n$/,
    ],
    [
      'another EC key',
      'key',
      'ec',
      /^pairup: TLS_KEY \(key\.pem\) does not belong to the certificate in TLS_CERT \(another EC key\)\n$/,
    ],
  ] as const)('checks the certificate pair before listening: %s', async (_what, which, content, message) => {
    const { cert, key } = await testCertificate();
    const pair =
      content === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : content === 'ec'
          ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
          : undefined;
    const other = pair === undefined ? content : pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    await writeFile(join(dir, 'cert.pem'), which === 'cert' ? other : cert);
    await writeFile(join(dir, 'key.pem'), which === 'key' ? other : key);
    const proc = spawnServer({ HOST: '127.0.0.1', PORT: '0', TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem' }, dir);
    running = proc;
    expect(await proc.exit).toEqual({ code: 1, signal: null });
    expect(proc.stderr).toMatch(message);
  });

  it('reads .env from the working directory', async () => {
    await writeFile(join(dir, '.env'), 'MAX_WAITING=lots\n');
    const proc = spawnServer({ HOST: '127.0.0.1', PORT: '0' }, dir);
    running = proc;
    expect(await proc.exit).toEqual({ code: 1, signal: null });
    expect(proc.stderr).toBe('pairup: MAX_WAITING must be a whole number from 1 to 10000000, got "lots"\n');
  });

  it('warns about unknown variables in .env and misspelt ones in the environment, then starts', async () => {
    await writeFile(join(dir, '.env'), 'MATCH_TIMOUT_MS=20000\nGREETING=hello\nMAX_WAITING=50\n');
    const { proc } = await start({ MAX_WAITNG: '5', HOME: '/root' });
    expect(proc.stderr).toBe(
      'pairup: warning: .env sets MATCH_TIMOUT_MS, which is not a pairup setting: it is ignored; did you mean MATCH_TIMEOUT_MS?\n' +
        'pairup: warning: .env sets GREETING, which is not a pairup setting: it is ignored\n' +
        'pairup: warning: the environment sets MAX_WAITNG, which is not a pairup setting: it is ignored; did you mean MAX_WAITING?\n',
    );
    proc.child.kill('SIGTERM');
    expect(await proc.exit).toEqual({ code: 0, signal: null });
  });

  it('names a port already in use', async () => {
    const { origin } = await start();
    const port = new URL(origin).port;
    const second = spawnServer({ HOST: '127.0.0.1', PORT: port, TLS_CERT: join(dir, 'cert.pem'), TLS_KEY: join(dir, 'key.pem') }, dir);
    expect(await second.exit).toEqual({ code: 1, signal: null });
    expect(second.stderr).toBe(`pairup: cannot listen on 127.0.0.1:${port}: listen EADDRINUSE: address already in use 127.0.0.1:${port}\n`);
  });
});

describe('HOST', () => {
  it('listens on IPv4 and IPv6 by default, HTTPS and STUN alike', async () => {
    const { cert, key } = await testCertificate();
    await writeFile(join(dir, 'cert.pem'), cert);
    await writeFile(join(dir, 'key.pem'), key);
    const proc = spawnServer({ PORT: '0', TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem' }, dir);
    running = proc;
    const port = await proc.port;
    for (const origin of [`https://127.0.0.1:${port}`, `https://[::1]:${port}`, `https://localhost:${port}`]) {
      const client = new TestClient(origin, cert);
      try {
        expect([origin, (await ask(client.client, origin, '/healthz')).status]).toEqual([origin, 200]);
      } finally {
        await client.close();
      }
    }
    for (const [type, host, family] of [['udp4', '127.0.0.1', 1], ['udp6', '::1', 2]] as const) {
      const socket = createSocket(type);
      try {
        await new Promise<void>((resolve) => socket.bind(0, host, resolve));
        const transaction = randomBytes(12);
        const mapped = readResponse(await exchange(socket, port, host, bindingRequest(transaction)));
        expect([mapped.family, mapped.port]).toEqual([family, socket.address().port]);
      } finally {
        socket.close();
      }
    }
    proc.child.kill('SIGTERM');
    expect(await proc.exit).toEqual({ code: 0, signal: null });
  });
});

describe('STUN responder', () => {
  it('answers on the HTTPS port number by default, and closes with the server', async () => {
    const { proc, origin } = await start();
    const port = Number(new URL(origin).port);
    expect((await proc.line(/^STUN responder listening/)).port).toBe(port);
    const socket = createSocket('udp4');
    try {
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
      const transaction = randomBytes(12);
      const mapped = readResponse(await exchange(socket, port, '127.0.0.1', bindingRequest(transaction)));
      expect(mapped).toEqual({
        type: 0x0101,
        transaction: transaction.toString('hex'),
        family: 1,
        address: '127.0.0.1',
        port: socket.address().port,
      });
    } finally {
      socket.close();
    }
    proc.child.kill('SIGTERM');
    expect(await proc.exit).toEqual({ code: 0, signal: null });
  });

  it("names itself in every match's iceServers, with TURN credentials signed with TURN_SECRET_FILE's first secret", async () => {
    await writeFile(join(dir, 'turn-secret'), 'file-secret-1\nfile-secret-0\n');
    const { proc, origin, cert } = await start({ TURN_URLS: 'turn:turn.example:3478', TURN_SECRET_FILE: join(dir, 'turn-secret') });
    const port = Number(new URL(origin).port);
    await proc.line(/^STUN responder listening/);
    const [a, b] = [new TestClient(origin, cert), new TestClient(origin, cert)];
    const first = ask(a.client, origin, '/?code=ice', { headers: { accept: 'application/json' } });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const answer = json(await ask(b.client, origin, '/?code=ice', { headers: { accept: 'application/json' } }));
    await first;
    await Promise.all([a.close(), b.close()]);
    const [, turn] = answer.iceServers as { username: string; credential: string }[];
    expect(answer.iceServers).toEqual([
      { urls: `stun:127.0.0.1:${port}` },
      { urls: ['turn:turn.example:3478'], username: turn?.username, credential: createHmac('sha1', 'file-secret-1').update(turn?.username ?? '').digest('base64') },
    ]);
    expect(proc.stdout.join('\n')).not.toContain('file-secret');
    proc.child.kill('SIGTERM');
    expect(await proc.exit).toEqual({ code: 0, signal: null });
  });

  it('names an unreadable TURN_SECRET_FILE, and exits 1', async () => {
    const proc = spawnServer({ HOST: '127.0.0.1', PORT: '0', TURN_URLS: 'turn:turn.example', TURN_SECRET_FILE: 'no-such-secret' }, dir);
    running = proc;
    expect(await proc.exit).toEqual({ code: 1, signal: null });
    expect(proc.stderr).toBe("pairup: TURN_SECRET_FILE cannot be read: ENOENT: no such file or directory, open 'no-such-secret'\n");
  });

  it('is off with STUN_PORT=0', async () => {
    const { proc } = await start({ STUN_PORT: '0' });
    proc.child.kill('SIGTERM');
    expect(await proc.exit).toEqual({ code: 0, signal: null });
    expect(proc.stdout.filter((line) => line.includes('STUN'))).toEqual([]);
  });

  it('names a UDP port already in use, and exits 1', async () => {
    const taken = createSocket('udp4');
    await new Promise<void>((resolve) => taken.bind(0, '127.0.0.1', resolve));
    const port = taken.address().port;
    try {
      const { cert, key } = await testCertificate();
      await writeFile(join(dir, 'cert.pem'), cert);
      await writeFile(join(dir, 'key.pem'), key);
      const second = spawnServer(
        { HOST: '127.0.0.1', PORT: '0', STUN_PORT: String(port), TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem' },
        dir,
      );
      running = second;
      expect(await second.exit).toEqual({ code: 1, signal: null });
      expect(second.stderr).toBe(
        `pairup: cannot listen for STUN on UDP 127.0.0.1:${port}: bind EADDRINUSE 127.0.0.1:${port}\n`,
      );
    } finally {
      taken.close();
    }
  });
});

describe('STUN_ALT_PORT', () => {
  it('names the alternate port when it is taken, and exits 1 (the HTTPS and STUN ports closed again)', async () => {
    const taken = createSocket('udp4');
    await new Promise<void>((resolve) => taken.bind(0, '127.0.0.1', resolve));
    const port = taken.address().port;
    try {
      const { cert, key } = await testCertificate();
      await writeFile(join(dir, 'cert.pem'), cert);
      await writeFile(join(dir, 'key.pem'), key);
      const second = spawnServer({ HOST: '127.0.0.1', PORT: '0', STUN_ALT_PORT: String(port), TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem' }, dir);
      running = second;
      expect(await second.exit).toEqual({ code: 1, signal: null });
      expect(second.stderr).toBe(`pairup: cannot listen for STUN on UDP 127.0.0.1:${port}: bind EADDRINUSE 127.0.0.1:${port}\n`);
    } finally {
      taken.close();
    }
  });
});

describe('admin listener', () => {
  it('serves /readyz and /metrics on ADMIN_HOST:ADMIN_PORT while the server runs', async () => {
    const adminPort = await freePort();
    const { proc } = await start({ ADMIN_HOST: '127.0.0.1', ADMIN_PORT: String(adminPort) });
    await proc.line(new RegExp(`^Server listening at http://127\\.0\\.0\\.1:${adminPort}$`));
    const ready = await request(`http://127.0.0.1:${adminPort}/readyz`);
    expect([ready.statusCode, await ready.body.text()]).toEqual([200, '{"status":"ready"}']);
    const scrape = await request(`http://127.0.0.1:${adminPort}/metrics`);
    expect(await scrape.body.text()).toContain('pairup_waiting');
    proc.child.kill('SIGTERM');
    expect(await proc.exit).toEqual({ code: 0, signal: null });
  });

  it('names an admin port already in use, and exits 1', async () => {
    const adminPort = await freePort();
    const { proc } = await start({ ADMIN_PORT: String(adminPort) });
    await proc.line(new RegExp(`^Server listening at http://127\\.0\\.0\\.1:${adminPort}$`));
    const second = spawnServer(
      { HOST: '127.0.0.1', PORT: '0', STUN_PORT: '0', ADMIN_PORT: String(adminPort), TLS_CERT: join(dir, 'cert.pem'), TLS_KEY: join(dir, 'key.pem') },
      dir,
    );
    expect(await second.exit).toEqual({ code: 1, signal: null });
    expect(second.stderr).toBe(
      `pairup: cannot listen for admin on 127.0.0.1:${adminPort}: listen EADDRINUSE: address already in use 127.0.0.1:${adminPort}\n`,
    );
  });

  it('says not ready from the first shutdown signal, while the server is still closing', async () => {
    const adminPort = await freePort();
    const { proc, origin, cert } = await start({ ADMIN_PORT: String(adminPort), SHUTDOWN_GRACE_MS: '3000' });
    await proc.line(new RegExp(`^Server listening at http://127\\.0\\.0\\.1:${adminPort}$`));
    await unreadingWaiter(origin, cert); // keeps close() waiting until the grace expires
    proc.child.kill('SIGTERM');
    await proc.line(/^shutting down$/);
    const ready = await request(`http://127.0.0.1:${adminPort}/readyz`);
    expect([ready.statusCode, await ready.body.text()]).toEqual([503, '{"status":"not ready"}']);
    expect(await proc.exit).toEqual({ code: 1, signal: null });
  });
});

describe('file descriptors', () => {
  it('refuses connections while out of file descriptors, keeps its waiters, and recovers', async () => {
    const { proc, origin, cert } = await start({ STUN_PORT: '0', MAX_EVENT_LOOP_DELAY_MS: '1000' });
    const pid = proc.child.pid ?? 0;
    const waiter = new TestClient(origin, cert);
    const partner = new TestClient(origin, cert);
    const flood: TLSSocket[] = [];
    try {
      const waiting = ask(waiter.client, origin, '/?pool=descriptors', { headers: { accept: 'application/json' } });
      await proc.line(/^Server listening/);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const open = (await readdir(`/proc/${pid}/fd`)).length;
      const limit = open + 10;
      expect((await runCommand('prlimit', ['--pid', String(pid), `--nofile=${limit}:${limit}`])).code).toBe(0);
      const { hostname, port } = new URL(origin);
      let refused = 0;
      for (let i = 0; i < 60; i++) {
        const socket = connect({ host: hostname, port: Number(port), ca: cert, ALPNProtocols: ['http/1.1'] }, () => {
          socket.write(`GET /?pool=flood-${i} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
        });
        socket.on('error', () => refused++);
        flood.push(socket);
      }
      // Past several looks of the event-loop watch, the sampler that used to crash here.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      expect(proc.child.exitCode).toBe(null);
      expect(refused).toBeGreaterThan(0);
      for (const socket of flood) socket.destroy();
      await new Promise((resolve) => setTimeout(resolve, 300));

      const paired = json(await ask(partner.client, origin, '/?pool=descriptors', { headers: { accept: 'application/json' } }));
      expect(paired.peer).toBe(`127.0.0.1:${waiter.localPort}`);
      expect(json(await waiting).peer).toBe(`127.0.0.1:${partner.localPort}`);
      expect(proc.stderr).toBe('');
    } finally {
      for (const socket of flood) socket.destroy();
      await Promise.all([waiter.close(), partner.close()]);
    }
  });
});

describe('development certificate', () => {
  it('is created under certs/, logged with a curl command, and serves', async () => {
    const proc = spawnServer({ HOST: '127.0.0.1', PORT: '0' }, dir);
    running = proc;
    const port = await proc.port;
    const hint = await proc.line(/^development certificate in use/);
    expect(hint.msg).toBe(`development certificate in use; try: curl --cacert certs/dev-cert.pem https://localhost:${port}/`);
    const cert = await readFile(join(dir, 'certs', 'dev-cert.pem'), 'utf8');
    expect((await stat(join(dir, 'certs', 'dev-key.pem'))).mode & 0o777).toBe(0o600);
    const client = new TestClient(`https://localhost:${port}`, cert);
    try {
      const health = await ask(client.client, `https://localhost:${port}`, '/healthz');
      expect(health.status).toBe(200);
    } finally {
      await client.close();
    }
    proc.child.kill('SIGTERM');
    expect(await proc.exit).toEqual({ code: 0, signal: null });
  });

  it('covers DEV_CERT_HOSTS too, and says how to trust it', async () => {
    const proc = spawnServer({ HOST: '127.0.0.1', PORT: '0', DEV_CERT_HOSTS: 'laptop.lan,192.168.1.20' }, dir);
    running = proc;
    await proc.port;
    const hint = await proc.line(/^browsers warn/);
    expect([hint.msg, hint.hosts]).toEqual([
      'browsers warn about the development certificate until certs/dev-cert.pem is trusted (certs/README.md); it covers localhost, 127.0.0.1, ::1, laptop.lan, 192.168.1.20; DEV_CERT_HOSTS adds names and addresses',
      ['localhost', '127.0.0.1', '::1', 'laptop.lan', '192.168.1.20'],
    ]);
    const cert = new X509Certificate(await readFile(join(dir, 'certs', 'dev-cert.pem'), 'utf8'));
    expect(cert.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:laptop.lan, IP Address:192.168.1.20');
    proc.child.kill('SIGTERM');
    expect(await proc.exit).toEqual({ code: 0, signal: null });
  });
});

describe('signals', () => {
  it('SIGTERM answers every waiter 503 once and exits 0', async () => {
    const { proc, origin, cert } = await start();
    const h1 = new TestClient(origin, cert);
    const h2 = new TestClient(origin, cert, { h2: true });
    const observer = new TestClient(origin, cert);
    try {
      const answers = Promise.all([
        ask(h1.client, origin, '/?pool=a'),
        ask(h2.client, origin, '/?pool=b', { headers: { accept: 'application/json' } }),
        ask(h2.client, origin, '/?pool=c'),
      ]);
      // Wait until all three are queued, as the server itself reports.
      for (;;) {
        const health = await ask(observer.client, origin, '/healthz');
        if ((JSON.parse(health.text) as { waiting: number }).waiting === 3) break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const started = Date.now();
      proc.child.kill('SIGTERM');
      const [a, b, c] = await answers;
      expect([a.status, a.text]).toEqual([503, 'server shutting down\n']);
      expect([b.status, JSON.parse(b.text)]).toEqual([503, { error: 'shutting_down', message: 'server shutting down' }]);
      expect([c.status, c.text]).toEqual([503, 'server shutting down\n']);
      expect(await proc.exit).toEqual({ code: 0, signal: null });
      expect(Date.now() - started).toBeLessThan(10_000);
      const logged = proc.stdout.map((line) => JSON.parse(line) as { level: number; msg: string; waiters?: number });
      expect(logged.filter((line) => line.level >= 40)).toEqual([]);
      expect(logged.find((line) => line.msg === 'shutting down: answered every waiter')?.waiters).toBe(3);
    } finally {
      await Promise.all([h1.close(), h2.close(), observer.close()]);
    }
  });

  it('a second signal exits at once', async () => {
    const { proc, origin, cert } = await start({ SHUTDOWN_GRACE_MS: '60000' });
    await unreadingWaiter(origin, cert);
    proc.child.kill('SIGTERM');
    await proc.line(/^shutting down$/);
    const started = Date.now();
    proc.child.kill('SIGINT');
    expect(await proc.exit).toEqual({ code: 1, signal: null });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(proc.stdout.some((line) => line.includes('second signal: exiting now'))).toBe(true);
  });

  it('exits 1 when closing takes longer than SHUTDOWN_GRACE_MS', async () => {
    const { proc, origin, cert } = await start({ SHUTDOWN_GRACE_MS: '300' });
    await unreadingWaiter(origin, cert);
    const started = Date.now();
    proc.child.kill('SIGTERM');
    expect(await proc.exit).toEqual({ code: 1, signal: null });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(proc.stdout.some((line) => line.includes('shutdown grace expired: exiting'))).toBe(true);
  });

  it.each(['h1', 'h2'] as const)('a request whose body never arrives does not hold up shutdown (%s)', async (protocol) => {
    const { proc, origin, cert } = await start({ SHUTDOWN_GRACE_MS: '20000', HEADERS_TIMEOUT_MS: '20000' });
    await halfSentPost(origin, cert, protocol);
    const started = Date.now();
    proc.child.kill('SIGTERM');
    expect(await proc.exit).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
