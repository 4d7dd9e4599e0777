/**
 * How matched sides connected: POST /outcome (a proof of the match, never the secret) and the
 * WebSocket's connected/failed, counted once per side in pairup_connections_total and
 * pairup_connect_seconds; bad input and bad proofs refused with the error that names them.
 */
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PairupError, reportOutcome, type GroupMatch, type Match } from '../../../src/client/index.js';
import { Metrics } from '../../../src/ops/metrics.js';
import { ask, json, startServer, TestClient, type TestServer } from '../../helpers/server.js';
import { openSocket } from '../../helpers/ws-client.js';

let server: TestServer;
let metrics: Metrics;
let client: TestClient;
let codes = 0;

beforeAll(async () => {
  metrics = new Metrics(10);
  server = await startServer({}, '127.0.0.1', { metrics });
  client = new TestClient(server.origin, server.cert);
});
afterAll(async () => {
  await client.close();
  await server.close();
});

const proofOf = (secret: string, matchId: string) => createHmac('sha256', secret).update(matchId).digest('base64url');

/** Two HTTP clients matched by a fresh code: both answers. */
async function match(): Promise<[Record<string, unknown>, Record<string, unknown>]> {
  const code = `outcome-${++codes}`;
  const [a, b] = [new TestClient(server.origin, server.cert), new TestClient(server.origin, server.cert)];
  const json_ = { headers: { accept: 'application/json' } };
  const first = ask(a.client, server.origin, `/?code=${code}`, json_);
  await new Promise((resolve) => setTimeout(resolve, 30));
  const second = json(await ask(b.client, server.origin, `/?code=${code}`, json_));
  const answers: [Record<string, unknown>, Record<string, unknown>] = [json(await first), second];
  await Promise.all([a.close(), b.close()]);
  return answers;
}

/** Three HTTP clients gathered by a fresh code: their answers, by member index. */
async function group(): Promise<Record<string, unknown>[]> {
  const code = `outcome-group-${++codes}`;
  const members = [0, 1, 2].map(() => new TestClient(server.origin, server.cert));
  const json_ = { headers: { accept: 'application/json' } };
  const answers: Promise<Record<string, unknown>>[] = [];
  for (const member of members) {
    answers.push(ask(member.client, server.origin, `/?code=${code}&size=3`, json_).then(json));
    await new Promise((resolve) => setTimeout(resolve, 30));
  }
  const all = await Promise.all(answers);
  await Promise.all(members.map((m) => m.close()));
  return all.sort((x, y) => (x.self as { index: number }).index - (y.self as { index: number }).index);
}

const report = (body: unknown, path = '/outcome') =>
  ask(client.client, server.origin, path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });

interface Counted {
  direct: number;
  relay: number;
  failed: number;
  observed: number;
  seconds: number;
}

/** pairup_connections_total by via, and the histogram's count and sum. */
async function counted(): Promise<Counted> {
  const all = await metrics.registry.getMetricsAsJSON();
  const total = all.find((m) => m.name === 'pairup_connections_total');
  const histogram = all.find((m) => m.name === 'pairup_connect_seconds');
  const by = (via: string) => total?.values.find((v) => v.labels.via === via)?.value ?? 0;
  const named = (name: string) => histogram?.values.find((v) => (v as { metricName?: string }).metricName === name)?.value ?? 0;
  return { direct: by('direct'), relay: by('relay'), failed: by('failed'), observed: named('pairup_connect_seconds_count'), seconds: named('pairup_connect_seconds_sum') };
}

/** What was counted since `before`. */
async function countedSince(before: Counted): Promise<Counted> {
  const after = await counted();
  return {
    direct: after.direct - before.direct,
    relay: after.relay - before.relay,
    failed: after.failed - before.failed,
    observed: after.observed - before.observed,
    seconds: after.seconds - before.seconds,
  };
}

describe('POST /outcome', () => {
  it('counts each side once, with its time to connect; a second report of a side is ignored', async () => {
    const before = await counted();
    const [waiter, arrival] = await match();
    const matchId = String(waiter.matchId);
    const proof = proofOf(String(waiter.secret), matchId);
    expect((await report({ matchId, proof, initiator: true, via: 'direct', ms: 1500 })).status).toBe(204);
    expect((await report({ matchId, proof, initiator: true, via: 'relay', ms: 900 })).status).toBe(204);
    expect((await report({ matchId, proof: proofOf(String(arrival.secret), matchId), initiator: false, via: 'relay', ms: 2500 })).status).toBe(204);
    expect(await countedSince(before)).toEqual({ direct: 1, relay: 1, failed: 0, observed: 2, seconds: 4 });
  });

  it('counts a failed side without a time', async () => {
    const before = await counted();
    const [waiter] = await match();
    const matchId = String(waiter.matchId);
    expect((await report({ matchId, proof: proofOf(String(waiter.secret), matchId), initiator: true, via: 'failed' })).status).toBe(204);
    const after = await counted();
    expect([after.failed - before.failed, after.observed - before.observed]).toEqual([1, 0]);
  });

  it('refuses a proof that is not the match’s (403 bad_proof), counting nothing', async () => {
    const before = await counted();
    const [one] = await match();
    const [other] = await match();
    const matchId = String(one.matchId);
    for (const proof of [proofOf(String(other.secret), matchId), proofOf(String(one.secret), String(other.matchId)), 'A'.repeat(43)]) {
      const answer = await report({ matchId, proof, initiator: true, via: 'direct', ms: 10 });
      expect([answer.status, json(answer)]).toEqual([
        403,
        { error: 'bad_proof', message: 'proof is not base64url(HMAC-SHA256(secret, matchId)) for this match', field: 'proof' },
      ]);
    }
    // The secret itself is not a proof.
    expect((await report({ matchId, proof: String(one.secret), initiator: true, via: 'direct', ms: 10 })).status).toBe(403);
    expect(await counted()).toEqual(before);
  });

  const matchId = '7f0c8a52-8e2b-4c1d-9a43-1b2c3d4e5f60';
  const proof = 'A'.repeat(43);
  it.each([
    ['[1]', 'body', 'the body must be a JSON object, sent with Content-Type: application/json'],
    [{ matchId, proof, initiator: true, via: 'direct', ms: 5, extra: 1 }, 'extra', 'unknown field "extra"; allowed: matchId, proof, initiator, size, member, peer, via, ms'],
    [{ matchId: 'x', proof, initiator: true, via: 'direct', ms: 5 }, 'matchId', 'matchId must be the matchId of the answer'],
    [{ matchId, proof: 'short', initiator: true, via: 'direct', ms: 5 }, 'proof', 'proof must be base64url(HMAC-SHA256(secret, matchId)), 43 characters'],
    [{ matchId, proof, initiator: 'yes', via: 'direct', ms: 5 }, 'initiator', 'initiator must be the initiator field of the answer (true or false)'],
    [{ matchId, proof, via: 'direct', ms: 5 }, 'initiator', 'initiator must be the initiator field of the answer (true or false); in a group, give size, member and peer instead'],
    [{ matchId, proof, initiator: true, size: 3, member: 0, peer: 1, via: 'failed' }, 'initiator', 'a report is from a pair (initiator) or from a group (size, member and peer), not both'],
    [{ matchId, proof, member: 0, peer: 1, via: 'failed' }, 'size', "size must be the size field of the group's answer, a whole number from 2 to 64"],
    [{ matchId, proof, size: 65, member: 0, peer: 1, via: 'failed' }, 'size', "size must be the size field of the group's answer, a whole number from 2 to 64"],
    [{ matchId, proof, size: 1, member: 0, peer: 1, via: 'failed' }, 'size', "size must be the size field of the group's answer, a whole number from 2 to 64"],
    [{ matchId, proof, size: 3, member: 3, peer: 1, via: 'failed' }, 'member', "member must be this member's index (the answer's self.index), a whole number from 0 to 2 (size - 1)"],
    [{ matchId, proof, size: 3, member: 0, via: 'failed' }, 'peer', 'peer must be the index of the member this link is to, a whole number from 0 to 2 (size - 1)'],
    [{ matchId, proof, size: 3, member: 1, peer: '2', via: 'failed' }, 'peer', 'peer must be the index of the member this link is to, a whole number from 0 to 2 (size - 1)'],
    [{ matchId, proof, size: 3, member: 1, peer: 7, via: 'failed' }, 'peer', 'peer must be the index of the member this link is to, a whole number from 0 to 2 (size - 1)'],
    [{ matchId, proof, size: 3, member: 1, peer: 1, via: 'failed' }, 'peer', 'peer must be another member than member'],
    [{ matchId, proof, initiator: true, via: 'carrier-pigeon', ms: 5 }, 'via', 'via must be one of direct, relay, failed'],
    [{ matchId, proof, initiator: true, via: 'direct' }, 'ms', 'ms must be whole milliseconds from the answer to the connection, 0 to 600000'],
    [{ matchId, proof, initiator: true, via: 'relay', ms: 600_001 }, 'ms', 'ms must be whole milliseconds from the answer to the connection, 0 to 600000'],
    [{ matchId, proof, initiator: true, via: 'failed', ms: 5 }, 'ms', 'ms is for a connection made; a failed one has none'],
  ])('refuses %j naming %s', async (body, field, why) => {
    const answer = await report(body);
    expect([answer.status, json(answer)]).toEqual([400, { error: 'invalid_outcome', message: `outcome report is not valid: ${why}`, field }]);
  });

  it("counts each member's report of each link of a group once", async () => {
    const before = await counted();
    const [m0, m1, m2] = (await group()) as [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>];
    const matchId = String(m0.matchId);
    expect([m1.matchId, m2.matchId]).toEqual([matchId, matchId]);
    const proof = proofOf(String(m0.secret), matchId);
    expect((await report({ matchId, proof, size: 3, member: 0, peer: 1, via: 'direct', ms: 1000 })).status).toBe(204);
    // The same member's report of the same link again: ignored.
    expect((await report({ matchId, proof, size: 3, member: 0, peer: 1, via: 'relay', ms: 3000 })).status).toBe(204);
    // The other end of that link, and another link of the same member: each its own.
    expect((await report({ matchId, proof, size: 3, member: 1, peer: 0, via: 'relay', ms: 500 })).status).toBe(204);
    expect((await report({ matchId, proof, size: 3, member: 0, peer: 2, via: 'failed' })).status).toBe(204);
    const options = { url: server.origin, ca: server.cert };
    await reportOutcome(options, m2 as unknown as GroupMatch, { via: 'direct', ms: 2000.4, to: 1 });
    await reportOutcome(options, m2 as unknown as GroupMatch, { via: 'failed', to: 1 });
    expect(await countedSince(before)).toEqual({ direct: 2, relay: 1, failed: 1, observed: 3, seconds: 3.5 });
    // A proof of a group proves its size: claiming a bigger group (for links it does not have) fails.
    const bigger = await report({ matchId, proof, size: 8, member: 5, peer: 1, via: 'failed' });
    expect([bigger.status, json(bigger).error]).toEqual([403, 'bad_proof']);
    // Nor does it prove a pair of that id, and a pair's proof does not prove a group.
    const asPair = await report({ matchId, proof, initiator: true, via: 'failed' });
    expect([asPair.status, json(asPair).error]).toEqual([403, 'bad_proof']);
    const [pairSide] = await match();
    const pairId = String(pairSide.matchId);
    const asGroup = await report({ matchId: pairId, proof: proofOf(String(pairSide.secret), pairId), size: 2, member: 0, peer: 1, via: 'failed' });
    expect([asGroup.status, json(asGroup).error]).toEqual([403, 'bad_proof']);
    expect(await countedSince(before)).toEqual({ direct: 2, relay: 1, failed: 1, observed: 3, seconds: 3.5 });
    // A group's proof is the group's: another group's secret does not prove it.
    const [other] = await group();
    const wrong = await report({ matchId, proof: proofOf(String((other as Record<string, unknown>).secret), matchId), size: 3, member: 2, peer: 0, via: 'failed' });
    expect([wrong.status, json(wrong).error]).toEqual([403, 'bad_proof']);
  });

  it('refuses parameters in the query string, and other methods', async () => {
    const answer = await report({ matchId, proof, initiator: true, via: 'failed' }, '/outcome?via=direct');
    expect([answer.status, json(answer)]).toEqual([
      400,
      { error: 'query_not_allowed', message: 'POST /outcome takes its parameters in the JSON body, not the query string: got "via"' },
    ]);
    // A JSON body sent without its content type, and no body at all.
    const untyped = await ask(client.client, server.origin, '/outcome', { method: 'POST', body: JSON.stringify({ matchId, proof, initiator: true, via: 'failed' }) });
    expect([untyped.status, json(untyped)]).toEqual([415, { error: 'unsupported_media_type', message: 'Content-Type must be application/json, got none' }]);
    const empty = await ask(client.client, server.origin, '/outcome', { method: 'POST' });
    expect([empty.status, json(empty)]).toEqual([
      400,
      { error: 'invalid_outcome', message: 'outcome report is not valid: the body must be a JSON object, sent with Content-Type: application/json', field: 'body' },
    ]);
    const get = await ask(client.client, server.origin, '/outcome');
    expect([get.status, get.headers.allow, json(get).error]).toEqual([405, 'POST', 'method_not_allowed']);
  });
});

describe('WebSocket connected and failed', () => {
  it('counts each side once; before the match it is a protocol error', async () => {
    const before = await counted();
    const a = await openSocket(server.origin, server.cert);
    a.send({ type: 'join', code: 'ws-outcome' });
    expect(await a.next()).toEqual({ type: 'queued' });
    const b = await openSocket(server.origin, server.cert);
    b.send({ type: 'join', code: 'ws-outcome' });
    const [ma] = [await a.next(), await b.next()];
    a.send({ type: 'connected', via: 'direct', ms: 700 });
    a.send({ type: 'connected', via: 'direct', ms: 700 });
    b.send({ type: 'failed' });
    // An HTTP report of a side that reported over its socket is the same side: not counted again.
    const matchId = String(ma.matchId);
    expect((await report({ matchId, proof: proofOf(String(ma.secret), matchId), initiator: true, via: 'relay', ms: 5 })).status).toBe(204);
    const after = await counted();
    expect([after.direct - before.direct, after.relay - before.relay, after.failed - before.failed, after.observed - before.observed]).toEqual([1, 0, 1, 1]);
    a.socket.terminate();
    b.socket.terminate();

    const early = await openSocket(server.origin, server.cert);
    early.send({ type: 'connected', via: 'direct', ms: 1 });
    expect(await early.next()).toEqual({ type: 'error', error: 'unexpected_message', message: 'WebSocket message connected is not expected before the match' });
    expect(await early.closed).toBe(4000);
    const wrong = await openSocket(server.origin, server.cert);
    wrong.send({ type: 'connected', via: 'carrier-pigeon', ms: 1 });
    expect(await wrong.next()).toEqual({ type: 'error', error: 'invalid_message', message: 'WebSocket message is not valid: connected needs via: direct or relay', field: 'via' });
    expect(await wrong.closed).toBe(4000);
  });
});

describe('WebSocket connected and failed in a group', () => {
  it("counts each member's report of each link once, over its socket or POST /outcome; a pair's report names no member", async () => {
    const before = await counted();
    const sockets = [];
    for (let i = 0; i < 3; i++) {
      const s = await openSocket(server.origin, server.cert);
      s.send({ type: 'join', code: 'ws-group-outcome', size: 3 });
      if (i < 2) expect(await s.next()).toEqual({ type: 'queued' });
      sockets.push(s);
    }
    const [m0, m1, m2] = sockets as [Awaited<ReturnType<typeof openSocket>>, Awaited<ReturnType<typeof openSocket>>, Awaited<ReturnType<typeof openSocket>>];
    const matched = [await m0.next(), await m1.next(), await m2.next()];
    expect(matched.map((m) => (m.self as { index: number }).index)).toEqual([0, 1, 2]);
    m0.send({ type: 'connected', to: 1, via: 'direct', ms: 700 });
    m0.send({ type: 'connected', to: 1, via: 'direct', ms: 700 });
    m1.send({ type: 'failed', to: 0 });
    m2.send({ type: 'connected', to: 0, via: 'relay', ms: 300 });
    // The same link reported over HTTP is the same side: not counted again.
    const matchId = String(matched[0]?.matchId);
    const proof = proofOf(String(matched[0]?.secret), matchId);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await report({ matchId, proof, size: 3, member: 0, peer: 1, via: 'relay', ms: 5 })).status).toBe(204);
    const after = await counted();
    expect([after.direct - before.direct, after.relay - before.relay, after.failed - before.failed, after.observed - before.observed]).toEqual([1, 1, 1, 2]);
    // A report without a member, or naming this member itself: refused, and that member's socket closed.
    m1.send({ type: 'connected', via: 'direct', ms: 5 });
    expect(await m1.next()).toEqual({
      type: 'error',
      error: 'invalid_message',
      message: 'WebSocket message is not valid: a connected report in a group needs to: the index of another member (0 to 2, not 1)',
      field: 'to',
    });
    m2.send({ type: 'failed', to: 2 });
    expect(await m2.next()).toEqual({ type: 'peer_left', member: 1 });
    expect(await m2.next()).toEqual({
      type: 'error',
      error: 'invalid_message',
      message: "WebSocket message is not valid: failed's to must be the index of another member (0 to 2, not 2), got 2",
      field: 'to',
    });
    for (const s of sockets) s.socket.terminate();

    const a = await openSocket(server.origin, server.cert);
    a.send({ type: 'join', code: 'ws-pair-outcome-to' });
    expect(await a.next()).toEqual({ type: 'queued' });
    const b = await openSocket(server.origin, server.cert);
    b.send({ type: 'join', code: 'ws-pair-outcome-to' });
    expect([(await a.next()).type, (await b.next()).type]).toEqual(['matched', 'matched']);
    b.send({ type: 'failed', to: 0 });
    expect(await b.next()).toEqual({
      type: 'error',
      error: 'invalid_message',
      message: "WebSocket message is not valid: to is for groups: a pair's failed is about its partner",
      field: 'to',
    });
    a.socket.terminate();
    b.socket.terminate();
  });
});

describe('reportOutcome() of pairup/client', () => {
  it('reports a side once, and names a refusal', async () => {
    const before = await counted();
    const [waiter, arrival] = await match();
    const options = { url: server.origin, ca: server.cert };
    await reportOutcome(options, waiter as unknown as Match, { via: 'relay', ms: 1234.4 });
    await reportOutcome(options, arrival as unknown as Match, { via: 'failed' });
    const after = await counted();
    expect([after.relay - before.relay, after.failed - before.failed, after.observed - before.observed]).toEqual([1, 1, 1]);
    const wrong = await reportOutcome(options, { ...(waiter as unknown as Match), secret: 'B'.repeat(43) }, { via: 'direct', ms: 1 }).catch((error: unknown) => error);
    expect(wrong).toBeInstanceOf(PairupError);
    expect([(wrong as PairupError).status, (wrong as PairupError).code]).toEqual([403, 'bad_proof']);
  });
});
