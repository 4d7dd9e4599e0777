import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAdmin, processSource } from '../../src/ops/admin.js';
import { Metrics } from '../../src/ops/metrics.js';
import { startStunResponder } from '../../src/net/stun.js';
import { ask, eventually, startServer, TestClient, type TestServer } from '../helpers/server.js';
import { bindingRequest, exchange } from '../helpers/stun-client.js';

/** The samples of a Prometheus text exposition: `name{labels}` → value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** The samples whose name (and labels) start with `prefix`. */
function pick(all: Map<string, number>, prefix: string): Record<string, number> {
  return Object.fromEntries([...all].filter(([key]) => key.startsWith(prefix)));
}

describe('metrics after a scripted sequence', () => {
  let server: TestServer;
  let metrics: Metrics;
  const clients: TestClient[] = [];
  const client = (h2 = false): TestClient => {
    const c = new TestClient(server.origin, server.cert, { h2 });
    clients.push(c);
    return c;
  };
  const get = (c: TestClient, path: string, signal?: AbortSignal) => ask(c.client, server.origin, path, { signal });
  const waitFor = (n: number) => eventually(() => server.app.lobby.waiting === n, 2000, `${n} waiting`);

  beforeAll(async () => {
    metrics = new Metrics(2);
    server = await startServer({ MAX_WAITING: '3' }, '127.0.0.1', { metrics });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await server.close();
  });

  it('counts matches, outcomes, waits, statuses and connections exactly', async () => {
    // Pool a: two pairs.
    for (let i = 0; i < 2; i++) {
      const first = get(client(), '/?pool=a');
      await waitFor(1);
      await get(client(), '/?pool=a');
      await first;
    }
    // Pool b: one timeout.
    expect((await get(client(), '/?pool=b&timeout=0.1')).status).toBe(408);
    // Pool c, the third pool seen (METRICS_MAX_POOLS=2): one client that leaves, counted as other.
    const controller = new AbortController();
    const leaving = get(client(), '/?pool=c', controller.signal).catch(() => 'aborted');
    await waitFor(1);
    controller.abort();
    expect(await leaving).toBe('aborted');
    await waitFor(0);
    // One pair by code.
    const byCode = get(client(), '/?code=secret-code-1');
    await waitFor(1);
    await get(client(), '/?code=secret-code-1');
    await byCode;
    // One bad request.
    expect((await get(client(), '/?pool=not%20valid')).status).toBe(400);
    // Three streams of one HTTP/2 connection wait in pool a (never paired together): MAX_WAITING.
    const session = client(true);
    const held = [get(session, '/?pool=a'), get(session, '/?pool=a'), get(session, '/?pool=a')];
    await waitFor(3);
    // Pool d is refused: the server is full.
    expect((await get(client(), '/?pool=d')).status).toBe(503);

    const during = samples(await metrics.registry.metrics());
    expect(pick(during, 'pairup_waiting')).toEqual({
      'pairup_waiting{pool="a"}': 3,
      'pairup_waiting{pool="b"}': 0,
      'pairup_waiting{pool="other"}': 0,
      'pairup_waiting{pool="(code)"}': 0,
    });
    expect(during.get('pairup_open_connections{protocol="h2"}')).toBe(1);

    await server.close(); // the three waiters are answered 503, shutting down
    await Promise.all(held);
    await Promise.all(clients.splice(0).map((c) => c.close()));
    // The server sees the clients' connections close a moment after they do.
    for (let tries = 0; tries < 100; tries++) {
      const open = samples(await metrics.registry.getSingleMetricAsString('pairup_open_connections'));
      if (open.get('pairup_open_connections{protocol="h1"}') === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }

    const after = samples(await metrics.registry.metrics());
    expect(pick(after, 'pairup_matches_total')).toEqual({
      'pairup_matches_total{pool="a"}': 2,
      'pairup_matches_total{pool="b"}': 0,
      'pairup_matches_total{pool="other"}': 0,
      'pairup_matches_total{pool="(code)"}': 1,
    });
    expect(Object.fromEntries(Object.entries(pick(after, 'pairup_outcomes_total')).filter(([, v]) => v > 0))).toEqual({
      'pairup_outcomes_total{pool="a",outcome="matched"}': 4,
      'pairup_outcomes_total{pool="a",outcome="shutdown"}': 3,
      'pairup_outcomes_total{pool="b",outcome="timeout"}': 1,
      'pairup_outcomes_total{pool="other",outcome="aborted"}': 1,
      'pairup_outcomes_total{pool="other",outcome="rejected"}': 1,
      'pairup_outcomes_total{pool="(code)",outcome="matched"}': 2,
    });
    expect(pick(after, 'pairup_match_wait_seconds_count')).toEqual({
      'pairup_match_wait_seconds_count{pool="a"}': 2,
      'pairup_match_wait_seconds_count{pool="(code)"}': 1,
    });
    expect(pick(after, 'pairup_requests_total')).toEqual({
      'pairup_requests_total{status="200"}': 6,
      'pairup_requests_total{status="408"}': 1,
      'pairup_requests_total{status="400"}': 1,
      'pairup_requests_total{status="503"}': 4,
    });
    expect(pick(after, 'pairup_open_connections')).toEqual({
      'pairup_open_connections{protocol="h1"}': 0,
      'pairup_open_connections{protocol="h2"}': 0,
    });
    // Codes never become labels.
    expect(await metrics.registry.metrics()).not.toContain('secret-code-1');
  });
});

describe('admin listener', () => {
  let url: string;
  let ready = true;
  let close: () => Promise<void>;
  let stunSocket: ReturnType<typeof createSocket>;

  beforeAll(async () => {
    const metrics = new Metrics(50);
    const log = pino({ level: 'silent' });
    const stun = await startStunResponder('127.0.0.1', 0, log, { answersPerSecond: 2 });
    metrics.setSources({ stunAnswered: () => stun.answered, stunLimited: () => stun.limited });
    stunSocket = createSocket('udp4');
    await new Promise<void>((resolve) => stunSocket.bind(0, '127.0.0.1', resolve));
    for (let i = 0; i < 2; i++) await exchange(stunSocket, stun.port, '127.0.0.1', bindingRequest(randomBytes(12)));
    // Past its two a second: not answered, counted.
    for (let i = 0; i < 3; i++) stunSocket.send(bindingRequest(randomBytes(12)), stun.port, '127.0.0.1');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const admin = buildAdmin(processSource(metrics.registry, { ready: () => ready, waiting: () => 4 }), log);
    await admin.listen({ host: '127.0.0.1', port: 0 });
    const address = admin.server.address();
    url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
    close = async () => {
      stunSocket.close();
      await Promise.all([admin.close(), stun.close()]);
    };
  });
  afterAll(() => close());

  const fetchText = async (path: string) => {
    const answer = await request(`${url}${path}`);
    return { status: answer.statusCode, type: answer.headers['content-type'], text: await answer.body.text() };
  };

  it('serves /metrics in Prometheus text format, with STUN and process metrics', async () => {
    const { status, type, text } = await fetchText('/metrics');
    expect([status, type]).toEqual([200, 'text/plain; version=0.0.4; charset=utf-8']);
    const all = samples(text);
    expect(all.get('pairup_stun_requests_total')).toBe(2);
    expect(all.get('pairup_stun_limited_total')).toBe(3);
    for (const name of ['nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_active_handles_total']) {
      expect(all.has(name), name).toBe(true);
    }
    expect(text).toContain('# TYPE pairup_match_wait_seconds histogram');
  });

  it('answers /healthz and /readyz, 503 once not ready', async () => {
    expect(await fetchText('/healthz')).toMatchObject({ status: 200, text: '{"status":"ok","waiting":4}' });
    expect(await fetchText('/readyz')).toMatchObject({ status: 200, text: '{"status":"ready"}' });
    ready = false;
    expect(await fetchText('/readyz')).toMatchObject({ status: 503, text: '{"status":"not ready"}' });
    expect(await fetchText('/nope')).toMatchObject({
      status: 404,
      text: '{"error":"not_found","message":"no route GET /nope; try GET /metrics, /healthz or /readyz"}',
    });
  });
});
