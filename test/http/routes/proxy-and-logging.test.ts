import { afterEach, describe, expect, it } from 'vitest';
import { ask, eventually, json, startServer, TestClient, type TestServer } from '../../helpers/server.js';

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

describe('X-Forwarded-For values', () => {
  it.each(['x<script>y', '[evil.example:443]', '203.0.113.9:443', '', 'unknown', '203.0.113.9, nonsense'])(
    'takes only valid IP addresses from it: %j names nobody',
    async (forged) => {
      server = await startServer({ TRUST_PROXY: 'true' });
      const { first, second, a } = await pair(server, { 'x-forwarded-for': forged });
      expect(first.self).toBe(`127.0.0.1:${a.localPort}`);
      expect(second).toMatchObject({ peer: `127.0.0.1:${a.localPort}`, via: 'socket', portIsSource: true });
    },
  );

  it('stops at the first entry that is not an address, keeping the last one that is', async () => {
    server = await startServer({ TRUST_PROXY: 'true' });
    const { first, a } = await pair(server, { 'x-forwarded-for': 'garbage, 203.0.113.9' });
    expect(first.self).toBe(`203.0.113.9:${a.localPort}`);
  });

  it('writes IPv6 addresses one way: upper case and spelled-out zeros are one client', async () => {
    server = await startServer({ TRUST_PROXY: 'true', MAX_WAITING_PER_IP: '1', IPV6_PREFIX_BITS: '128' });
    const { first, a } = await pair(server, { 'x-forwarded-for': '2001:DB8:0:0::7' });
    expect(first.self).toBe(`[2001:db8::7]:${a.localPort}`);
    const c = new TestClient(server.origin, server.cert);
    const d = new TestClient(server.origin, server.cert);
    clients.push(c, d);
    ask(c.client, server.origin, '/?pool=one', { headers: { 'x-forwarded-for': '2001:db8::7' } }).catch(() => undefined);
    await eventually(() => server?.app.lobby.waiting === 1);
    const refused = await ask(d.client, server.origin, '/?pool=two', { headers: { 'x-forwarded-for': '2001:DB8:0:0:0:0:0:7' } });
    expect(refused.status).toBe(429);
  });

  it('cannot be rotated past MAX_WAITING_PER_IP with made-up values', async () => {
    server = await startServer({ TRUST_PROXY: 'true', MAX_WAITING_PER_IP: '3' });
    const s = server;
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const client = new TestClient(s.origin, s.cert);
      clients.push(client);
      const answer = ask(client.client, s.origin, `/?pool=rotate-${i}&timeout=5`, { headers: { 'x-forwarded-for': `made-up-${i}` } }).then(
        (a) => a.status,
        () => -1, // its client closed at the end of the test
      );
      if (i < 3) await eventually(() => s.app.lobby.waiting === i + 1);
      else statuses.push(await answer);
    }
    expect(statuses).toEqual([429, 429, 429]);
    expect(s.app.lobby.waiting).toBe(3);
  });
});

describe('IPv6 clients and MAX_WAITING_PER_IP', () => {
  /** Starts a waiter in a pool of its own, as the client at `ip` (named by a trusted proxy); resolves to its status if refused. */
  async function waitAs(s: TestServer, ip: string, pool: string): Promise<number> {
    const client = new TestClient(s.origin, s.cert);
    clients.push(client);
    const before = s.app.lobby.waiting;
    const status = ask(client.client, s.origin, `/?pool=${pool}&timeout=5`, { headers: { 'x-forwarded-for': ip } }).then(
      (a) => a.status,
      () => -1, // its client closed at the end of the test
    );
    return Promise.race([status, eventually(() => s.app.lobby.waiting === before + 1).then(() => 0)]);
  }

  it('counts one /64 as one client by default', async () => {
    server = await startServer({ TRUST_PROXY: '127.0.0.1', MAX_WAITING_PER_IP: '2' });
    expect(await waitAs(server, '2001:db8:1:2::a', 'v6-1')).toBe(0);
    expect(await waitAs(server, '2001:db8:1:2:ffff:ffff:ffff:ffff', 'v6-2')).toBe(0);
    expect(await waitAs(server, '2001:db8:1:2::c', 'v6-3')).toBe(429);
    // Another /64 is another client.
    expect(await waitAs(server, '2001:db8:1:3::a', 'v6-4')).toBe(0);
    // IPv4 addresses are counted one by one.
    expect(await waitAs(server, '192.0.2.1', 'v4-1')).toBe(0);
    expect(await waitAs(server, '192.0.2.2', 'v4-2')).toBe(0);
    expect(await waitAs(server, '192.0.2.3', 'v4-3')).toBe(0);
  });

  it('counts each IPv6 address apart with IPV6_PREFIX_BITS=128', async () => {
    server = await startServer({ TRUST_PROXY: '127.0.0.1', MAX_WAITING_PER_IP: '1', IPV6_PREFIX_BITS: '128' });
    expect(await waitAs(server, '2001:db8:1:2::a', 'w-1')).toBe(0);
    expect(await waitAs(server, '2001:db8:1:2::b', 'w-2')).toBe(0);
    expect(await waitAs(server, '2001:db8:1:2::a', 'w-3')).toBe(429);
  });
});

describe('LOG_LEVEL', () => {
  it('leaves pairings out above info', async () => {
    server = await startServer({ LOG_LEVEL: 'warn' });
    await pair(server, {});
    expect(server.logs).toEqual([]);
  });
});
