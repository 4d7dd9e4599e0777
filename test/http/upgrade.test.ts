/**
 * Requests with `Connection: Upgrade` that are not a WebSocket join: answered as plain requests and
 * their connections closed after, so that none outlives IDLE_TIMEOUT_MS (Node no longer times an
 * upgraded connection). Over HTTP/2 an Upgrade header is malformed: reset, and the session timed as usual.
 */
import { connect, type TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { ask, eventually, json, startServer, TestClient, type TestServer } from '../helpers/server.js';

let server: TestServer;
const opened: TLSSocket[] = [];

afterEach(async () => {
  for (const socket of opened.splice(0)) socket.destroy();
  await server.close();
});

interface Exchange {
  readonly socket: TLSSocket;
  /** Everything the server sent, once the server ended the connection (the client never ends it first); rejects after 3 s. */
  readonly closed: Promise<string>;
}

const statusLine = (text: string): string => text.split('\r\n', 1)[0] ?? '';

/** Sends `head` on a new HTTP/1.1 connection; the client keeps its side open. */
function send(head: string): Exchange {
  const socket = connect({ host: '127.0.0.1', port: server.port, ca: server.cert, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
  opened.push(socket);
  socket.once('secureConnect', () => socket.write(head));
  socket.on('error', () => undefined);
  const closed = new Promise<string>((resolve, reject) => {
    let text = '';
    const late = setTimeout(() => reject(new Error(`connection still open after its answer: ${JSON.stringify(statusLine(text))}`)), 3000);
    socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    socket.once('end', () => {
      clearTimeout(late);
      resolve(text);
    });
  });
  return { socket, closed };
}

const bodyOf = (text: string): unknown => JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));
const header = (text: string, name: string): string | undefined =>
  new RegExp(`^${name}: (.*)$`, 'im').exec(text.slice(0, text.indexOf('\r\n\r\n')))?.[1];

function connections(): Promise<number> {
  return new Promise((resolve, reject) => server.app.server.getConnections((error, count) => (error ? reject(error) : resolve(count))));
}

const WS_HEADERS = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

describe('upgrade requests other than a WebSocket join', () => {
  it('are answered and their connections closed: none held past IDLE_TIMEOUT_MS', async () => {
    server = await startServer({ IDLE_TIMEOUT_MS: '300', CORS_ORIGINS: 'https://good.example' });
    const ROUNDS = 10;
    const exchanges = Array.from({ length: ROUNDS }, () => [
      send('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n'),
      send(`GET /nowhere HTTP/1.1\r\nHost: localhost\r\n${WS_HEADERS}\r\n`),
      send(`POST /ws HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n${WS_HEADERS}\r\n`),
      send(`GET /ws HTTP/1.1\r\nHost: localhost\r\nOrigin: https://evil.example\r\n${WS_HEADERS}\r\n`),
    ]).flat();
    const answers = await Promise.all(exchanges.map((exchange) => exchange.closed));
    for (let i = 0; i < answers.length; i += 4) {
      const [health, missing, post, origin] = answers.slice(i, i + 4) as [string, string, string, string];
      expect(statusLine(health)).toBe('HTTP/1.1 200 OK');
      expect(header(health, 'connection')).toBe('close');
      expect(bodyOf(health)).toEqual({ status: 'ok', waiting: 0 });
      expect(statusLine(missing)).toBe('HTTP/1.1 404 Not Found');
      expect(bodyOf(missing)).toEqual({ error: 'not_found', message: 'no route GET /nowhere; try GET / or POST /' });
      expect(statusLine(post)).toBe('HTTP/1.1 405 Method Not Allowed');
      expect(bodyOf(post)).toEqual({ error: 'method_not_allowed', message: 'method POST not allowed on /ws; allowed: GET' });
      expect(statusLine(origin)).toBe('HTTP/1.1 403 Forbidden');
      expect((bodyOf(origin) as { error: string }).error).toBe('origin_not_allowed');
    }
    // The clients never close their side: only the server can have let go of these connections.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await connections()).toBe(0);
  });

  it('lets a request with an Upgrade header wait for a partner, answers it, then closes its connection', async () => {
    server = await startServer({ IDLE_TIMEOUT_MS: '300' });
    const waiter = send('GET /?pool=up HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n');
    await eventually(() => server.app.lobby.waiting === 1);
    const partner = new TestClient(server.origin, server.cert);
    try {
      const answer = await ask(partner.client, server.origin, '/?pool=up', { headers: { accept: 'application/json' } });
      expect(answer.status).toBe(200);
      const text = await waiter.closed;
      expect(statusLine(text)).toBe('HTTP/1.1 200 OK');
      expect((bodyOf(text) as { peer: string }).peer).toBe(json(answer).self);
      await eventually(() => !waiter.socket.readable, 1000, 'the waiter’s connection closed');
    } finally {
      await partner.close();
    }
  });
});

/** An HPACK header field, literal and not indexed (RFC 7541 §6.2.2), for names and values under 128 bytes. */
function literal(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
}

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head.writeUInt8(type, 3);
  head.writeUInt8(flags, 4);
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

describe('Upgrade over HTTP/2', () => {
  it('is a malformed request (a connection-specific header): its stream is reset, and the idle session closed after IDLE_TIMEOUT_MS', async () => {
    // Node's own HTTP/2 client refuses to send such a header: the frames are written by hand.
    server = await startServer({ IDLE_TIMEOUT_MS: '300' });
    const socket = connect({ host: '127.0.0.1', port: server.port, ca: server.cert, servername: 'localhost', ALPNProtocols: ['h2'] });
    opened.push(socket);
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    const headers = Buffer.concat([
      literal(':method', 'GET'),
      literal(':scheme', 'https'),
      literal(':path', '/healthz'),
      literal(':authority', 'localhost'),
      literal('upgrade', 'websocket'),
    ]);
    const SETTINGS = 0x4;
    const HEADERS = 0x1;
    const RST_STREAM = 0x3;
    const END_STREAM_AND_HEADERS = 0x5;
    socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(SETTINGS, 0, 0, Buffer.alloc(0)), frame(HEADERS, END_STREAM_AND_HEADERS, 1, headers)]));
    const frames: { type: number; stream: number; code?: number }[] = [];
    let received = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      while (received.length >= 9 && received.length >= 9 + received.readUIntBE(0, 3)) {
        const length = received.readUIntBE(0, 3);
        const type = received.readUInt8(3);
        frames.push({ type, stream: received.readUInt32BE(5) & 0x7fffffff, ...(type === RST_STREAM ? { code: received.readUInt32BE(9) } : {}) });
        received = received.subarray(9 + length);
      }
    });
    socket.on('error', () => undefined);
    const started = Date.now();
    await new Promise((resolve) => socket.once('close', resolve));
    expect(Date.now() - started).toBeLessThan(2000);
    const PROTOCOL_ERROR = 0x1;
    expect(frames.filter((f) => f.stream === 1)).toEqual([{ type: RST_STREAM, stream: 1, code: PROTOCOL_ERROR }]);
  });
});
