/**
 * HTTP/1.1 pipelining: every request a client sends ahead is answered, in order; answers queued
 * unwritten are bounded (Node stops reading the connection), and a connection holding waiters is
 * read on, so its client leaving is seen at once.
 */
import { connect, type TLSSocket } from 'node:tls';
import autocannon from 'autocannon';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ask, eventually, json, startServer, TestClient, type TestServer } from './helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startServer({ MAX_WAITING_PER_IP: '0' });
});
afterAll(() => server.close());

/** A raw HTTP/1.1 connection: writes what it is given, collects what comes back. */
async function rawConnection(): Promise<{ socket: TLSSocket; received: () => string }> {
  let received = '';
  const socket = connect({ host: '127.0.0.1', port: server.port, ca: server.cert, ALPNProtocols: ['http/1.1'] });
  socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
  socket.on('error', () => undefined);
  await new Promise((resolve) => socket.once('secureConnect', resolve));
  return { socket, received: () => received };
}

function get(path: string, accept = '*/*'): string {
  return `GET ${path} HTTP/1.1\r\nHost: localhost\r\nAccept: ${accept}\r\n\r\n`;
}

/** The status lines of the answers received so far, in order. */
function statusLines(text: string): string[] {
  return text.match(/HTTP\/1\.1 \d{3} [A-Za-z ]+/g) ?? [];
}

describe('HTTP/1.1 pipelining', () => {
  it('answers requests queued behind another instead of taking them for clients gone', async () => {
    const { socket, received } = await rawConnection();
    try {
      socket.write(get('/?pool=piped&timeout=0.3').repeat(3));
      await eventually(() => statusLines(received()).length === 3, 3000, 'three answers');
      expect(statusLines(received())).toEqual(Array(3).fill('HTTP/1.1 408 Request Timeout'));
      expect(received().match(/timeout waiting for peer/g)).toHaveLength(3);
      expect(server.app.lobby.waiting).toBe(0);
    } finally {
      socket.destroy();
    }
  });

  it('answers a waiter, and the requests pipelined behind it, in order once it is paired', async () => {
    const { socket, received } = await rawConnection();
    const partner = new TestClient(server.origin, server.cert);
    try {
      socket.write(get('/?pool=ahead', 'application/json') + get('/healthz') + get('/?pool=behind&timeout=0.2'));
      await eventually(() => server.app.lobby.waiting === 2, 2000, 'both waiters');
      expect(received()).toBe('');
      const paired = json(await ask(partner.client, server.origin, '/?pool=ahead', { headers: { accept: 'application/json' } }));
      await eventually(() => statusLines(received()).length === 3, 2000, 'three answers');
      expect(statusLines(received())).toEqual(['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK', 'HTTP/1.1 408 Request Timeout']);
      const bodies = received().split(/HTTP\/1\.1 /).slice(1).map((answer) => answer.slice(answer.indexOf('\r\n\r\n') + 4));
      expect(JSON.parse(bodies[0] ?? '')).toMatchObject({ pool: 'ahead', peer: `127.0.0.1:${partner.localPort}` });
      expect(JSON.parse(bodies[1] ?? '')).toEqual({ status: 'ok', waiting: 1 });
      expect(bodies[2]).toBe('timeout waiting for peer\n');
      expect(paired.peer).toBe(`127.0.0.1:${socket.localPort}`);
    } finally {
      socket.destroy();
      await partner.close();
    }
  });

  it('answers the waiters 429 once the answers pipelined behind them fill their connection, then answers all of it in order', async () => {
    const { socket, received } = await rawConnection();
    const partner = new TestClient(server.origin, server.cert);
    const queued = 20_000; // 700 KB of requests behind one waiter
    try {
      // The first waiter, five more behind it (in a pool of their own: one connection's requests
      // never pair with each other), then the health checks.
      socket.write(get('/?pool=flood-head', 'application/json') + get('/?pool=flood-more').repeat(5) + get('/healthz').repeat(queued));
      await eventually(() => statusLines(received()).length === queued + 6, 20_000, 'every answer');
      const lines = statusLines(received());
      expect(lines.slice(0, 6)).toEqual(Array<string>(6).fill('HTTP/1.1 429 Too Many Requests'));
      expect(lines.slice(6).every((line) => line === 'HTTP/1.1 200 OK')).toBe(true);
      const head = received().slice(received().indexOf('\r\n\r\n') + 4, received().indexOf('HTTP/1.1 ', 1));
      expect(JSON.parse(head)).toEqual({
        error: 'too_many_pipelined',
        message:
          'the answers pipelined behind this request filled its connection; send requests for a peer on a connection of their own, or wait for answers before sending more',
      });
      // Each health answer was made when its request was read: with up to six waiters, then none.
      expect(received().match(/\{"status":"ok","waiting":[0-6]\}/g)).toHaveLength(queued);
      expect(server.app.lobby.waiting).toBe(0);
      // Nobody was left waiting in either pool: a partner now waits alone.
      for (const pool of ['flood-head', 'flood-more']) expect((await ask(partner.client, server.origin, `/?pool=${pool}&timeout=0.2`)).status).toBe(408);
    } finally {
      socket.destroy();
      await partner.close();
    }
  });

  it('never hands out a waiter whose client left while its connection was not read', async () => {
    const { socket } = await rawConnection();
    const partner = new TestClient(server.origin, server.cert);
    try {
      // The client stops reading: the answers behind its waiter cannot go out either way.
      socket.pause();
      socket.write(get('/?pool=left-behind') + get('/healthz').repeat(2_000));
      await new Promise((resolve) => setTimeout(resolve, 500));
      socket.destroy();
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(server.app.lobby.waiting).toBe(0);
      const answer = await ask(partner.client, server.origin, '/?pool=left-behind&timeout=0.5');
      expect(answer.status).toBe(408);
    } finally {
      socket.destroy();
      await partner.close();
    }
  });

  it('drops every waiter of a connection that pipelined thousands at once when it closes, and stays responsive', async () => {
    const { socket } = await rawConnection();
    const probe = new TestClient(server.origin, server.cert);
    try {
      socket.write(get('/?pool=dropped') + get('/?pool=dropped-too').repeat(2_000));
      await eventually(() => server.app.lobby.waiting === 2_001, 5000, 'every waiter');
      socket.destroy();
      const started = performance.now();
      expect((await ask(probe.client, server.origin, '/healthz')).status).toBe(200);
      expect(performance.now() - started).toBeLessThan(500);
      await eventually(() => server.app.lobby.waiting === 0, 2000, 'nobody waiting');
    } finally {
      socket.destroy();
      await probe.close();
    }
  });

  it('runs autocannon -c 10 -p 10 -d 2 with no error, and keeps pairing throughout', async () => {
    const result = await autocannon({ url: `${server.origin}/?pool=cannon`, connections: 10, pipelining: 10, duration: 2 });
    expect({ errors: result.errors, timeouts: result.timeouts, non2xx: result.non2xx }).toEqual({ errors: 0, timeouts: 0, non2xx: 0 });
    // Before the fix it stalled after about a hundred requests.
    expect(result['2xx']).toBeGreaterThan(1_000);
    await eventually(() => server.app.lobby.waiting === 0, 2000, 'nobody waiting');
    expect(server.warnings()).toEqual([]);
  });
});
