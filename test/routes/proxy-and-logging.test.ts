import { afterEach, describe, expect, it } from 'vitest';
import { ask, eventually, json, startServer, TestClient, type TestServer } from '../helpers/server.js';

let server: TestServer | undefined;
const clients: TestClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await server?.close();
  server = undefined;
});

/** Pairs two clients, the first sending `headers`; returns both JSON answers. */
async function pair(s: TestServer, headers: Record<string, string>) {
  const [a, b] = [new TestClient(s.origin, s.cert), new TestClient(s.origin, s.cert)];
  clients.push(a, b);
  const first = ask(a.client, s.origin, '/', { headers: { accept: 'application/json', ...headers } });
  await eventually(() => s.app.lobby.waiting === 1);
  const second = json(await ask(b.client, s.origin, '/', { headers: { accept: 'application/json' } }));
  return { first: json(await first), second, a, b };
}

describe('TRUST_PROXY', () => {
  it('ignores X-Forwarded-For by default', async () => {
    server = await startServer();
    const { first, second, a } = await pair(server, { 'x-forwarded-for': '203.0.113.9' });
    expect(first.self).toBe(`127.0.0.1:${a.localPort}`);
    expect(second.peer).toBe(`127.0.0.1:${a.localPort}`);
  });

  it('believes X-Forwarded-For from a trusted proxy address', async () => {
    server = await startServer({ TRUST_PROXY: '127.0.0.1' });
    const { first, second, a } = await pair(server, { 'x-forwarded-for': '203.0.113.9' });
    expect(first.self).toBe(`203.0.113.9:${a.localPort}`);
    expect(second.peer).toBe(`203.0.113.9:${a.localPort}`);
  });

  it('does not believe it from an address outside the trusted list', async () => {
    server = await startServer({ TRUST_PROXY: '10.0.0.0/8' });
    const { first, a } = await pair(server, { 'x-forwarded-for': '203.0.113.9' });
    expect(first.self).toBe(`127.0.0.1:${a.localPort}`);
  });
});

describe('LOG_LEVEL', () => {
  it('leaves pairings out above info', async () => {
    server = await startServer({ LOG_LEVEL: 'warn' });
    await pair(server, {});
    expect(server.logs).toEqual([]);
  });
});
