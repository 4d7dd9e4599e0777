import { Agent } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ask, eventually, json, startServer, type AskOptions, type TestServer } from '../../helpers/server.js';

let server: TestServer;
let agent: Agent;

beforeAll(async () => {
  server = await startServer({ MATCH_TIMEOUT_MS: '60000' });
  agent = new Agent({ connect: { ca: server.cert } });
});
afterEach(() => {
  // Nothing is ever queued for a rejected request.
  expect(server.app.lobby.waiting).toBe(0);
});
afterAll(async () => {
  await agent.close();
  await server.close();
});

const call = (path: string, options?: AskOptions) => ask(agent, server.origin, path, options);
const post = (body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  call('/', { method: 'POST', headers, body });

async function expectError(
  answer: Promise<Awaited<ReturnType<typeof call>>>,
  status: number,
  body: Record<string, unknown>,
): Promise<void> {
  const { status: got, headers, text } = await answer;
  expect({ status: got, body: JSON.parse(text) as unknown }).toEqual({ status, body });
  expect(headers['content-type']).toBe('application/json; charset=utf-8');
}

const POOL_RULE = 'pool must match ^[A-Za-z0-9._~-]{1,64}$';
const TIMEOUT_RULE = 'timeout must be a decimal number of seconds greater than 0 and at most 60';

describe('bad query', () => {
  it.each([
    ['/?pool=', 'empty'],
    ['/?pool=a%20b', 'a space'],
    [`/?pool=${'p'.repeat(65)}`, '65 characters'],
    ['/?pool=%C3%A9', 'non-ASCII'],
    ['/?pool=a&pool=b', 'repeated'],
  ])('refuses pool %s (%s)', async (path) => {
    await expectError(call(path), 400, { error: 'invalid_pool', message: POOL_RULE, field: 'pool' });
  });

  it.each([
    ['/?Pool=chess', 'Pool'],
    ['/?pool=chess&tiemout=5', 'tiemout'],
    ['/?meta=x', 'meta'],
  ])('refuses %s, naming the unknown parameter', async (path, name) => {
    await expectError(call(path), 400, {
      error: 'unknown_parameter',
      message: `unknown query parameter "${name}"; allowed: pool, code, timeout, size, min`,
      field: name,
    });
  });

  it('accepts a pool of exactly 64 allowed characters', async () => {
    const pool = 'A-z0.9_~'.repeat(8);
    const answer = await call(`/?pool=${pool}&timeout=0.05`, { headers: { accept: 'application/json' } });
    expect(answer.status).toBe(408);
  });

  it.each(['0', '0.0', '-1', 'abc', '1e3', '0x10', '60.001', '61', '', '1&timeout=2'])(
    'refuses timeout=%s',
    async (timeout) => {
      await expectError(call(`/?timeout=${timeout}`), 400, {
        error: 'invalid_timeout',
        message: TIMEOUT_RULE,
        field: 'timeout',
        maxTimeoutS: 60,
      });
    },
  );

  it('accepts the maximum timeout', async () => {
    const controller = new AbortController();
    const waiting = call('/?pool=max&timeout=60', { signal: controller.signal }).catch((error: unknown) => error);
    await eventually(() => server.app.lobby.waiting === 1);
    controller.abort();
    await waiting;
    await eventually(() => server.app.lobby.waiting === 0);
  });

  it('answers 406 when Accept allows neither text nor JSON', async () => {
    await expectError(call('/', { headers: { accept: 'image/png' } }), 406, {
      error: 'not_acceptable',
      message: 'cannot answer in any type the Accept header allows; offered: text/plain, application/json',
    });
  });
});

describe('bad body', () => {
  it('refuses malformed JSON', async () => {
    const { status, text } = await post('{"pool":');
    expect(status).toBe(400);
    expect(JSON.parse(text)).toEqual({
      error: 'invalid_json',
      message: 'body is not valid JSON: it does not parse, or it has a "__proto__" key or a "constructor" holding "prototype" (refused: prototype poisoning)',
    });
  });

  it('refuses an empty JSON body', async () => {
    await expectError(post(''), 400, { error: 'invalid_json', message: 'body is not valid JSON: the body is empty' });
  });

  it.each(['[]', 'null', '"pool"', '42'])('refuses a body that is not an object: %s', async (body) => {
    await expectError(post(body), 400, {
      error: 'invalid_body',
      message: 'body must be a JSON object with optional pool or code, timeout, meta, size and min',
    });
  });

  it('refuses a bad pool in the body', async () => {
    await expectError(post('{"pool":"no spaces"}'), 400, { error: 'invalid_pool', message: POOL_RULE, field: 'pool' });
  });

  it.each(['0', '-2', '"5"', '61', 'null'])('refuses timeout %s in the body', async (timeout) => {
    await expectError(post(`{"timeout":${timeout}}`), 400, {
      error: 'invalid_timeout',
      message: TIMEOUT_RULE,
      field: 'timeout',
      maxTimeoutS: 60,
    });
  });

  it.each(['[1,2]', '"text"', '7', 'null', 'true'])('refuses meta that is not an object: %s', async (meta) => {
    await expectError(post(`{"meta":${meta}}`), 400, {
      error: 'invalid_meta',
      message: 'meta must be a JSON object',
      field: 'meta',
    });
  });

  it('refuses meta over 2 KiB and accepts meta of exactly 2 KiB', async () => {
    // {"v":"…"} is 8 bytes around the string.
    const tooBig = JSON.stringify({ meta: { v: 'x'.repeat(2041) } });
    await expectError(post(tooBig), 400, {
      error: 'meta_too_large',
      message: 'meta must be at most 2048 bytes serialised as JSON, got 2049',
      field: 'meta',
    });
    const justRight = JSON.stringify({ meta: { v: 'x'.repeat(2040) }, timeout: 0.05 });
    expect((await post(justRight)).status).toBe(408);
  });

  it('refuses meta nested more than 16 levels deep, naming the field, and accepts 16', async () => {
    // An object holding levels - 1 arrays, one in the other.
    const nest = (levels: number): string => `{"a":${'['.repeat(levels - 1)}${']'.repeat(levels - 1)}}`;
    await expectError(post(`{"meta":${nest(17)}}`), 400, {
      error: 'meta_too_deep',
      message: 'meta may nest objects and arrays at most 16 levels deep (itself included)',
      field: 'meta',
    });
    // 1010 levels in 2 KB: past the depth Redis's JSON decoder takes (1000), as a waiter's meta that once blocked a Redis room.
    await expectError(post(`{"meta":${nest(1010)}}`), 400, {
      error: 'meta_too_deep',
      message: 'meta may nest objects and arrays at most 16 levels deep (itself included)',
      field: 'meta',
    });
    expect((await post(`{"meta":${nest(16)},"timeout":0.05}`)).status).toBe(408);
  });

  it('refuses a body over the size limit', async () => {
    await expectError(post(JSON.stringify({ meta: { v: 'x'.repeat(9000) } })), 400, {
      error: 'body_too_large',
      message: 'body must be at most 8192 bytes',
    });
  });

  it('refuses unknown fields, naming them', async () => {
    await expectError(post('{"pol":"x"}'), 400, {
      error: 'unknown_field',
      message: 'body has unknown field "pol"; allowed: pool, code, timeout, meta, size, min',
      field: 'pol',
    });
  });

  it('refuses a body that is not JSON', async () => {
    await expectError(post('pool=x', { 'content-type': 'application/x-www-form-urlencoded' }), 415, {
      error: 'unsupported_media_type',
      message: 'Content-Type must be application/json, got application/x-www-form-urlencoded',
    });
  });

  it.each([
    ['text/plain', '{"pool":"x"}'],
    ['text/plain; charset=utf-8', '{}'],
    ['application/octet-stream', '{}'],
  ])('refuses a JSON body sent as %s with 415, like any other type that is not JSON', async (type, body) => {
    await expectError(post(body, { 'content-type': type }), 415, {
      error: 'unsupported_media_type',
      message: `Content-Type must be application/json, got ${type}`,
    });
  });

  it('refuses a query string on POST, saying the parameters go in the body', async () => {
    await expectError(call('/?timeout=0.2&pool=x', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }), 400, {
      error: 'query_not_allowed',
      message: 'POST / takes its parameters in the JSON body, not the query string: got "timeout", "pool"',
    });
  });

  it('refuses prototype poisoning', async () => {
    const { status, text } = await post('{"meta":{"__proto__":{"x":1}}}');
    expect(status).toBe(400);
    expect(JSON.parse(text)).toEqual({
      error: 'invalid_json',
      message: 'body is not valid JSON: it does not parse, or it has a "__proto__" key or a "constructor" holding "prototype" (refused: prototype poisoning)',
    });
  });
});

describe('routing', () => {
  it('answers 404 as JSON for an unknown path', async () => {
    await expectError(call('/nope?x=1'), 404, { error: 'not_found', message: 'no route GET /nope; try GET / or POST /' });
  });

  it.each(['PUT', 'DELETE', 'PATCH', 'HEAD'] as const)('answers 405 with Allow for %s /', async (method) => {
    const answer = await call('/', { method });
    expect(answer.status).toBe(405);
    expect(answer.headers.allow).toBe('GET, POST');
    if (method !== 'HEAD') {
      expect(JSON.parse(answer.text)).toEqual({
        error: 'method_not_allowed',
        message: `method ${method} not allowed on /; allowed: GET, POST`,
      });
    }
  });

  it('answers 405 for POST /healthz', async () => {
    const answer = await call('/healthz', { method: 'POST' });
    expect(answer.status).toBe(405);
    expect(answer.headers.allow).toBe('GET, HEAD');
  });

  it('reports health with the number waiting', async () => {
    const answer = await call('/healthz');
    expect(answer.status).toBe(200);
    expect(json(answer)).toEqual({ status: 'ok', waiting: 0 });
    const controller = new AbortController();
    const waiting = call('/?pool=health', { signal: controller.signal }).catch((error: unknown) => error);
    await eventually(() => server.app.lobby.waiting === 1);
    expect(json(await call('/healthz'))).toEqual({ status: 'ok', waiting: 1 });
    controller.abort();
    await waiting;
    await eventually(() => server.app.lobby.waiting === 0);
  });

  it('sends security headers on every answer', async () => {
    const answer = await call('/healthz');
    expect(answer.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
    expect(answer.headers['x-content-type-options']).toBe('nosniff');
    expect(answer.headers['x-frame-options']).toBe('DENY');
    expect(answer.headers['content-security-policy']).toBe("default-src 'none';frame-ancestors 'none'");
    expect(answer.headers['cache-control']).toBe('no-store');
    expect(answer.headers['x-powered-by']).toBeUndefined();
  });

  it('logged no warning for any of it', () => {
    expect(server.warnings()).toEqual([]);
  });
});
