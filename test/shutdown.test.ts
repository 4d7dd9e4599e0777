import { connect } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { ask, eventually, json, startServer, TestClient } from './helpers/server.js';

describe('shutdown', () => {
  it('answers every waiter 503 exactly once, over both protocols, then closes', async () => {
    const server = await startServer();
    const h1Text = new TestClient(server.origin, server.cert);
    const h1Json = new TestClient(server.origin, server.cert);
    const h2 = new TestClient(server.origin, server.cert, { h2: true });
    const poster = new TestClient(server.origin, server.cert, { h2: true });
    try {
      const answers = [
        ask(h1Text.client, server.origin, '/?pool=one'),
        ask(h1Json.client, server.origin, '/?pool=two', { headers: { accept: 'application/json' } }),
        ask(h2.client, server.origin, '/?pool=three'),
        ask(h2.client, server.origin, '/?pool=four', { headers: { accept: 'application/json' } }),
        ask(poster.client, server.origin, '/', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"pool":"five"}',
        }),
      ];
      await eventually(() => server.app.lobby.waiting === 5);
      await server.close();
      const [text1, json1, text2, json2, posted] = await Promise.all(answers);
      for (const text of [text1, text2]) {
        expect(text?.status).toBe(503);
        expect(text?.text).toBe('server shutting down\n');
        expect(text?.headers['retry-after']).toBe('5');
      }
      for (const answer of [json1, json2, posted]) {
        expect(answer?.status).toBe(503);
        expect(JSON.parse(answer?.text ?? '')).toEqual({ error: 'shutting_down', message: 'server shutting down' });
      }
      expect(server.app.lobby.waiting).toBe(0);
      expect(server.warnings()).toEqual([]);
      const closing = server.logs.filter((line) => line.msg === 'shutting down: answered every waiter');
      expect(closing).toEqual([expect.objectContaining({ waiters: 5 })]);
    } finally {
      await Promise.all([h1Text.close(), h1Json.close(), h2.close(), poster.close()]);
    }
  });

  it('answers a waiter on an explicit keep-alive connection before that connection is closed', async () => {
    // Fastify destroys sockets that asked for keep-alive right after preClose: the answer must be out by then.
    const server = await startServer();
    const received = new Promise<string>((resolve, reject) => {
      const socket = connect(
        { host: '127.0.0.1', port: server.port, ca: server.cert, ALPNProtocols: ['http/1.1'] },
        () => socket.write('GET /?pool=ka HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n'),
      );
      let text = '';
      socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
    });
    await eventually(() => server.app.lobby.waiting === 1);
    await server.close();
    const text = await received;
    expect(text.split('\r\n')[0]).toBe('HTTP/1.1 503 Service Unavailable');
    expect(text.endsWith('\r\n\r\nserver shutting down\n')).toBe(true);
    expect(server.warnings()).toEqual([]);
  });

  it('refuses new requests and reports 503 health once the lobby is closing', async () => {
    const server = await startServer();
    const client = new TestClient(server.origin, server.cert);
    try {
      expect(server.app.lobby.close()).toBe(0);
      const health = await ask(client.client, server.origin, '/healthz');
      expect(health.status).toBe(503);
      expect(json(health)).toEqual({ error: 'shutting_down', message: 'server shutting down' });
      const refused = await ask(client.client, server.origin, '/', { headers: { accept: 'application/json' } });
      expect(refused.status).toBe(503);
      expect(refused.headers['retry-after']).toBe('5');
      expect(json(refused)).toEqual({ error: 'shutting_down', message: 'server shutting down' });
      expect(server.app.lobby.waiting).toBe(0);
    } finally {
      await client.close();
      await server.close();
    }
  });
});
