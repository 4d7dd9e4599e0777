/**
 * pairup/browser's `key` option, run on Node's own fetch and WebSocket (the browser APIs it uses)
 * against a real server with app keys: a bearer token on fetch, `?key=` on the WebSocket.
 */
import { Agent, getGlobalDispatcher, setGlobalDispatcher, WebSocket, type Dispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppKeys, hashKey, parseAppKeys } from '../src/net/app-keys.js';
import { eventually, startServer, type TestServer } from './helpers/server.js';

/**
 * What the test uses of pairup/browser, typed here: its source is checked against the DOM library
 * (tsconfig.browser.json), which this Node-side test file is not.
 */
interface Refusal extends Error {
  readonly status: number;
  readonly code: string;
}
interface BrowserClient {
  readonly findPeer: (options: { url: string; pool: string; key?: string; timeoutMs: number }) => Promise<{ pool?: string; initiator: boolean }>;
  readonly connectPeer: (options: { url: string; pool: string; key?: string; timeoutMs: number }) => Promise<{ match: { pool?: string; initiator: boolean }; close(): void }>;
  readonly PairupError: new (...args: never[]) => Refusal;
}
const BROWSER = '../src/browser/index.js';
const { connectPeer, findPeer, PairupError } = (await import(BROWSER)) as BrowserClient;

const KEY = 'pairup_browser-key-test-eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee';

let server: TestServer;
let previous: Dispatcher;

beforeAll(async () => {
  const appKeys = new AppKeys(parseAppKeys(JSON.stringify({ keys: [{ app: 'web', sha256: hashKey(KEY) }] })));
  server = await startServer({}, '127.0.0.1', { appKeys });
  previous = getGlobalDispatcher();
  // Node's fetch and WebSocket send through the global dispatcher: it trusts the test certificate.
  setGlobalDispatcher(new Agent({ connect: { ca: server.cert } }));
  // Node 20 has no global WebSocket: undici's is the one Node 22 exposes.
  (globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;
});
afterAll(async () => {
  setGlobalDispatcher(previous);
  await server.close();
});

describe('pairup/browser with a key', () => {
  it('pairs findPeer (Bearer on fetch) with connectPeer (?key= on the WebSocket)', async () => {
    const channel = connectPeer({ url: server.origin, pool: 'web', key: KEY, timeoutMs: 5000 });
    await eventually(() => server.app.lobby.waiting === 1, 3000, 'the socket waiting');
    const match = await findPeer({ url: server.origin, pool: 'web', key: KEY, timeoutMs: 5000 });
    const peer = await channel;
    expect([match.pool, peer.match.pool, peer.match.initiator, match.initiator]).toEqual(['web', 'web', true, false]);
    peer.close();
  });

  it('without a key, is refused key_required over fetch and over the WebSocket', async () => {
    const refusedFetch = await findPeer({ url: server.origin, pool: 'web', timeoutMs: 2000 }).catch((error: unknown) => error);
    expect(refusedFetch).toBeInstanceOf(PairupError);
    expect([(refusedFetch as Refusal).status, (refusedFetch as Refusal).code]).toEqual([401, 'key_required']);
    const refusedSocket = await connectPeer({ url: server.origin, pool: 'web', timeoutMs: 2000 }).catch((error: unknown) => error);
    expect(refusedSocket).toBeInstanceOf(PairupError);
    expect((refusedSocket as Refusal).code).toBe('key_required');
  });
});
