/**
 * The demo page against a server with app keys (APP_KEYS_FILE), in Chromium: two pages with the key
 * in their address (`/demo/?key=…&code=…`) pair and open their channel, counted under their app; a
 * page without a key, or with a key the file does not list, says the server's refusal plainly and
 * how to give a key. (A key's `origins` never refuse the demo: it is pairup's own origin.)
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashKey } from '../../src/net/app-keys.js';
import { launchChromium } from '../helpers/chromium.js';
import { connectionsCounted, freePort, spawnServer, type ServerProcess } from '../helpers/process.js';
import { testCertificate } from '../helpers/server.js';

const KEY = 'pairup_demo-key-test-dddddddddddddddddddddddddddddddddddd';
const HINT = 'this server takes app keys: open this page with its app key in the address, /demo/?key=KEY&code=…';

let browser: Browser | undefined;
let server: ServerProcess | undefined;
let origin: string;
let dir: string | undefined;
let adminPort: number;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  const own = await mkdtemp(join(tmpdir(), 'pairup-browser-key-'));
  dir = own;
  const pem = await testCertificate();
  await writeFile(join(own, 'cert.pem'), pem.cert);
  await writeFile(join(own, 'key.pem'), pem.key);
  await writeFile(join(own, 'keys.json'), JSON.stringify({ keys: [{ app: 'demo', sha256: hashKey(KEY) }] }));
  adminPort = await freePort();
  const running = spawnServer(
    { HOST: '127.0.0.1', PORT: '0', TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem', MAX_WAITING_PER_IP: '0', ADMIN_PORT: String(adminPort), APP_KEYS_FILE: 'keys.json' },
    own,
  );
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

async function page(): Promise<Page> {
  if (browser === undefined) throw new Error('no browser');
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 480, height: 640 } });
  contexts.push(context);
  return context.newPage();
}

const statusOf = (p: Page) => p.locator('#status').textContent();
async function expectStatus(p: Page, text: string): Promise<void> {
  await expect.poll(() => statusOf(p), { timeout: 20_000 }).toBe(text);
}

/** pairup_connections_total of app `demo`, by via, from the server's admin listener. */
const demoConnections = (): Promise<Record<string, number>> => connectionsCounted(adminPort, 'demo');

describe('the demo page on a server with app keys', () => {
  it('pairs two pages that have the key in their address, and keeps the key in the link it shows', async () => {
    const code = `keyed-${Date.now()}`;
    const address = `${origin}/demo/?key=${KEY}&code=${code}&loopback=1`;
    const [one, two] = [await page(), await page()];
    await one.goto(address);
    await expectStatus(one, 'waiting');
    expect(await one.locator('#link').textContent()).toBe(address);
    await two.goto(address);
    await Promise.all([expectStatus(one, 'open'), expectStatus(two, 'open')]);
    await one.locator('#message').fill('hello with a key');
    await one.locator('#message').press('Enter');
    await expect.poll(() => two.locator('#log li.peer').allTextContents(), { timeout: 10_000 }).toEqual(['hello with a key']);
    // Each page's report of its connection is counted under its app.
    for (let i = 0; i < 50 && (await demoConnections()).direct !== 2; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await demoConnections()).toEqual({ direct: 2, relay: 0, failed: 0 });
  });

  it('shows a page without a key the 401 key_required refusal and how to give a key', async () => {
    const code = `no-key-${Date.now()}`;
    const p = await page();
    await p.goto(`${origin}/demo/?code=${code}&loopback=1`);
    await expectStatus(p, 'refused (401 key_required)');
    expect(await p.locator('#steps li').allTextContents()).toEqual([
      `waiting for a partner with code ${code}`,
      '401 key_required: this server takes requests with an app key: send Authorization: Bearer KEY, or ?key=KEY',
      HINT,
    ]);
    expect(await p.locator('#chat').isHidden()).toBe(true);
  });

  it('shows a key the file does not list as 401 unknown_key', async () => {
    const unknown = await page();
    await unknown.goto(`${origin}/demo/?key=pairup_not-a-key&code=unknown-${Date.now()}`);
    await expectStatus(unknown, 'refused (401 unknown_key)');
    expect((await unknown.locator('#steps li').allTextContents()).slice(1)).toEqual(['401 unknown_key: this app key is not valid here', HINT]);
    expect(server?.stdout.filter((line) => /"level":(40|50|60)/.test(line))).toEqual([]);
  });
});
