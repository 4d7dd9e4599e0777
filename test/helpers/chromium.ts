/**
 * Debian's Chromium (/usr/bin/chromium) driven by playwright-core, headless, WebRTC kept on loopback:
 * the browser of the browser suite (`npm run test:browser`).
 */
import { spawnSync } from 'node:child_process';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  if (spawnSync('sh', ['-c', `test -x ${CHROMIUM}`]).status !== 0) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // WebRTC on loopback: real host candidates (not mDNS names), loopback allowed.
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      '--allow-loopback-in-peer-connection',
    ],
  });
}
