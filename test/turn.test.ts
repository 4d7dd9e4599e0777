/**
 * TURN credentials in every match, checked against a real coturn (Debian's `coturn`) that the test
 * starts on loopback with deploy/turn/turnserver.conf: a credential from a real match allocates a
 * relay; a tampered, an expired, and a foreign one are refused 401; both secrets work while one is
 * rolled. And the STUN entry of iceServers, over HTTP and WebSocket.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './helpers/process.js';
import { ask, json, startServer, TestClient, type TestServer } from './helpers/server.js';
import { allocate } from './helpers/turn-client.js';
import { openSocket } from './helpers/ws-client.js';

const CONFIG = fileURLToPath(new URL('../deploy/turn/turnserver.conf', import.meta.url));
const [NEW_SECRET, OLD_SECRET] = ['fresh-secret-2026', 'old-secret-2025'];
const JSON_ACCEPT = { headers: { accept: 'application/json' } };

let turn: ChildProcess;
let turnPort: number;
let dir: string;

beforeAll(async () => {
  if (spawnSync('sh', ['-c', 'command -v turnserver']).status !== 0) throw new Error('turnserver is not installed: apt-get install coturn');
  dir = await mkdtemp(join(tmpdir(), 'pairup-turn-'));
  turnPort = await freePort();
  const relayFrom = 40000 + Math.floor(Math.random() * 20000);
  // The deploy configuration as it is; only where it listens, its files, and the secrets (both, as while rolling) are the test's.
  turn = spawn(
    'turnserver',
    [
      '-c', CONFIG,
      '--listening-ip=127.0.0.1', '--relay-ip=127.0.0.1', `--listening-port=${turnPort}`,
      `--min-port=${relayFrom}`, `--max-port=${relayFrom + 50}`,
      '--no-tls', '--no-dtls', `--db=${join(dir, 'turndb')}`, `--pidfile=${join(dir, 'turn.pid')}`, '--log-file=stdout', '--simple-log',
      `--static-auth-secret=${NEW_SECRET}`, `--static-auth-secret=${OLD_SECRET}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  turn.stdout?.resume();
  turn.stderr?.resume();
  // Ready once it answers an Allocate at all (401, asking for credentials).
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (turn.exitCode !== null) throw new Error(`turnserver exited with ${turn.exitCode}`);
    const answered = await allocate('127.0.0.1', turnPort, 'x', 'y', 200).then(() => true, () => false);
    if (answered) break;
    if (Date.now() > deadline) throw new Error('turnserver did not answer within 10 s');
  }
}, 20_000);

afterAll(async () => {
  if (turn.exitCode === null) {
    const exited = new Promise((resolve) => turn.once('exit', resolve));
    turn.kill('SIGTERM');
    await exited;
  }
  await rm(dir, { recursive: true, force: true });
});

/** Two clients paired through `server` by a code; both JSON answers. */
async function match(server: TestServer, code: string): Promise<[Record<string, unknown>, Record<string, unknown>]> {
  const [a, b] = [new TestClient(server.origin, server.cert), new TestClient(server.origin, server.cert)];
  try {
    const first = ask(a.client, server.origin, `/?code=${code}`, JSON_ACCEPT);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const second = await ask(b.client, server.origin, `/?code=${code}`, JSON_ACCEPT);
    return [json(await first), json(second)];
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}

const sign = (secret: string, username: string) => createHmac('sha1', secret).update(username).digest('base64');

describe('TURN credentials in every match, against a real coturn', () => {
  let server: TestServer;
  afterAll(() => server.close());

  it('gives both partners a credential for the match that allocates a relay', async () => {
    server = await startServer({ TURN_URLS: `turn:127.0.0.1:${turnPort}?transport=udp`, TURN_SECRET: `${NEW_SECRET},${OLD_SECRET}` });
    const before = Math.floor(Date.now() / 1000);
    const answers = await match(server, 'turn-ok');
    for (const answer of answers) {
      const [entry] = answer.iceServers as { urls: string[]; username: string; credential: string }[];
      expect(answer.iceServers).toEqual([{ urls: [`turn:127.0.0.1:${turnPort}?transport=udp`], username: entry?.username, credential: entry?.credential }]);
      const [expiry, matchId] = (entry?.username ?? '').split(':');
      expect(matchId).toBe(answer.matchId);
      expect(Number(expiry) - before).toBeGreaterThanOrEqual(300);
      expect(Number(expiry) - before).toBeLessThanOrEqual(302);
      // Signed with the first of the two secrets.
      expect(entry?.credential).toBe(sign(NEW_SECRET, entry?.username ?? ''));
      const result = await allocate('127.0.0.1', turnPort, entry?.username ?? '', entry?.credential ?? '');
      expect(result.ok).toBe(true);
      if (result.ok) expect(result.relayed).toMatch(/^127\.0\.0\.1:\d+$/);
    }
    // The secret itself is in no log line.
    expect(JSON.stringify(server.logs)).not.toContain(NEW_SECRET);
  });

  it('is refused (401) tampered, signed with another secret, or expired; the old secret still works while rolled', async () => {
    const [answer] = await match(server, 'turn-refused');
    const [entry] = answer.iceServers as { username: string; credential: string }[];
    const username = entry?.username ?? '';
    const credential = entry?.credential ?? '';
    // The first character changed: it carries six bits of the signature (the last one before '=' carries
    // only four, so two spellings of it decode to the same bytes).
    const tampered = `${credential.startsWith('A') ? 'B' : 'A'}${credential.slice(1)}`;
    expect(tampered).not.toBe(credential);
    expect(await allocate('127.0.0.1', turnPort, username, tampered)).toMatchObject({ ok: false, code: 401 });
    expect(await allocate('127.0.0.1', turnPort, username, sign('some-other-secret', username))).toMatchObject({ ok: false, code: 401 });
    // Another match's id under this match's signature: the username is what is signed.
    const [expiry] = username.split(':');
    expect(await allocate('127.0.0.1', turnPort, `${expiry}:another-match`, credential)).toMatchObject({ ok: false, code: 401 });
    // A client given a credential signed with the old secret (before the roll) still gets its relay.
    expect((await allocate('127.0.0.1', turnPort, username, sign(OLD_SECRET, username))).ok).toBe(true);

    const shortLived = await startServer({ TURN_URLS: `turn:127.0.0.1:${turnPort}`, TURN_SECRET: NEW_SECRET, TURN_TTL_S: '1' });
    try {
      const [late] = await match(shortLived, 'turn-expired');
      const [lateEntry] = late.iceServers as { username: string; credential: string }[];
      await new Promise((resolve) => setTimeout(resolve, 2100));
      expect(await allocate('127.0.0.1', turnPort, lateEntry?.username ?? '', lateEntry?.credential ?? '')).toMatchObject({ ok: false, code: 401 });
    } finally {
      await shortLived.close();
    }
  });
});

describe('the STUN entry of iceServers', () => {
  it('names the STUN responder at the host the request was sent to, or PUBLIC_HOST, over HTTP and WebSocket', async () => {
    const own = await startServer({}, '127.0.0.1', { stunPort: () => 3478 });
    const named = await startServer({ PUBLIC_HOST: 'pairup.example', TURN_URLS: 'turns:turn.example:5349?transport=tcp', TURN_SECRET: NEW_SECRET }, '127.0.0.1', {
      stunPort: () => 3479,
    });
    try {
      const [a, b] = await match(own, 'stun-own');
      expect([a.iceServers, b.iceServers]).toEqual([[{ urls: 'stun:127.0.0.1:3478' }], [{ urls: 'stun:127.0.0.1:3478' }]]);
      const [c] = await match(named, 'stun-named');
      const [, turnEntry] = c.iceServers as unknown[];
      expect(c.iceServers).toEqual([{ urls: 'stun:pairup.example:3479' }, turnEntry]);
      expect(turnEntry).toMatchObject({ urls: ['turns:turn.example:5349?transport=tcp'] });
      // Over the WebSocket, the same in `matched`.
      const x = await openSocket(own.origin, own.cert);
      x.send({ type: 'join', code: 'stun-ws' });
      expect(await x.next()).toEqual({ type: 'queued' });
      const y = await openSocket(own.origin, own.cert);
      y.send({ type: 'join', code: 'stun-ws' });
      const [mx, my] = [await x.next(), await y.next()];
      expect([mx.iceServers, my.iceServers]).toEqual([[{ urls: 'stun:127.0.0.1:3478' }], [{ urls: 'stun:127.0.0.1:3478' }]]);
      x.socket.terminate();
      y.socket.terminate();
      // The text answer for curl does not change: the address alone.
      const [p, q] = [new TestClient(own.origin, own.cert), new TestClient(own.origin, own.cert)];
      const first = ask(p.client, own.origin, '/?code=stun-text');
      await new Promise((resolve) => setTimeout(resolve, 50));
      const text = await ask(q.client, own.origin, '/?code=stun-text');
      expect(text.text).toMatch(/^127\.0\.0\.1:\d+\n$/);
      await first;
      await Promise.all([p.close(), q.close()]);
    } finally {
      await Promise.all([own.close(), named.close()]);
    }
  });
});
