/**
 * One trial of the demo page: two Chromium pages, each browser started inside its peer's namespace,
 * open `/demo/?code=…` one after the other. The trial succeeds when both pages say `open`; it reads
 * the selected candidate pair from each page's RTCPeerConnection (the demo's `window.pairupDemo`).
 */
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { Peer } from '../topology.js';
import type { TrialResult } from '../report.js';

export const CHROMIUM = '/usr/bin/chromium';
/** The page gives up after 20 s (openDataChannel's own timeout); a few seconds more for its word. */
const OPEN_LIMIT_MS = 25_000;
const POLL_MS = 100;

/** The flags of the browser tests (test/browser/demo.test.ts): real host candidates, no mDNS names. */
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--allow-loopback-in-peer-connection',
];

/**
 * Chromium inside `peer`'s namespace: playwright-core starts a wrapper that execs `ip netns exec`,
 * which execs Chromium (one PID throughout, the one playwright stops). The DevTools pipe is inherited,
 * so the lab drives a browser whose network is the peer's alone.
 */
export async function launchIn(peer: Peer, dir: string): Promise<Browser> {
  const wrapper = join(dir, `chromium-${peer.side}-${peer.behaviour}`);
  await writeFile(wrapper, `#!/bin/sh\nexec ip netns exec '${peer.ns}' ${CHROMIUM} "$@"\n`);
  await chmod(wrapper, 0o755);
  return chromium.launch({ executablePath: wrapper, headless: true, args: FLAGS, timeout: 30_000 });
}

/**
 * Stamps, in the page, the moment `#status` first reads `open` (wall clock: both browsers share it),
 * and each step the demo lists with its time since the page's load (to read a failure by).
 */
const STAMP_OPEN = `
window.__labOpenAt = null;
document.addEventListener('DOMContentLoaded', () => {
  const status = document.getElementById('status');
  const steps = document.getElementById('steps');
  if (status === null || steps === null) return;
  new MutationObserver(() => {
    for (const item of steps.querySelectorAll('li:not([data-ms])')) item.dataset.ms = String(Math.round(performance.now()));
  }).observe(steps, { childList: true });
  const check = () => {
    if (window.__labOpenAt === null && status.textContent === 'open') window.__labOpenAt = performance.timeOrigin + performance.now();
  };
  new MutationObserver(check).observe(status, { childList: true, characterData: true, subtree: true });
  check();
});`;

/** The selected candidate pair of the demo's connection: local and remote candidate types and addresses. */
const SELECTED_PAIR = `(async () => {
  const connection = window.pairupDemo && window.pairupDemo.connection;
  if (!connection) return null;
  const stats = await connection.getStats();
  let pair;
  stats.forEach((report) => {
    if (report.type === 'transport' && report.selectedCandidatePairId) pair = stats.get(report.selectedCandidatePairId);
  });
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId);
  const remote = stats.get(pair.remoteCandidateId);
  return {
    local: local.candidateType, remote: remote.candidateType,
    localAddress: local.address + ':' + local.port, remoteAddress: remote.address + ':' + remote.port,
  };
})()`;

/** The demo's steps, each with its time since the page's load. */
const STEPS = `[...document.querySelectorAll('#steps li')].map((item) => item.textContent + ' +' + (item.dataset.ms ?? '?') + 'ms')`;

interface SelectedPair {
  readonly local: string;
  readonly remote: string;
  readonly localAddress: string;
  readonly remoteAddress: string;
}

const statusOf = (page: Page): Promise<string> => page.locator('#status').textContent().then((text) => text ?? '');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function browserTrial(a: Browser, b: Browser, origin: string, code: string): Promise<TrialResult> {
  const contexts = await Promise.all([a, b].map((browser) => browser.newContext({ ignoreHTTPSErrors: true })));
  try {
    const pages = await Promise.all(contexts.map((context) => context.newPage()));
    const [first, second] = pages as [Page, Page];
    for (const page of pages) await page.addInitScript(STAMP_OPEN);
    const url = `${origin}/demo/?code=${encodeURIComponent(code)}`;
    await first.goto(url);
    for (let i = 0; i < 100 && (await statusOf(first)) !== 'waiting'; i++) await sleep(POLL_MS);
    await second.goto(url);
    // The pair can form from the second page's load on: the time to open is counted from there.
    const loadedAt = await second.evaluate<number>('performance.timeOrigin');
    let statuses: string[] = [];
    for (let i = 0; i < OPEN_LIMIT_MS / POLL_MS; i++) {
      statuses = await Promise.all(pages.map(statusOf));
      if (statuses.every((s) => s === 'open') || statuses.some((s) => s.startsWith('failed') || s === 'peer left' || s === 'code used')) break;
      await sleep(POLL_MS);
    }
    const steps = await Promise.all(pages.map((page) => page.evaluate<string[]>(STEPS)));
    const detail = pages.map((_, i) => `${i === 0 ? 'a' : 'b'}: ${statuses[i] ?? '?'}; ${(steps[i] ?? []).join(' | ')}`).join('\n');
    const matched = steps.every((list) => list.some((text) => text.startsWith('matched with ')));
    if (!statuses.every((s) => s === 'open')) return { ok: false, matched, detail };
    const openAt = await Promise.all(pages.map((page) => page.evaluate<number | null>('window.__labOpenAt')));
    const pairs = await Promise.all(pages.map((page) => page.evaluate<SelectedPair | null>(SELECTED_PAIR)));
    if (openAt.includes(null) || pairs.includes(null)) return { ok: false, matched, detail: `${detail}\nopen, but no open time or selected pair: ${JSON.stringify({ openAt, pairs })}` };
    const selected = pairs as SelectedPair[];
    const relayed = selected.some((pair) => pair.local === 'relay' || pair.remote === 'relay');
    const via = relayed ? ('relay' as const) : ('direct' as const);
    return {
      ok: true,
      matched,
      via,
      // Each page reported the pair it selected before it showed "open".
      reports: selected.map((pair) => (pair.local === 'relay' || pair.remote === 'relay' ? 'relay' : 'direct')),
      ms: Math.round(Math.max(...(openAt as number[])) - loadedAt),
      path: selected.map((pair) => `${pair.local}/${pair.remote}`).join(' ↔ '),
      detail: `${detail}\n${selected.map((pair) => `${pair.localAddress} → ${pair.remoteAddress}`).join('; ')}`,
    };
  } finally {
    await Promise.all(contexts.map((context) => context.close().catch(() => undefined)));
  }
}
