/**
 * The demo page's group chat (`/demo/?size=N&code=…`) in Chromium: N pages with one code form one
 * group over pairup's WebSocket, open a data channel each to each (a full mesh, on loopback), and
 * every page's line reaches every other page, labelled by its sender's index; a page that closes is
 * seen to leave by the others, who go on chatting; a size the server refuses is said plainly.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../helpers/chromium.js';
import { spawnServer, type ServerProcess } from '../helpers/process.js';
import { testCertificate } from '../helpers/server.js';

let browser: Browser | undefined;
let server: ServerProcess | undefined;
let origin: string;
let dir: string | undefined;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  const own = await mkdtemp(join(tmpdir(), 'pairup-mesh-demo-'));
  dir = own;
  const pem = await testCertificate();
  await writeFile(join(own, 'cert.pem'), pem.cert);
  await writeFile(join(own, 'key.pem'), pem.key);
  // The demo is served from the built dist/demo (npm run test:browser builds it first).
  const running = spawnServer({ HOST: '127.0.0.1', PORT: '0', TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem', MAX_WAITING_PER_IP: '0' }, own);
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

// Each test's pages close after it: a machine shared by other work need not hold every group's peers open.
afterEach(async () => {
  for (const context of contexts.splice(0)) await context.close().catch(() => undefined);
  probe = undefined;
});

/** A page of its own browser context (its own connections), trusting the test certificate. */
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

let probe: Page | undefined;
/** How many wait on the server now (its /healthz). */
async function waiting(): Promise<number> {
  probe ??= await page();
  const body = (await (await probe.request.get(`${origin}/healthz`)).json()) as { waiting: number };
  return body.waiting;
}

/**
 * `size` pages of the demo with one code, each opened once the one before waits on the server, so
 * that page i is member i (index 0 waited longest); resolves once every page's mesh is open.
 */
async function group(size: number, code: string): Promise<Page[]> {
  const pages: Page[] = [];
  for (let i = 0; i < size; i++) {
    const p = await page();
    await p.goto(`${origin}/demo/?size=${size}&code=${code}&loopback=1`);
    pages.push(p);
    if (i < size - 1) await expect.poll(waiting, { timeout: 10_000 }).toBe(i + 1);
  }
  await Promise.all(pages.map((p) => expectStatus(p, 'open')));
  return pages;
}

/** Types a line into page `p`'s chat and sends it (Enter). */
async function send(p: Page, text: string): Promise<void> {
  await p.locator('#message').fill(text);
  await p.locator('#message').press('Enter');
}

/** The messages page `p` received, sorted (senders' messages interleave in any order). */
async function received(p: Page): Promise<string[]> {
  return (await p.locator('#log li.peer').allTextContents()).sort();
}

/** Each page says hello; each page gets exactly the others' hellos, labelled by their indexes. */
async function everyoneHearsEveryone(pages: readonly Page[], indexes: readonly number[], text: (i: number) => string): Promise<void> {
  for (const [n, p] of pages.entries()) await send(p, text(indexes[n] ?? -1));
  for (const [n, p] of pages.entries()) {
    const expected = indexes.filter((i) => i !== indexes[n]).map((i) => `member ${i}: ${text(i)}`);
    await expect.poll(() => received(p), { timeout: 10_000 }).toEqual(expected.sort());
  }
}

const membersOf = (p: Page) => p.locator('#members li').allTextContents();
const expectedMembers = (size: number, self: number, state: (i: number) => string = () => 'open'): string[] =>
  Array.from({ length: size }, (_, i) => `member ${i}: ${i === self ? 'you' : state(i)}`);

describe('the demo page’s group chat in Chromium', () => {
  it('forms one group of three pages with ?size=3, lists its members, and every page’s message reaches both others', async () => {
    const pages = await group(3, `mesh3-${Date.now()}`);
    for (const [i, p] of pages.entries()) expect(await membersOf(p)).toEqual(expectedMembers(3, i));
    await everyoneHearsEveryone(pages, [0, 1, 2], (i) => `hello from page ${i}`);
    // A page's own line shows as its own, once.
    expect(await pages[0]?.locator('#log li.me').allTextContents()).toEqual(['hello from page 0']);
    expect(server?.stdout.filter((line) => /"level":(40|50|60)/.test(line))).toEqual([]);
  });

  it('forms one group of four pages with ?size=4, and every page’s message reaches the three others', async () => {
    const pages = await group(4, `mesh4-${Date.now()}`);
    for (const [i, p] of pages.entries()) expect(await membersOf(p)).toEqual(expectedMembers(4, i));
    await everyoneHearsEveryone(pages, [0, 1, 2, 3], (i) => `four say ${i}`);
  });

  it('shows the two others of a group of three that one page left, and they go on chatting', async () => {
    const pages = await group(3, `mesh-leave-${Date.now()}`);
    const [zero, one, two] = pages as [Page, Page, Page];
    await one.context().close();
    for (const [self, p] of [[0, zero], [2, two]] as const) {
      await expect.poll(() => p.locator('#log li.note').allTextContents(), { timeout: 20_000 }).toContain('member 1 left');
      expect(await membersOf(p)).toEqual(expectedMembers(3, self, (i) => (i === 1 ? 'left' : 'open')));
      expect(await statusOf(p)).toBe('open');
    }
    await everyoneHearsEveryone([zero, two], [0, 2], (i) => `still here, ${i}`);
    // The last other member gone: nobody is left to chat with.
    await two.context().close();
    await expectStatus(zero, 'everyone left');
    expect(await zero.locator('#chat').isHidden()).toBe(true);
  });

  it('says plainly that a size of 1 or 99 is refused, and opens nothing', async () => {
    for (const size of ['1', '99']) {
      const p = await page();
      const code = `bad-size-${size}-${Date.now()}`;
      await p.goto(`${origin}/demo/?size=${size}&code=${code}&loopback=1`);
      await expectStatus(p, 'failed: size must be a whole number from 2 to 8 (MAX_GROUP_SIZE)');
      expect(await p.locator('#steps li').allTextContents()).toEqual([
        `waiting for a group of ${size} with code ${code}`,
        'invalid_size: size must be a whole number from 2 to 8 (MAX_GROUP_SIZE)',
      ]);
      expect(await p.locator('#chat').isHidden()).toBe(true);
      expect(await p.locator('#members').isHidden()).toBe(true);
    }
  });

  it('takes the group’s size from a field on the page when it makes up a code', async () => {
    const p = await page();
    await p.goto(`${origin}/demo/?size=3`);
    await expectStatus(p, 'no code');
    expect(await p.locator('#size').inputValue()).toBe('3');
    await p.locator('#size').fill('4');
    await p.locator('#make').click();
    await p.waitForURL(/\/demo\/\?code=[a-z]+-[a-z]+-\d+&size=4$/);
    await expectStatus(p, 'waiting');
    expect(await p.locator('#steps li').first().textContent()).toMatch(/^waiting for a group of 4 with code [a-z]+-[a-z]+-\d+$/);
  });
});
