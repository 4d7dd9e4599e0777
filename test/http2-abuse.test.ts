/**
 * HTTP/2 abuse: a connection cannot hold more waiting streams than the limit, and floods of streams
 * reset at once (the rapid-reset pattern) or shortly after opening leave the server responsive to
 * everybody else and leak no waiter.
 */
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ask, eventually, json, startServer, TestClient, type TestServer } from './helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startServer({ MAX_STREAMS_PER_CONNECTION: '20' });
});
afterAll(() => server.close());

function session(): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = connect(server.origin, { ca: server.cert });
    s.once('remoteSettings', () => resolve(s));
    s.once('error', reject);
  });
}

/** Health as seen by another client; resolves with the time it took. */
async function timedHealth(): Promise<{ ms: number; status: number }> {
  const probe = new TestClient(server.origin, server.cert);
  try {
    const started = performance.now();
    const answer = await ask(probe.client, server.origin, '/healthz');
    return { ms: performance.now() - started, status: answer.status };
  } finally {
    await probe.close();
  }
}

/**
 * While `attack` runs: another client's health request is answered within a second. After it: no
 * waiter is left behind.
 */
async function expectToWeather(attack: Promise<unknown>, attackers: ClientHttp2Session[]): Promise<void> {
  const health = await timedHealth();
  await attack;
  for (const s of attackers) s.destroy();
  expect(health.status).toBe(200);
  expect(health.ms).toBeLessThan(1000);
  await eventually(() => server.app.lobby.waiting === 0, 3000, 'no waiter left');
}

describe('HTTP/2 abuse', () => {
  it('tells clients the stream limit and holds no more waiters per connection than it', async () => {
    const s = await session();
    try {
      expect(s.remoteSettings.maxConcurrentStreams).toBe(20);
      s.on('error', () => undefined);
      for (let i = 0; i < 30; i++) {
        const stream = s.request({ ':path': `/?pool=limit-${i}` });
        stream.on('error', () => undefined);
        stream.resume();
      }
      await eventually(() => server.app.lobby.waiting === 20);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(server.app.lobby.waiting).toBe(20);
    } finally {
      s.destroy();
    }
    await eventually(() => server.app.lobby.waiting === 0);
  });

  it('serves a client one below the limit that resets a stream and opens another in the same write', async () => {
    const s = await session();
    s.on('error', () => undefined);
    const refused: number[] = [];
    const open = (i: number) => {
      const stream = s.request({ ':path': `/?pool=turnover-${i}` });
      stream.on('error', () => undefined);
      stream.on('close', () => {
        if (stream.rstCode === constants.NGHTTP2_ENHANCE_YOUR_CALM) refused.push(i);
      });
      stream.resume();
      return stream;
    };
    try {
      const streams = Array.from({ length: 19 }, (_, i) => open(i));
      await eventually(() => server.app.lobby.waiting === 19);
      for (let i = 19; i < 49; i++) {
        streams.shift()?.close(constants.NGHTTP2_CANCEL);
        streams.push(open(i));
        await eventually(() => server.app.lobby.waiting === 19);
      }
      expect(refused).toEqual([]);
    } finally {
      s.destroy();
    }
    await eventually(() => server.app.lobby.waiting === 0);
  });

  it('stays responsive through a rapid-reset flood and leaks no waiter', async () => {
    const attackers = await Promise.all([session(), session()]);
    for (const s of attackers) s.on('error', () => undefined);
    const attack = (async () => {
      for (let round = 0; round < 40; round++) {
        for (const s of attackers) {
          if (s.destroyed) continue;
          for (let i = 0; i < 50; i++) {
            const stream = s.request({ ':path': `/?pool=reset-${i % 5}` });
            stream.on('error', () => undefined);
            stream.close(constants.NGHTTP2_CANCEL);
          }
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    await expectToWeather(attack, attackers);
    expect(server.warnings()).toEqual([]);
  });

  it('stays responsive through streams that each abort shortly after opening, and leaks no waiter', async () => {
    const attackers = await Promise.all([session(), session(), session()]);
    for (const s of attackers) s.on('error', () => undefined);
    const attack = Promise.all(
      attackers.flatMap((s) =>
        Array.from({ length: 300 }, (_, i) =>
          new Promise<void>((resolve) => {
            setTimeout(() => {
              if (s.destroyed) return resolve();
              const stream = s.request({ ':path': `/?pool=abort-${i % 7}` });
              stream.on('error', () => undefined);
              stream.on('close', () => resolve());
              stream.resume();
              setTimeout(() => stream.close(constants.NGHTTP2_CANCEL), Math.random() * 50);
            }, Math.random() * 500);
          }),
        ),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    await expectToWeather(attack, attackers);
    // And the server still pairs.
    const [a, b] = [new TestClient(server.origin, server.cert), new TestClient(server.origin, server.cert)];
    try {
      const first = ask(a.client, server.origin, '/?pool=after-abuse', { headers: { accept: 'application/json' } });
      await eventually(() => server.app.lobby.waiting === 1);
      expect(json(await ask(b.client, server.origin, '/?pool=after-abuse', { headers: { accept: 'application/json' } })).peer).toBe(
        `127.0.0.1:${a.localPort}`,
      );
      await first;
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
    expect(server.warnings()).toEqual([]);
  });
});

describe('HTTP/2 header size', () => {
  /** One request with an `x-big` header of `size` bytes; its status, or the stream's error code. */
  function bigHeaderRequest(s: ClientHttp2Session, size: number): Promise<{ status: number; body: string } | { error: string }> {
    return new Promise((resolve) => {
      const stream = s.request({ ':path': '/?pool=big-headers&timeout=0.2', accept: 'application/json', 'x-big': 'a'.repeat(size) });
      let status = 0;
      let body = '';
      stream.on('response', (headers) => (status = Number(headers[':status'])));
      stream.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      stream.on('end', () => resolve({ status, body }));
      stream.on('error', (error: Error & { code?: string }) => resolve({ error: error.code ?? error.message }));
    });
  }

  it('answers 431 to headers over 16 KiB sent before the client acknowledged the limit', async () => {
    // Requests in the client's first flight arrive before its SETTINGS acknowledgement.
    const s = connect(server.origin, { ca: server.cert });
    try {
      const [small, big] = await Promise.all([bigHeaderRequest(s, 15_000), bigHeaderRequest(s, 20_000)]);
      expect(small).toEqual({ status: 408, body: expect.stringContaining('"error":"timeout"') as unknown });
      expect(big).toEqual({ status: 431, body: '{"error":"headers_too_large","message":"request headers are too large"}' });
    } finally {
      s.destroy();
    }
  });

  it('advertises the limit, so that bigger header lists are refused afterwards without being held', async () => {
    const s = await session();
    try {
      expect(s.remoteSettings.maxHeaderListSize).toBe(16_384);
      await new Promise((resolve) => setTimeout(resolve, 100)); // the acknowledgement reaches the server
      expect(await bigHeaderRequest(s, 20_000)).toEqual({ error: 'ERR_HTTP2_STREAM_ERROR' });
      expect(server.app.lobby.waiting).toBe(0);
      expect((await timedHealth()).status).toBe(200);
    } finally {
      s.destroy();
    }
  });
});
