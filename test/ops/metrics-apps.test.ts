/**
 * Metrics with app keys: pairings, waiting clients, outcomes and connection reports carry their app
 * as a label, read from the admin listener's /metrics of a real server. A report over POST /outcome
 * names no key: its proof alone says which app's match it was.
 */
import { createHmac } from 'node:crypto';
import pino from 'pino';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppKeys, hashKey, parseAppKeys } from '../../src/net/app-keys.js';
import { buildAdmin, processSource } from '../../src/ops/admin.js';
import { Metrics } from '../../src/ops/metrics.js';
import { ask, eventually, json, startServer, TestClient, type TestServer } from '../helpers/server.js';
import { openSocket, type TestSocket } from '../helpers/ws-client.js';

const CHESS_KEY = 'pairup_chess-metrics-key-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const GO_KEY = 'pairup_go-metrics-key-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';

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

function pick(all: Map<string, number>, prefix: string): Record<string, number> {
  return Object.fromEntries([...all].filter(([key]) => key.startsWith(prefix)));
}

interface MatchBody {
  matchId: string;
  secret: string;
  initiator: boolean;
}

describe('metrics by app', () => {
  let server: TestServer;
  let metricsUrl: string;
  let closeAdmin: () => Promise<void>;
  const clients: TestClient[] = [];
  const sockets: TestSocket[] = [];

  beforeAll(async () => {
    const metrics = new Metrics(50);
    const appKeys = new AppKeys(parseAppKeys(JSON.stringify({ keys: [{ app: 'chess', sha256: hashKey(CHESS_KEY) }, { app: 'go', sha256: hashKey(GO_KEY) }] })));
    server = await startServer({}, '127.0.0.1', { metrics, appKeys });
    const admin = buildAdmin(processSource(metrics.registry, { ready: () => true, waiting: () => server.app.lobby.waiting }), pino({ level: 'silent' }));
    await admin.listen({ host: '127.0.0.1', port: 0 });
    const address = admin.server.address();
    metricsUrl = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}/metrics`;
    closeAdmin = () => admin.close();
  });
  afterAll(async () => {
    for (const s of sockets) s.socket.terminate();
    await Promise.all(clients.map((c) => c.close()));
    await server.close();
    await closeAdmin();
  });

  const get = (path: string, key?: string) => {
    const c = new TestClient(server.origin, server.cert);
    clients.push(c);
    return ask(c.client, server.origin, path, { headers: { accept: 'application/json', ...(key === undefined ? {} : { authorization: `Bearer ${key}` }) } });
  };
  const report = (match: MatchBody, outcome: Record<string, unknown>, proof = createHmac('sha256', match.secret).update(match.matchId).digest('base64url')) => {
    const c = new TestClient(server.origin, server.cert);
    clients.push(c);
    const body = JSON.stringify({ matchId: match.matchId, proof, initiator: match.initiator, ...outcome });
    return ask(c.client, server.origin, '/outcome', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  };
  const socket = async (key: string) => {
    const s = await openSocket(server.origin, server.cert, { query: `?key=${key}` });
    sockets.push(s);
    return s;
  };
  const waitFor = (n: number) => eventually(() => server.app.lobby.waiting === n, 2000, `${n} waiting`);

  it('labels pairings, waiting clients, outcomes and connections with their app', async () => {
    // chess, over HTTP: a pair in pool p, then each side reports how it connected (no key: the proof says chess).
    const first = get('/?pool=p', CHESS_KEY);
    await waitFor(1);
    const second = await get('/?pool=p', CHESS_KEY);
    const waiter = json(await first) as unknown as MatchBody;
    const arrival = json(second) as unknown as MatchBody;
    expect([waiter.initiator, arrival.initiator]).toEqual([true, false]);
    expect((await report(waiter, { via: 'direct', ms: 120 })).status).toBe(204);
    expect((await report(arrival, { via: 'failed' })).status).toBe(204);
    // A proof made with the secret a match without an app would have had is not chess's: refused, not counted.
    const forged = await report({ ...waiter, initiator: false }, { via: 'relay', ms: 5 }, createHmac('sha256', 'not-the-secret').update(waiter.matchId).digest('base64url'));
    expect([forged.status, json(forged)]).toEqual([403, { error: 'bad_proof', message: 'proof is not base64url(HMAC-SHA256(secret, matchId)) for this match', field: 'proof' }]);
    // chess: one timeout in pool q.
    expect((await get('/?pool=q&timeout=0.05', CHESS_KEY)).status).toBe(408);
    // No key: refused before it is anyone's client; counted by status only.
    expect((await get('/?pool=p')).status).toBe(401);

    // go, over the WebSocket: a pair by code, each side reports; then one client waits in pool p.
    const a = await socket(GO_KEY);
    a.send({ type: 'join', code: 'go-code-1' });
    expect(await a.next()).toEqual({ type: 'queued' });
    const b = await socket(GO_KEY);
    b.send({ type: 'join', code: 'go-code-1' });
    expect(await b.next()).toMatchObject({ type: 'matched', initiator: false });
    expect(await a.next()).toMatchObject({ type: 'matched', initiator: true });
    a.send({ type: 'connected', via: 'relay', ms: 300 });
    b.send({ type: 'failed' });
    const alone = await socket(GO_KEY);
    alone.send({ type: 'join', pool: 'p' });
    expect(await alone.next()).toEqual({ type: 'queued' });

    // The WebSocket reports are counted once their frames are read: scrape until they are.
    let all = new Map<string, number>();
    for (const deadline = Date.now() + 2000; all.get('pairup_connections_total{app="go",via="failed"}') !== 1 && Date.now() < deadline; ) {
      const answer = await request(metricsUrl);
      all = samples(await answer.body.text());
    }
    expect(pick(all, 'pairup_waiting')).toEqual({
      'pairup_waiting{app="chess",pool="p"}': 0,
      'pairup_waiting{app="chess",pool="q"}': 0,
      'pairup_waiting{app="go",pool="(code)"}': 0,
      'pairup_waiting{app="go",pool="p"}': 1,
    });
    expect(pick(all, 'pairup_matches_total')).toEqual({
      'pairup_matches_total{app="chess",pool="p"}': 1,
      'pairup_matches_total{app="chess",pool="q"}': 0,
      'pairup_matches_total{app="go",pool="(code)"}': 1,
      'pairup_matches_total{app="go",pool="p"}': 0,
    });
    expect(Object.fromEntries(Object.entries(pick(all, 'pairup_outcomes_total')).filter(([, v]) => v > 0))).toEqual({
      'pairup_outcomes_total{app="chess",pool="p",outcome="matched"}': 2,
      'pairup_outcomes_total{app="chess",pool="q",outcome="timeout"}': 1,
      'pairup_outcomes_total{app="go",pool="(code)",outcome="matched"}': 2,
    });
    expect(pick(all, 'pairup_match_wait_seconds_count')).toEqual({
      'pairup_match_wait_seconds_count{app="chess",pool="p"}': 1,
      'pairup_match_wait_seconds_count{app="go",pool="(code)"}': 1,
    });
    // The series without an app stay (at 0: with keys on, every match is an app's).
    expect(pick(all, 'pairup_connections_total')).toEqual({
      'pairup_connections_total{via="direct"}': 0,
      'pairup_connections_total{via="relay"}': 0,
      'pairup_connections_total{via="failed"}': 0,
      'pairup_connections_total{app="chess",via="direct"}': 1,
      'pairup_connections_total{app="chess",via="relay"}': 0,
      'pairup_connections_total{app="chess",via="failed"}': 1,
      'pairup_connections_total{app="go",via="direct"}': 0,
      'pairup_connections_total{app="go",via="relay"}': 1,
      'pairup_connections_total{app="go",via="failed"}': 1,
    });
    expect(pick(all, 'pairup_connect_seconds_count')).toEqual({
      'pairup_connect_seconds_count': 0,
      'pairup_connect_seconds_count{app="chess"}': 1,
      'pairup_connect_seconds_count{app="go"}': 1,
    });
    expect(pick(all, 'pairup_connect_seconds_sum')).toEqual({
      'pairup_connect_seconds_sum': 0,
      'pairup_connect_seconds_sum{app="chess"}': 0.12,
      'pairup_connect_seconds_sum{app="go"}': 0.3,
    });
    expect(pick(all, 'pairup_requests_total{status="401"}')).toEqual({ 'pairup_requests_total{status="401"}': 1 });
  });

  it("counts a group member's report of a link under the group's app: its proof says chess", async () => {
    // The go client of the case before still waits in its pool p.
    const before = server.app.lobby.waiting;
    const asked = [get('/?pool=g&size=3', CHESS_KEY)];
    await waitFor(before + 1);
    asked.push(get('/?pool=g&size=3', CHESS_KEY));
    await waitFor(before + 2);
    asked.push(get('/?pool=g&size=3', CHESS_KEY));
    const answers = (await Promise.all(asked)).map((answer) => json(answer) as { matchId: string; secret: string; size: number; self: { index: number } });
    const first = answers.find((answer) => answer.self.index === 0);
    if (first === undefined) throw new Error('no member 0');
    const { matchId, secret, size } = first;
    const c = new TestClient(server.origin, server.cert);
    clients.push(c);
    const body = JSON.stringify({ matchId, proof: createHmac('sha256', secret).update(matchId).digest('base64url'), size, member: 0, peer: 2, via: 'direct', ms: 40 });
    const answer = await ask(c.client, server.origin, '/outcome', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(answer.status).toBe(204);
    const all = samples(await (await request(metricsUrl)).body.text());
    // One more than the pair's report before it.
    expect(all.get('pairup_connections_total{app="chess",via="direct"}')).toBe(2);
    expect(all.get('pairup_connect_seconds_sum{app="chess"}')).toBe(0.16);
  });
});
