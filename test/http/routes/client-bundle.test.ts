/**
 * `GET /client/pairup.js` and its source map: the browser client served by pairup itself, cached
 * for an hour with an ETag, readable from any origin CORS allows; 404 when it was not built.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ask, json, startServer, TestClient, type TestServer } from '../../helpers/server.js';

const BUNDLE = 'export const hello = 1;\n//# sourceMappingURL=pairup.js.map\n';
const MAP = '{"version":3,"sources":["../../src/browser/index.ts"],"mappings":""}';

let dir: string;
let server: TestServer;
let client: TestClient;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairup-bundle-'));
  await writeFile(join(dir, 'pairup.js'), BUNDLE);
  await writeFile(join(dir, 'pairup.js.map'), MAP);
  server = await startServer({}, '127.0.0.1', { clientDir: pathToFileURL(`${dir}/`) });
  client = new TestClient(server.origin, server.cert);
});
afterAll(async () => {
  await client.close();
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('the browser client at /client/pairup.js', () => {
  it('serves the module and its source map, cached an hour, to any origin', async () => {
    const script = await ask(client.client, server.origin, '/client/pairup.js', { headers: { origin: 'https://app.example' } });
    expect([script.status, script.text, script.headers['content-type'], script.headers['cache-control'], script.headers['access-control-allow-origin']]).toEqual([
      200,
      BUNDLE,
      'text/javascript; charset=utf-8',
      'public, max-age=3600',
      '*',
    ]);
    expect(script.headers.etag).toMatch(/^"[A-Za-z0-9_-]{27}"$/);
    const map = await ask(client.client, server.origin, '/client/pairup.js.map');
    expect([map.status, map.text, map.headers['content-type'], map.headers['cache-control']]).toEqual([200, MAP, 'application/json; charset=utf-8', 'public, max-age=3600']);
  });

  it('answers 304 to a browser that holds the current version', async () => {
    const first = await ask(client.client, server.origin, '/client/pairup.js');
    const again = await ask(client.client, server.origin, '/client/pairup.js', { headers: { 'if-none-match': String(first.headers.etag) } });
    expect([again.status, again.text, again.headers.etag]).toEqual([304, '', first.headers.etag]);
    const stale = await ask(client.client, server.origin, '/client/pairup.js', { headers: { 'if-none-match': '"old"' } });
    expect([stale.status, stale.text]).toEqual([200, BUNDLE]);
  });

  it('answers 405 to other methods', async () => {
    const post = await ask(client.client, server.origin, '/client/pairup.js', { method: 'POST' });
    expect([post.status, post.headers.allow, json(post).error]).toEqual([405, 'GET', 'method_not_allowed']);
  });

  it('answers 404 when the client was not built', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'pairup-nobundle-'));
    const bare = await startServer({}, '127.0.0.1', { clientDir: pathToFileURL(`${empty}/`) });
    const bareClient = new TestClient(bare.origin, bare.cert);
    try {
      const missing = await ask(bareClient.client, bare.origin, '/client/pairup.js');
      expect([missing.status, json(missing)]).toEqual([404, { error: 'not_found', message: 'no route GET /client/pairup.js; try GET / or POST /' }]);
    } finally {
      await bareClient.close();
      await bare.close();
      await rm(empty, { recursive: true, force: true });
    }
  });
});
