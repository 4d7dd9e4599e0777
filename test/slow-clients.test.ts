/**
 * Slowloris clients are cut off after HEADERS_TIMEOUT_MS and silent connections after
 * IDLE_TIMEOUT_MS; a client legitimately long-polling for longer than either is not.
 */
import http2 from 'node:http2';
import { createConnection, type Socket } from 'node:net';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ask, eventually, json, startServer, TestClient, type TestServer } from './helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  // A silent connection goes after 300 ms; a slow request's headers after 600 ms.
  server = await startServer({ IDLE_TIMEOUT_MS: '300', HEADERS_TIMEOUT_MS: '600' });
});
afterAll(() => server.close());

interface Closed {
  readonly afterMs: number;
  readonly received: string;
}

/** Opens a TLS connection (HTTP/1.1), runs `behave` on it, resolves when the server closes it. */
function tlsConnection(behave: (write: (text: string) => void) => () => void): Promise<Closed> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let stop = (): void => undefined;
    const socket = connect({ host: '127.0.0.1', port: server.port, ca: server.cert, ALPNProtocols: ['http/1.1'] }, () => {
      stop = behave((text) => socket.write(text));
    });
    let received = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    socket.on('close', () => {
      stop();
      resolve({ afterMs: performance.now() - started, received });
    });
    socket.on('error', reject);
  });
}

describe('slow and silent clients', () => {
  it('cuts off a client sending its headers a byte at a time, with a 408', async () => {
    const closed = await tlsConnection((write) => {
      write('GET /?pool=slow HTTP/1.1\r\nHost: localhost\r\n');
      const drip = setInterval(() => write('X'), 50);
      return () => clearInterval(drip);
    });
    expect(closed.afterMs).toBeGreaterThanOrEqual(590);
    expect(closed.afterMs).toBeLessThan(2000);
    const [head = '', body = ''] = closed.received.split('\r\n\r\n');
    expect(head.split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
    expect(JSON.parse(body)).toEqual({ error: 'request_timeout', message: 'the request was not received in time' });
  });

  it('closes a TLS connection that never sends a request, over HTTP/1.1 and HTTP/2', async () => {
    const closed = await tlsConnection(() => () => undefined);
    expect(closed.afterMs).toBeGreaterThanOrEqual(290);
    expect(closed.afterMs).toBeLessThan(590);
    const h2AfterMs = await new Promise<number>((resolve, reject) => {
      const started = performance.now();
      const socket = connect({ host: '127.0.0.1', port: server.port, ca: server.cert, ALPNProtocols: ['h2'] });
      // The server ends the session; a client must read to see it (one that never reads keeps a
      // half-closed socket until it gives up).
      socket.resume();
      socket.on('close', () => resolve(performance.now() - started));
      socket.on('error', reject);
    });
    expect(h2AfterMs).toBeGreaterThanOrEqual(290);
    expect(h2AfterMs).toBeLessThan(590);
  });

  it('leaves an HTTP/1.1 connection to Node\'s parser: the silent-connection watch adds no \'data\' listener', async () => {
    // Any 'data' listener beside Node's own makes its parser read through the socket's JavaScript
    // stream instead of straight from the TLS stream, a cost paid by every request.
    const counted = new Promise<number>((resolve) => server.app.server.once('request', (raw: { socket: Socket }) => resolve(raw.socket.listenerCount('data'))));
    const client = new TestClient(server.origin, server.cert, { h2: false });
    try {
      const answer = await ask(client.client, server.origin, '/healthz');
      expect(answer.status).toBe(200);
      expect(await counted).toBe(1);
    } finally {
      await client.close();
    }
  });

  it('closes a TCP connection that never completes its TLS handshake', async () => {
    const afterMs = await new Promise<number>((resolve, reject) => {
      const started = performance.now();
      const socket = createConnection({ host: '127.0.0.1', port: server.port });
      socket.on('close', () => resolve(performance.now() - started));
      socket.on('error', reject);
    });
    expect(afterMs).toBeGreaterThanOrEqual(290);
    expect(afterMs).toBeLessThan(1000);
  });

  it('closes a keep-alive connection idle after its answer (IDLE_TIMEOUT_MS plus Node\'s one-second margin)', async () => {
    const closed = await tlsConnection((write) => {
      write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
      return () => undefined;
    });
    expect(closed.received.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    expect(closed.received).toContain('Keep-Alive: timeout=0');
    expect(closed.afterMs).toBeGreaterThanOrEqual(1290);
    expect(closed.afterMs).toBeLessThan(2500);
  });

  it('answers 408 and closes an HTTP/1.1 request whose body does not arrive within HEADERS_TIMEOUT_MS', async () => {
    const closed = await tlsConnection((write) => {
      write('POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{');
      return () => undefined;
    });
    expect(closed.afterMs).toBeGreaterThanOrEqual(590);
    expect(closed.afterMs).toBeLessThan(2000);
    const [head = '', body = ''] = closed.received.split('\r\n\r\n');
    expect(head.split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
    expect(JSON.parse(body)).toEqual({ error: 'request_timeout', message: 'the request was not received in time' });
  });

  it('resets an HTTP/2 stream whose body does not arrive within HEADERS_TIMEOUT_MS, then closes the idle session', async () => {
    const session = http2.connect(server.origin, { ca: server.cert });
    try {
      const started = performance.now();
      const stream = session.request({ ':method': 'POST', ':path': '/', 'content-type': 'application/json' }, { endStream: false });
      stream.on('error', () => undefined);
      stream.write('{"pool":');
      const reset = await new Promise<{ afterMs: number; code: number }>((resolve) =>
        stream.once('close', () => resolve({ afterMs: performance.now() - started, code: stream.rstCode })),
      );
      expect(reset.code).toBe(http2.constants.NGHTTP2_CANCEL);
      expect(reset.afterMs).toBeGreaterThanOrEqual(590);
      expect(reset.afterMs).toBeLessThan(1500);
      // No stream left open: the session goes IDLE_TIMEOUT_MS later.
      const sessionAfterMs = await new Promise<number>((resolve) => session.once('close', () => resolve(performance.now() - started)));
      expect(sessionAfterMs - reset.afterMs).toBeGreaterThanOrEqual(250);
      expect(sessionAfterMs - reset.afterMs).toBeLessThan(1000);
      expect(server.app.lobby.waiting).toBe(0);
    } finally {
      session.destroy();
    }
  });

  it('closes an HTTP/2 session whose streams have all ended, IDLE_TIMEOUT_MS after the last', async () => {
    const session = http2.connect(server.origin, { ca: server.cert });
    try {
      const answered = await new Promise<number>((resolve, reject) => {
        const stream = session.request({ ':path': '/healthz' });
        stream.on('error', reject).resume();
        stream.once('close', () => resolve(performance.now()));
      });
      const closedAt = await new Promise<number>((resolve) => session.once('close', () => resolve(performance.now())));
      expect(closedAt - answered).toBeGreaterThanOrEqual(250);
      expect(closedAt - answered).toBeLessThan(1000);
    } finally {
      session.destroy();
    }
  });

  it.each([
    { protocol: 'HTTP/1.1', h2: false },
    { protocol: 'HTTP/2', h2: true },
  ])('never cuts a request waiting longer than the timeout ($protocol)', async ({ h2 }) => {
    const [a, b] = [new TestClient(server.origin, server.cert, { h2 }), new TestClient(server.origin, server.cert, { h2 })];
    try {
      const waiting = ask(a.client, server.origin, '/?pool=patient', { headers: { accept: 'application/json' } });
      await eventually(() => server.app.lobby.waiting === 1);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(server.app.lobby.waiting).toBe(1);
      const second = json(await ask(b.client, server.origin, '/?pool=patient', { headers: { accept: 'application/json' } }));
      const first = json(await waiting);
      expect(first.peer).toBe(`127.0.0.1:${b.localPort}`);
      expect(second.peer).toBe(`127.0.0.1:${a.localPort}`);
      expect(first.waitedMs).toBeGreaterThanOrEqual(1500);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('logged none of it as a warning', () => {
    expect(server.warnings()).toEqual([]);
  });
});
