/**
 * Property-based HTTP fuzzing against a live server: random methods, paths, query strings, headers
 * and bodies. Whatever arrives, the answer is a documented status with a body of the documented
 * shape, the server stays up, and nothing stays queued.
 */
import fc from 'fast-check';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errors } from '../src/protocol/errors.js';
import { ask, eventually, startServer, type Answer, type TestServer } from './helpers/server.js';

let server: TestServer;
let agent: Agent;
beforeAll(async () => {
  // Every wait ends within 50 ms, so that a run of a few hundred requests stays short.
  server = await startServer({ MATCH_TIMEOUT_MS: '50' });
  agent = new Agent({ connect: { ca: server.cert } });
});
afterAll(async () => {
  await agent.close();
  await server.close();
});

const CODES = new Set(Object.keys(errors));
// 204: a CORS preflight (any OPTIONS); 308: /demo to /demo/.
const STATUSES = new Set([200, 204, 308, ...Object.values(errors).map((e) => e.status)]);

const urlChar = fc.constantFrom(...'abcXYZ019-._~!$&\'()*+,;=:@/%?#[]'.split(''));
const encoded = fc.oneof(
  fc.string({ unit: urlChar, maxLength: 12 }),
  fc.string({ maxLength: 12 }).map((s) => encodeURIComponent(s)),
  fc.constantFrom('%', '%z', '%zz', '%C3', '%00', '%2F', '%E2%82', '..', '.', ''),
);
const value = fc.oneof(encoded, fc.constantFrom('default', 'p', '1', '0.01', '0', '-1', 'x'.repeat(70)), fc
  .integer({ min: 1, max: 3000 })
  .map((n) => 'v'.repeat(n)));
const query = fc
  .array(fc.tuple(fc.oneof(fc.constantFrom('pool', 'timeout', 'code'), encoded), value), { maxLength: 4 })
  .map((pairs) => (pairs.length === 0 ? '' : `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`));
const path = fc.oneof(
  fc.constantFrom('/', '/', '/', '/healthz', '/healthz/', '//', '/index.html', '/%2e%2e/'),
  fc.array(encoded, { maxLength: 4 }).map((parts) => `/${parts.join('/')}`),
);
const method = fc.constantFrom('GET', 'GET', 'POST', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD');
const jsonBody = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc
    .record(
      {
        pool: fc.oneof(fc.string({ maxLength: 70 }), fc.integer(), fc.constant(null)),
        timeout: fc.oneof(fc.double({ noNaN: false }), fc.string({ maxLength: 5 })),
        meta: fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue())),
        extra: fc.jsonValue({ maxDepth: 1 }),
      },
      { requiredKeys: [] },
    )
    .map((v) => JSON.stringify(v)),
);
const body = fc.option(fc.oneof(jsonBody, fc.string({ maxLength: 200 }), fc.constant('{"pool":')), { nil: undefined });
const headers = fc.record(
  {
    accept: fc.constantFrom('*/*', 'text/plain', 'application/json', 'image/png', 'text/*;q=0.1, application/json', ''),
    'content-type': fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-8'),
    'x-forwarded-for': fc.constantFrom('203.0.113.1', 'garbage', '1.1.1.1, 2.2.2.2'),
  },
  { requiredKeys: [] },
);

describe('HTTP fuzzing', () => {
  it('answers every request with a documented status and body shape', async () => {
    await fc.assert(
      fc.asyncProperty(method, path, query, headers, body, async (m, p, q, h, b) => {
        let answer: Answer;
        try {
          // The path goes out as it is: resolved as a URL, `//x` would name another host.
          const response = await agent.request({
            origin: server.origin,
            path: `${p}${q}`,
            method: m,
            headers: h,
            body: m === 'GET' || m === 'HEAD' ? undefined : b,
          });
          answer = { status: response.statusCode, headers: response.headers, text: await response.body.text() };
        } catch (error) {
          // The client itself refuses some of what fast-check makes (a URL it cannot send).
          if (error instanceof TypeError || (error as { code?: string }).code === 'UND_ERR_INVALID_ARG') return;
          throw error;
        }
        expect(STATUSES.has(answer.status), `status ${answer.status} for ${m} ${p}${q}`).toBe(true);
        if (m === 'HEAD' || answer.status === 204 || answer.status === 308) return;
        if (answer.status === 200) {
          if (answer.headers['content-type'] === 'text/plain; charset=utf-8') {
            expect(answer.text).toMatch(/^(127\.0\.0\.1|203\.0\.113\.1|1\.1\.1\.1|2\.2\.2\.2):\d+\n$|^\{"status":"ok"/);
          } else {
            expect(JSON.parse(answer.text)).toBeTypeOf('object');
          }
          return;
        }
        if (answer.headers['content-type'] === 'text/plain; charset=utf-8') {
          expect(['timeout waiting for peer\n', 'server shutting down\n']).toContain(answer.text);
          return;
        }
        const parsed = JSON.parse(answer.text) as { error?: unknown; message?: unknown };
        expect(CODES.has(String(parsed.error)), `error ${String(parsed.error)}`).toBe(true);
        expect(parsed.message).toBeTypeOf('string');
      }),
      { numRuns: 400 },
    );
    await eventually(() => server.app.lobby.waiting === 0, 2000, 'empty queue');
    expect(server.warnings()).toEqual([]);
    const health = await ask(agent, server.origin, '/healthz');
    expect(health.status).toBe(200);
  }, 120_000);
});
