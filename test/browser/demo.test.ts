/**
 * The demo page and the browser client in a real browser: Debian's Chromium (/usr/bin/chromium)
 * driven by playwright-core, headless, WebRTC kept on loopback. pairup runs as a whole process
 * started by the test (`npm run test:browser` builds dist/ first: the demo is served from there).
 */
import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectPeer, findPeer } from '../../src/client/index.js';
import { launchChromium } from '../helpers/chromium.js';
import { connectionsCounted, freePort, spawnServer, type ServerProcess } from '../helpers/process.js';
import { testCertificate } from '../helpers/server.js';

/** `npm run docs:screenshot` sets it to docs/demo.png; the tests alone write only to their temporary folder. */
const SCREENSHOT = process.env.PAIRUP_SCREENSHOT;

let browser: Browser | undefined;
let server: ServerProcess | undefined;
let origin: string;
let cert: string;
let dir: string | undefined;
let adminPort: number;

/** pairup_connections_total by via, from the server's admin listener. */
const connections = (): Promise<Record<string, number>> => connectionsCounted(adminPort);
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  const own = await mkdtemp(join(tmpdir(), 'pairup-browser-'));
  dir = own;
  const pem = await testCertificate();
  cert = pem.cert;
  await writeFile(join(own, 'cert.pem'), pem.cert);
  await writeFile(join(own, 'key.pem'), pem.key);
  // The demo is served from the built dist/demo (npm run test:build builds it first).
  adminPort = await freePort();
  const running = spawnServer({ HOST: '127.0.0.1', PORT: '0', TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem', MAX_WAITING_PER_IP: '0', ADMIN_PORT: String(adminPort) }, own);
  server = running;
  origin = `https://127.0.0.1:${await running.port}`;
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  for (const context of contexts) await context.close().catch(() => undefined);
  await browser?.close();
  if (server !== undefined && server.child.exitCode === null) {
    server.child.kill('SIGTERM');
    await server.exit;
  }
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** A page of its own browser context (its own connections), trusting the test certificate. */
async function page(): Promise<Page> {
  if (browser === undefined) throw new Error('no browser');
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 480, height: 640 } });
  contexts.push(context);
  return context.newPage();
}

const statusOf = (p: Page) => p.locator('#status').textContent();

describe('the demo page in Chromium', () => {
  it('opens a data channel between two pages with one code, chats both ways, refuses a third, and says when one leaves', async () => {
    const code = `demo-${Date.now()}`;
    const [one, two] = [await page(), await page()];
    await one.goto(`${origin}/demo/?code=${code}&loopback=1`);
    await expectStatus(one, 'waiting');
    await two.goto(`${origin}/demo/?code=${code}&loopback=1`);
    await Promise.all([expectStatus(one, 'open'), expectStatus(two, 'open')]);
    // Each page said how it connected, on its own: straight to the other (loopback host candidates).
    for (let i = 0; i < 50 && (await connections()).direct !== 2; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await connections()).toEqual({ direct: 2, relay: 0, failed: 0 });

    await one.locator('#message').fill('hello from one');
    await one.locator('#message').press('Enter');
    await two.locator('#message').fill('and back from two');
    await two.locator('#message').press('Enter');
    await expect.poll(() => two.locator('#log li.peer').allTextContents(), { timeout: 10_000 }).toEqual(['hello from one']);
    await expect.poll(() => one.locator('#log li.peer').allTextContents(), { timeout: 10_000 }).toEqual(['and back from two']);
    // Both pages, side by side, for the README (npm run docs:screenshot).
    const shots = [join(dir ?? tmpdir(), 'one.png'), join(dir ?? tmpdir(), 'two.png')] as const;
    await Promise.all([one.screenshot({ path: shots[0] }), two.screenshot({ path: shots[1] })]);
    await sideBySide(shots[0], shots[1], SCREENSHOT ?? join(dir ?? tmpdir(), 'demo.png'));

    const third = await page();
    await third.goto(`${origin}/demo/?code=${code}&loopback=1`);
    await expectStatus(third, 'code used');

    await one.context().close();
    await expectStatus(two, 'peer left');
    expect(await two.locator('#log li.note').allTextContents()).toContain('peer left');
    expect(server?.stdout.filter((line) => /"level":(40|50|60)/.test(line))).toEqual([]);
  });

  it('serves the page with its own Content-Security-Policy, and offers to make up a code', async () => {
    const p = await page();
    const response = await p.goto(`${origin}/demo/`);
    expect(response?.headers()['content-security-policy']).toBe(
      "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    );
    await expectStatus(p, 'no code');
    await p.locator('#make').click();
    await p.waitForURL(/\/demo\/\?code=[a-z]+-[a-z]+-\d+$/);
    await expectStatus(p, 'waiting');
    expect(await p.locator('#link').textContent()).toBe(p.url());
  });
});

describe('the browser client from a page on another origin', () => {
  let other: Server;
  let otherOrigin: string;
  beforeAll(async () => {
    // A page without any script of its own: it loads the client from pairup.
    other = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>another origin</title><p>another origin</p>');
    });
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    const address = other.address();
    otherOrigin = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
  });
  afterAll(
    () =>
      new Promise<void>((resolve) => {
        other.close(() => resolve());
        other.closeAllConnections(); // the browser's keep-alive connection
      }),
  );

  it('finds a peer through CORS with the client loaded from pairup’s /client/pairup.js, and reads the error code of a refusal', async () => {
    const p = await page();
    await p.goto(`${otherOrigin}/`);
    // Page code as text: the test runner would rewrite a function's import() for Node.
    const inPage = p.evaluate<{ peer: string; initiator: boolean; peerMeta: unknown }>(`(async () => {
      const { findPeer } = await import(${JSON.stringify(origin)} + '/client/pairup.js');
      const match = await findPeer({ url: ${JSON.stringify(origin)}, code: 'cross-origin-1', meta: { from: 'page' }, timeoutMs: 10000 });
      return { peer: match.peer, initiator: match.initiator, peerMeta: match.peerMeta };
    })()`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const fromNode = await findPeer({ url: origin, code: 'cross-origin-1', ca: cert, meta: { from: 'node' }, timeoutMs: 10_000 });
    const fromPage = await inPage;
    expect([fromPage.peer, fromPage.initiator, fromPage.peerMeta]).toEqual([fromNode.self, true, { from: 'node' }]);
    expect(fromNode.peerMeta).toEqual({ from: 'page' });

    const refused = await p.evaluate<string>(`(async () => {
      const { findPeer, PairupError } = await import(${JSON.stringify(origin)} + '/client/pairup.js');
      try {
        await findPeer({ url: ${JSON.stringify(origin)}, pool: 'not a pool' });
        return 'matched?';
      } catch (error) {
        return error instanceof PairupError ? error.status + ' ' + error.code + ': ' + error.message : String(error);
      }
    })()`);
    expect(refused).toBe('400 invalid_pool: pool must match ^[A-Za-z0-9._~-]{1,64}$');
  });
});

async function expectStatus(p: Page, text: string): Promise<void> {
  await expect.poll(() => statusOf(p), { timeout: 20_000 }).toBe(text);
}

/** The two pages side by side (docs/demo.png), through the browser itself (no image library). */
async function sideBySide(left: string, right: string, path: string): Promise<void> {
  const [a, b] = await Promise.all([readFile(left), readFile(right)]);
  const canvas = await page();
  await canvas.setViewportSize({ width: 980, height: 660 });
  await canvas.setContent(
    `<body style="margin:0;background:#888;display:flex;gap:20px;padding:10px">` +
      `<img src="data:image/png;base64,${a.toString('base64')}"><img src="data:image/png;base64,${b.toString('base64')}"></body>`,
  );
  await canvas.screenshot({ path });
}

describe('against a server whose MATCH_TIMEOUT_MS is 2 s', () => {
  let short: ServerProcess | undefined;
  let shortOrigin: string;
  beforeAll(async () => {
    const running = spawnServer(
      { HOST: '127.0.0.1', PORT: '0', TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem', MAX_WAITING_PER_IP: '0', MATCH_TIMEOUT_MS: '2000' },
      dir ?? tmpdir(),
    );
    short = running;
    shortOrigin = `https://127.0.0.1:${await running.port}`;
  });
  afterAll(async () => {
    if (short !== undefined && short.child.exitCode === null) {
      short.child.kill('SIGTERM');
      await short.exit;
    }
  });

  it('the demo keeps waiting through the server’s waits until a partner comes, then opens its channel', async () => {
    const code = `patient-${Date.now()}`;
    const one = await page();
    await one.goto(`${shortOrigin}/demo/?code=${code}&loopback=1`);
    await expectStatus(one, 'waiting');
    // Three of the server's waits end while the page waits.
    await new Promise((resolve) => setTimeout(resolve, 6500));
    expect(await statusOf(one)).toBe('waiting');
    const two = await page();
    await two.goto(`${shortOrigin}/demo/?code=${code}&loopback=1`);
    await Promise.all([expectStatus(one, 'open'), expectStatus(two, 'open')]);
  });

  it('pairup/browser’s findPeer and connectPeer wait as long as they were asked, past the server’s longest wait', async () => {
    const p = await page();
    await p.goto(`${shortOrigin}/demo/`);
    const inPage = p.evaluate<{ found: string; connected: string }>(`(async () => {
      const { findPeer, connectPeer } = await import(location.origin + '/client/pairup.js');
      const found = await findPeer({ url: location.origin, code: 'short-find', timeoutMs: 10000 });
      const peer = await connectPeer({ url: location.origin, code: 'short-connect', timeoutMs: 10000 });
      peer.close();
      return { found: found.peer, connected: peer.match.peer };
    })()`);
    inPage.catch(() => undefined); // its failure is the test's, below
    // Each partner comes after more than one of the server's waits.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const found = await findPeer({ url: shortOrigin, code: 'short-find', ca: cert, timeoutMs: 5000 });
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const connected = await connectPeer({ url: shortOrigin, code: 'short-connect', ca: cert, timeoutMs: 5000 });
    connected.close();
    expect(await inPage).toEqual({ found: found.self, connected: connected.match.self });
  });
});
