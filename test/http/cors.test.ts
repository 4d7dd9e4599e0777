/**
 * CORS: preflights answered, every answer (errors too) readable by a page of an allowed origin, and
 * the WebSocket's Origin checked against CORS_ORIGINS. The demo page: served, or not (DEMO=off).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { ask, eventually, json, startServer, TestClient, type TestServer } from '../helpers/server.js';

let server: TestServer;
let client: TestClient;
afterEach(async () => {
  await client.close();
  await server.close();
});

async function start(env: Record<string, string> = {}): Promise<void> {
  server = await startServer(env);
  client = new TestClient(server.origin, server.cert);
}

/** The upgrade's answer: 101 (opened), or the status and body of the refusal. */
function upgradeAnswer(origin: string | undefined): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const socket = new WebSocket(`${server.origin.replace('https:', 'wss:')}/ws`, { ca: server.cert, ...(origin === undefined ? {} : { origin }) });
    socket.once('open', () => {
      socket.terminate();
      resolve({ status: 101, body: '' });
    });
    socket.once('unexpected-response', (_request, response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.once('end', () => {
        resolve({ status: response.statusCode ?? 0, body });
        socket.terminate();
      });
    });
    socket.once('error', () => undefined);
  });
}

const upgrade = async (origin: string | undefined): Promise<number> => (await upgradeAnswer(origin)).status;

describe('CORS', () => {
  it('answers a preflight from any origin by default, and marks answers and errors alike', async () => {
    await start();
    const preflight = await ask(client.client, server.origin, '/', {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect([preflight.status, preflight.headers['access-control-allow-origin'], preflight.headers['access-control-allow-methods'], preflight.headers['access-control-allow-headers'], preflight.headers['access-control-max-age']]).toEqual([
      204,
      '*',
      'GET, POST',
      'content-type, accept',
      '600',
    ]);
    const error = await ask(client.client, server.origin, '/?pool=bad%20pool', { headers: { origin: 'https://app.example' } });
    expect([error.status, error.headers['access-control-allow-origin'], error.headers['access-control-expose-headers'], json(error).error]).toEqual([
      400,
      '*',
      'retry-after',
      'invalid_pool',
    ]);
    const health = await ask(client.client, server.origin, '/healthz', { headers: { origin: 'https://app.example' } });
    expect([health.status, health.headers['access-control-allow-origin']]).toEqual([200, '*']);
  });

  it('with CORS_ORIGINS set, allows those origins alone, and checks a WebSocket’s Origin too', async () => {
    await start({ CORS_ORIGINS: 'https://app.example, http://localhost:8080' });
    const allowed = await ask(client.client, server.origin, '/nope', { headers: { origin: 'http://localhost:8080' } });
    expect([allowed.status, allowed.headers['access-control-allow-origin'], allowed.headers.vary]).toEqual([404, 'http://localhost:8080', 'Origin']);
    const other = await ask(client.client, server.origin, '/nope', { headers: { origin: 'https://evil.example' } });
    expect([other.status, other.headers['access-control-allow-origin']]).toEqual([404, undefined]);
    expect(await upgrade('https://app.example')).toBe(101);
    expect(await upgrade(undefined)).toBe(101); // not a browser
    expect(await upgrade(server.origin)).toBe(101); // pairup's own pages (the demo)
    expect(await upgrade('https://evil.example')).toBe(403);
  });

  it('says why a WebSocket from another origin is refused', async () => {
    await start({ CORS_ORIGINS: 'off' });
    const refused = await upgradeAnswer('https://evil.example');
    expect([refused.status, JSON.parse(refused.body)]).toEqual([
      403,
      { error: 'origin_not_allowed', message: 'pages of origin "https://evil.example" may not use this server (CORS_ORIGINS)' },
    ]);
    const plain = await ask(client.client, server.origin, '/healthz', { headers: { origin: 'https://evil.example' } });
    expect(plain.headers['access-control-allow-origin']).toBe(undefined);
  });
});

describe('CORS_ORIGINS restricts use, not only reading', () => {
  const refusal = { error: 'origin_not_allowed', message: 'pages of origin "https://evil.example" may not use this server (CORS_ORIGINS)' };

  it('refuses GET / and POST / from a page of another origin before it joins the lobby: nobody is paired with it', async () => {
    await start({ CORS_ORIGINS: 'https://good.example' });
    const evil = { origin: 'https://evil.example', accept: 'application/json' };
    const partner = new TestClient(server.origin, server.cert);
    try {
      // The partner waits first: a request that reached the lobby would be paired with it at once.
      const waiting = ask(partner.client, server.origin, '/?pool=p&timeout=1', { headers: { accept: 'application/json' } });
      await eventually(() => server.app.lobby.waiting === 1);
      const get = await ask(client.client, server.origin, '/?pool=p', { headers: evil });
      expect([get.status, json(get), get.headers['access-control-allow-origin']]).toEqual([403, refusal, undefined]);
      const post = await ask(client.client, server.origin, '/', {
        method: 'POST',
        headers: { ...evil, 'content-type': 'application/json' },
        body: '{"pool":"p","timeout":1}',
      });
      expect([post.status, json(post)]).toEqual([403, refusal]);
      const answer = await waiting;
      expect([answer.status, json(answer).error]).toEqual([408, 'timeout']);
    } finally {
      await partner.close();
    }
  });

  it('pairs pages of a listed origin, pairup’s own pages over either protocol, and clients that send no Origin', async () => {
    await start({ CORS_ORIGINS: 'https://good.example' });
    const h2 = new TestClient(server.origin, server.cert, { h2: true });
    try {
      const good = ask(client.client, server.origin, '/?pool=g', { headers: { origin: 'https://good.example' } });
      await eventually(() => server.app.lobby.waiting === 1);
      const own = await ask(h2.client, server.origin, '/?pool=g', { headers: { origin: server.origin.replace('127.0.0.1', 'localhost') } });
      expect(own.status).toBe(403); // another host is another origin
      const same = await ask(h2.client, server.origin, '/?pool=g', { headers: { origin: server.origin } });
      expect([same.status, (await good).status]).toEqual([200, 200]);
      const plain = ask(client.client, server.origin, '/?pool=n');
      await eventually(() => server.app.lobby.waiting === 1);
      const ownPost = await ask(h2.client, server.origin, '/', {
        method: 'POST',
        headers: { origin: server.origin, 'content-type': 'application/json' },
        body: '{"pool":"n"}',
      });
      expect([ownPost.status, (await plain).status]).toEqual([200, 200]);
    } finally {
      await h2.close();
    }
  });

  it('with CORS_ORIGINS=off refuses every other origin; /healthz still answers, and nothing carries CORS headers', async () => {
    await start({ CORS_ORIGINS: 'off' });
    const get = await ask(client.client, server.origin, '/?pool=p&timeout=1', { headers: { origin: 'https://evil.example', accept: 'application/json' } });
    expect([get.status, json(get)]).toEqual([403, refusal]);
    const health = await ask(client.client, server.origin, '/healthz', { headers: { origin: 'https://evil.example' } });
    expect([health.status, json(health), health.headers['access-control-allow-origin']]).toEqual([200, { status: 'ok', waiting: 0 }, undefined]);
    const preflight = await ask(client.client, server.origin, '/', {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    // CORS off: no preflight is answered as one (OPTIONS has no route), so a browser sends nothing more.
    expect([preflight.status, json(preflight).error, preflight.headers['access-control-allow-origin']]).toEqual([404, 'not_found', undefined]);
    expect(server.app.lobby.waiting).toBe(0);
  });
});

describe('the demo page', () => {
  it('is left out with DEMO=off', async () => {
    await start({ DEMO: 'off' });
    const answer = await ask(client.client, server.origin, '/demo/');
    expect([answer.status, json(answer).error]).toEqual([404, 'not_found']);
  });

  it('redirects /demo to /demo/, and answers 404 for files it does not have', async () => {
    await start();
    const redirect = await ask(client.client, server.origin, '/demo');
    expect([redirect.status, redirect.headers.location]).toEqual([308, '/demo/']);
    const missing = await ask(client.client, server.origin, '/demo/secret.txt');
    expect([missing.status, json(missing)]).toEqual([404, { error: 'not_found', message: 'no route GET /demo/secret.txt; try GET / or POST /' }]);
  });
});
