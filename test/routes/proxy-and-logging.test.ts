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
    const { first, second, a, b } = await pair(server, { 'x-forwarded-for': '203.0.113.9' });
    expect(first.self).toBe(`127.0.0.1:${a.localPort}`);
    expect(second).toMatchObject({ peer: `127.0.0.1:${a.localPort}`, via: 'socket', portIsSource: true });
    expect(first).toMatchObject({ peer: `127.0.0.1:${b.localPort}`, via: 'socket', portIsSource: true });
  });

  it('believes X-Forwarded-For from a trusted proxy address, and says so', async () => {
    server = await startServer({ TRUST_PROXY: '127.0.0.1' });
    const { first, second, a, b } = await pair(server, { 'x-forwarded-for': '203.0.113.9' });
    expect(first.self).toBe(`203.0.113.9:${a.localPort}`);
    // The port is the proxy's connection's: the answer says it is not the client's own.
    expect(second).toMatchObject({ peer: `203.0.113.9:${a.localPort}`, via: 'x-forwarded-for', portIsSource: false });
    expect(first).toMatchObject({ peer: `127.0.0.1:${b.localPort}`, via: 'socket', portIsSource: true });
  });

  it('takes the right-most address that is not a trusted proxy', async () => {
    server = await startServer({ TRUST_PROXY: '127.0.0.1,198.51.100.0/24' });
    // The client wrote 192.0.2.66 itself; 203.0.113.9 is what the outer proxy (198.51.100.7) saw.
    const { first } = await pair(server, { 'x-forwarded-for': '192.0.2.66, 203.0.113.9, 198.51.100.7' });
    expect(first.self).toMatch(/^203\.0\.113\.9:\d+$/);
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
