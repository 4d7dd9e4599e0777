import { connect } from 'node:tls';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ask, json, startServer, type TestServer } from '../../helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(() => server.close());

/** Writes raw bytes over TLS (HTTP/1.1 by ALPN) and reads until the server closes. */
function raw(bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: '127.0.0.1', port: server.port, ca: server.cert, ALPNProtocols: ['http/1.1'] },
      () => socket.write(bytes),
    );
    let received = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    socket.on('close', () => resolve(received));
    socket.on('error', reject);
  });
}

function parse(response: string): { statusLine: string; body: unknown } {
  const [head = '', body = ''] = response.split('\r\n\r\n');
  return { statusLine: head.split('\r\n')[0] ?? '', body: JSON.parse(body) };
}

describe('malformed requests', () => {
  it('answers bytes that are not HTTP with a JSON 400 and closes the connection', async () => {
    expect(parse(await raw('GARBAGE\r\n\r\n'))).toEqual({
      statusLine: 'HTTP/1.1 400 Bad Request',
      body: { error: 'malformed_request', message: 'malformed HTTP request (HPE_INVALID_METHOD)' },
    });
  });

  it('answers oversized headers with 431', async () => {
    const big = `GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`;
    expect(parse(await raw(big))).toEqual({
      statusLine: 'HTTP/1.1 431 Request Header Fields Too Large',
      body: { error: 'headers_too_large', message: 'request headers are too large' },
    });
  });

  it('answers a URL that cannot be decoded with a JSON 400', async () => {
    const agent = new Agent({ connect: { ca: server.cert } });
    try {
      const answer = await ask(agent, server.origin, '/%zz?pool=a');
      expect(answer.status).toBe(400);
      expect(json(answer)).toEqual({ error: 'invalid_url', message: "the URL is not valid: '/%zz?pool=a'" });
      expect(answer.headers['x-content-type-options']).toBe('nosniff');
    } finally {
      await agent.close();
    }
  });

  it('keeps serving, and logged none of it as a warning', async () => {
    const agent = new Agent({ connect: { ca: server.cert } });
    try {
      expect(json(await ask(agent, server.origin, '/healthz'))).toEqual({ status: 'ok', waiting: 0 });
    } finally {
      await agent.close();
    }
    expect(server.warnings()).toEqual([]);
  });
});
