import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { findPeer, NoPeerError, PairupError, type Match } from '../../src/client/index.js';
import { SAMPLE_MATCH, ScriptedServer } from '../helpers/scripted-server.js';
import { startServer, testCertificate, type TestServer } from '../helpers/server.js';

const MATCH: Match = SAMPLE_MATCH;
const TIMEOUT = { status: 408, body: { error: 'timeout', message: 'timeout waiting for peer', waitedMs: 0 } };

describe('findPeer against a scripted server', () => {
  const scripted = new ScriptedServer();
  let url: string;
  let ca: string;

  beforeAll(async () => {
    url = await scripted.start();
    ca = (await testCertificate()).cert;
  });
  afterEach(() => {
    scripted.seen.length = 0;
    scripted.script = [];
    scripted.repeat = undefined;
  });
  afterAll(() => scripted.close());

  it('asks again after each 408, each time for what is left of its deadline, over HTTP/2', async () => {
    scripted.script = [TIMEOUT, TIMEOUT, { status: 200, body: MATCH }];
    const match = await findPeer({ url, ca, code: 'c', meta: { udp: 'x' }, timeoutMs: 30_000 });
    expect(match).toEqual(MATCH);
    expect(scripted.seen.map((s) => [s.method, s.httpVersion, s.body.code, s.body.meta])).toEqual([
      ['POST', '2.0', 'c', { udp: 'x' }],
      ['POST', '2.0', 'c', { udp: 'x' }],
      ['POST', '2.0', 'c', { udp: 'x' }],
    ]);
    const asked = scripted.seen.map((s) => s.body.timeout as number);
    expect(asked[0]).toBeLessThanOrEqual(30);
    expect(asked[0]).toBeGreaterThan(29);
    expect(asked[1]).toBeLessThanOrEqual(asked[0] as number);
    expect(Object.keys(scripted.seen[0]?.body ?? {}).sort()).toEqual(['code', 'meta', 'timeout']);
  });

  it('keeps to the longest wait the server allows once told it', async () => {
    scripted.script = [
      { status: 400, body: { error: 'invalid_timeout', message: 'timeout must be …', field: 'timeout', maxTimeoutS: 0.5 } },
      TIMEOUT,
      { status: 200, body: MATCH },
    ];
    await findPeer({ url, ca, timeoutMs: 20_000 });
    const [first, ...rest] = scripted.seen.map((s) => s.body.timeout as number);
    expect(first).toBeGreaterThan(19.9);
    expect(first).toBeLessThanOrEqual(20);
    expect(rest).toEqual([0.5, 0.5]);
    expect(Object.keys(scripted.seen[0]?.body ?? {})).toEqual(['timeout']);
  });

  it('waits Retry-After on 429 and 503, then asks again', async () => {
    scripted.script = [
      { status: 429, body: { error: 'too_many_waiting_from_ip', message: 'm' }, headers: { 'retry-after': '1' } },
      { status: 503, body: { error: 'server_full', message: 'm' }, headers: { 'retry-after': '0' } },
      { status: 200, body: MATCH },
    ];
    const started = performance.now();
    await findPeer({ url, ca, timeoutMs: 10_000 });
    expect(performance.now() - started).toBeGreaterThanOrEqual(1000);
    expect(scripted.seen).toHaveLength(3);
  });

  it('gives up with the server’s error when Retry-After would pass the deadline', async () => {
    scripted.script = [{ status: 503, body: { error: 'shutting_down', message: 'server shutting down' }, headers: { 'retry-after': '5' } }];
    const failure = findPeer({ url, ca, timeoutMs: 2000 });
    await expect(failure).rejects.toThrow(PairupError);
    await expect(failure).rejects.toMatchObject({ status: 503, code: 'shutting_down', message: 'server shutting down' });
    expect(scripted.seen).toHaveLength(1);
  });

  it('rejects at once on any other error, with its status, code and message', async () => {
    scripted.script = [{ status: 409, body: { error: 'code_used', message: 'this code has already paired two clients' } }];
    await expect(findPeer({ url, ca, code: 'used' })).rejects.toMatchObject({
      name: 'PairupError',
      status: 409,
      code: 'code_used',
      message: 'this code has already paired two clients',
    });
    scripted.script = [{ status: 502, body: 'Bad Gateway' }];
    await expect(findPeer({ url, ca })).rejects.toMatchObject({ status: 502, code: 'http_502', message: `${url} answered 502` });
  });

  it('rejects with NoPeerError when its deadline passes', async () => {
    scripted.script = [{ ...TIMEOUT, holdMs: 400 }];
    const failure = findPeer({ url, ca, timeoutMs: 400 });
    await expect(failure).rejects.toThrow(NoPeerError);
    await expect(failure).rejects.toMatchObject({ status: 408, code: 'timeout', message: 'no peer came within 0.4 s' });
    expect(scripted.seen).toHaveLength(1);
    expect(scripted.seen[0]?.body.timeout).toBeGreaterThan(0.3);
    expect(scripted.seen[0]?.body.timeout).toBeLessThanOrEqual(0.4);
  });

  it('stops when its signal aborts, closing its request, with the signal’s reason', async () => {
    scripted.script = [{ ...TIMEOUT, holdMs: 500 }];
    const controller = new AbortController();
    const failure = findPeer({ url, ca, signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 200));
    controller.abort(new Error('user gave up'));
    await expect(failure).rejects.toThrow('user gave up');
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(scripted.closedEarly).toBe(1);
  });

  it('stops waiting out a Retry-After when its signal aborts, with the signal’s reason', async () => {
    scripted.script = [{ status: 503, body: { error: 'server_full', message: 'm' }, headers: { 'retry-after': '5' } }];
    const controller = new AbortController();
    const failure = findPeer({ url, ca, signal: controller.signal, timeoutMs: 20_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    controller.abort(new Error('user gave up'));
    await expect(failure).rejects.toThrow('user gave up');
    expect(scripted.seen).toHaveLength(1);
  });

  it('says when the server cannot be reached, or is not trusted', async () => {
    await expect(findPeer({ url: 'https://127.0.0.1:1', ca })).rejects.toMatchObject({
      status: 0,
      code: 'unreachable',
      message: 'cannot reach https://127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1',
    });
    await expect(findPeer({ url, timeoutMs: 2000 })).rejects.toMatchObject({
      status: 0,
      code: 'unreachable',
      message: `cannot reach ${url}: self-signed certificate (not trusted: give its certificate with --cacert FILE, or the ca option)`,
    });
  });

  it('refuses an answer body larger than any match, without reading it all', async () => {
    scripted.script = [{ status: 200, body: MATCH, floodBytes: 512 * 1024 * 1024 }];
    const started = performance.now();
    await expect(findPeer({ url, ca, timeoutMs: 10_000 })).rejects.toMatchObject({
      name: 'PairupError',
      status: 200,
      code: 'answer_too_large',
      message: `${url} answered with more than 65536 bytes`,
    });
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('gives up on an answer that drips past its deadline, with a PairupError, a second after it', async () => {
    scripted.script = [{ status: 200, body: MATCH, dripMs: 50 }];
    const started = performance.now();
    const failure = findPeer({ url, ca, timeoutMs: 2000 });
    await expect(failure).rejects.toThrow(PairupError);
    await expect(failure).rejects.toMatchObject({ status: 200, code: 'no_answer', message: `${url} did not answer in time` });
    const tookMs = performance.now() - started;
    expect(tookMs).toBeGreaterThanOrEqual(2900);
    expect(tookMs).toBeLessThan(3500);
  });

  it.each([
    ['503 with Retry-After: 0', { status: 503, body: { error: 'server_full', message: 'm' }, headers: { 'retry-after': '0' } }],
    ['408 at once', TIMEOUT],
  ])('does not hammer a server answering %s: requests at least half a second apart', async (_what, answer) => {
    scripted.repeat = answer;
    const failure = findPeer({ url, ca, timeoutMs: 3000 });
    await expect(failure).rejects.toMatchObject({ status: answer.status });
    // At most one request per 0.5 s (the least of the randomised interval) in 3 s.
    expect(scripted.seen.length).toBeGreaterThanOrEqual(2);
    expect(scripted.seen.length).toBeLessThanOrEqual(7);
  });

  it.each([
    ['an empty object', {}],
    ['a match whose peer carries terminal escapes', { ...MATCH, peer: '\u001b[2J\u001b[31mowned:1' }],
    ['a match with a secret of the wrong length', { ...MATCH, secret: 'short' }],
    ['a match without peerMeta', { ...MATCH, peerMeta: undefined }],
    ['an array', [MATCH]],
  ])('refuses a 200 that is not a match: %s', async (_what, body) => {
    scripted.script = [{ status: 200, body }];
    await expect(findPeer({ url, ca })).rejects.toMatchObject({
      name: 'PairupError',
      status: 200,
      code: 'invalid_answer',
      message: `${url} answered 200 with something that is not a match`,
    });
  });

  it('refuses options that cannot work before sending anything', async () => {
    await expect(findPeer({ url, ca, pool: 'p', code: 'c' })).rejects.toThrow('give either pool or code, not both');
    await expect(findPeer({ url, ca, timeoutMs: 0 })).rejects.toThrow('timeoutMs must be greater than 0');
    expect(scripted.seen).toEqual([]);
  });
});

describe('findPeer against pairup', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.close());

  it('pairs two clients by code over HTTP/2, each with the other’s address, meta and one secret', async () => {
    let sessions = 0;
    server.app.server.on('session', () => sessions++);
    const first = findPeer({ url: server.origin, ca: server.cert, code: 'client-test', meta: { udp: '127.0.0.1:4000' } });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const second = await findPeer({ url: server.origin, ca: server.cert, code: 'client-test', meta: { udp: '127.0.0.1:5000' } });
    const firstMatch = await first;
    expect(sessions).toBe(2);
    expect(firstMatch.peer).toBe(second.self);
    expect(second.peer).toBe(firstMatch.self);
    expect(firstMatch.peerMeta).toEqual({ udp: '127.0.0.1:5000' });
    expect(second.peerMeta).toEqual({ udp: '127.0.0.1:4000' });
    expect([firstMatch.code, firstMatch.initiator, second.initiator]).toEqual(['client-test', true, false]);
    expect(second.secret).toBe(firstMatch.secret);
    await expect(findPeer({ url: server.origin, ca: server.cert, code: 'client-test' })).rejects.toMatchObject({
      status: 409,
      code: 'code_used',
    });
    expect(server.app.lobby.waiting).toBe(0);
  });
});
