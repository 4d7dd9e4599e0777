/**
 * `npm run soak` (not part of CI): hundreds of thousands of pairings mixed with aborts and timeouts,
 * over keep-alive HTTP/1.1, fresh TLS connections and HTTP/2, against a server process of its own.
 * Afterwards: heap after a forced GC within 10% of where it started, open file descriptors back to
 * their starting count, nobody waiting, not one log line at warn or above. Prints those figures and
 * exits 1 if any check fails.
 *
 *   npm run soak                         # 200000 pairings (a few minutes on two cores)
 *   npm run soak -- --pairings 20000     # a shorter one
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type ClientHttp2Session } from 'node:http2';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateDevCertificate } from '../src/net/dev-certificate.js';
import { h1Get, h2Get, type Answer } from './client.js';
import { startServer, type RunningServer } from './servers.js';

const { values: args } = parseArgs({
  options: {
    pairings: { type: 'string', default: '200000' },
    concurrency: { type: 'string', default: '200' },
    'max-minutes': { type: 'string', default: '15' },
  },
});
const target = Number(args.pairings);
const concurrency = Number(args.concurrency);
const maxMs = Number(args['max-minutes']) * 60_000;

const POOLS = 50;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Counts {
  ok: number;
  timeouts: number;
  aborted: number;
  failed: number;
  firstFailure: string;
}

async function heapAfterGc(server: RunningServer): Promise<number> {
  const errFile = server.errFile as string;
  const before = readFileSync(errFile, 'utf8').length;
  process.kill(server.pid as number, 'SIGUSR2');
  for (let i = 0; i < 200; i++) {
    await sleep(25);
    const line = readFileSync(errFile, 'utf8').slice(before).split('\n').find((l) => l.includes('soakProbe'));
    if (line !== undefined) return (JSON.parse(line) as { soakProbe: { heapUsed: number } }).soakProbe.heapUsed;
  }
  throw new Error('the server did not report its heap');
}

const openFds = (pid: number | undefined): number => readdirSync(`/proc/${pid}/fd`).length;

async function waiting(origin: URL, ca: string): Promise<number> {
  const { body } = await h1Get(origin, '/healthz', { ca, agent: false });
  return (JSON.parse(body) as { waiting: number }).waiting;
}

/** Load until `pairings` more pairings were answered (both sides), or the time is up. */
async function load(origin: URL, ca: string, pairings: number, counts: Counts): Promise<void> {
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 100 });
  const sessions: ClientHttp2Session[] = Array.from({ length: 4 }, () => connect(origin.origin, { ca }));
  for (const session of sessions) session.on('error', () => undefined);
  const goal = counts.ok + pairings * 2;
  const deadline = Date.now() + maxMs;
  const loop = async (): Promise<void> => {
    while (counts.ok < goal && Date.now() < deadline) {
      const lone = Math.random() < 0.05;
      const path = lone
        ? `/?pool=lone-${Math.random().toString(36).slice(2)}&timeout=0.2`
        : `/?pool=soak-${Math.floor(Math.random() * POOLS)}&timeout=2`;
      const abort = new AbortController();
      const abortTimer = Math.random() < 0.1 ? setTimeout(() => abort.abort(), Math.random() * 300) : undefined;
      const kind = Math.random();
      try {
        const session = sessions[Math.floor(Math.random() * sessions.length)] as ClientHttp2Session;
        const answer: Answer =
          kind < 0.6
            ? await h1Get(origin, path, { ca, agent: keepAlive, signal: abort.signal })
            : kind < 0.75
              ? await h1Get(origin, path, { ca, agent: false, signal: abort.signal })
              : await h2Get(session, path, abort.signal);
        if (answer.status === 200) counts.ok++;
        else if (answer.status === 408) counts.timeouts++;
        else {
          counts.failed++;
          counts.firstFailure ||= `status ${answer.status}: ${answer.body}`;
        }
      } catch (error) {
        if (abort.signal.aborted) counts.aborted++;
        else {
          counts.failed++;
          counts.firstFailure ||= String(error);
        }
      } finally {
        clearTimeout(abortTimer);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  keepAlive.destroy();
  for (const session of sessions) session.destroy();
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pairup-soak-'));
  const pem = await generateDevCertificate(1);
  const tls = { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') };
  await writeFile(tls.certFile, pem.cert);
  await writeFile(tls.keyFile, pem.key);
  const probe = new URL('soak-probe.ts', import.meta.url).href;
  const server = await startServer('pairup', tls, dir, undefined, ['--expose-gc', '--import', import.meta.resolve('tsx'), '--import', probe]);
  const origin = new URL(server.origin);
  const counts: Counts = { ok: 0, timeouts: 0, aborted: 0, failed: 0, firstFailure: '' };
  let failed = false;
  try {
    process.stderr.write('soak: warming up (2000 pairings) ...\n');
    await load(origin, pem.cert, 2000, counts);
    await sleep(1000);
    const heap0 = await heapAfterGc(server);
    const fds0 = openFds(server.pid);
    const started = Date.now();
    const warm = { ...counts };
    process.stderr.write(`soak: ${target} pairings, ${concurrency} clients at a time ...\n`);
    const progress = setInterval(
      () => process.stderr.write(`soak: ${Math.floor((counts.ok - warm.ok) / 2)} pairings so far\n`),
      15_000,
    );
    await load(origin, pem.cert, target, counts);
    clearInterval(progress);
    const seconds = (Date.now() - started) / 1000;
    let left = await waiting(origin, pem.cert);
    for (let i = 0; i < 100 && left > 0; i++) {
      await sleep(50);
      left = await waiting(origin, pem.cert);
    }
    await sleep(2000); // closing connections let go of their descriptors
    const heap1 = await heapAfterGc(server);
    const fds1 = openFds(server.pid);
    const warnings = readFileSync(server.logFile as string, 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('{') && (JSON.parse(line) as { level: number }).level >= 40);
    const heapChange = (heap1 - heap0) / heap0;
    const checks: [string, boolean][] = [
      [`heap after GC ${(heap0 / 2 ** 20).toFixed(1)} -> ${(heap1 / 2 ** 20).toFixed(1)} MiB (${(heapChange * 100).toFixed(1)}%, limit ±10%)`, Math.abs(heapChange) <= 0.1],
      [`open file descriptors ${fds0} -> ${fds1}`, fds1 <= fds0],
      [`waiting at the end: ${left}`, left === 0],
      [`log lines at warn or above: ${warnings.length}${warnings[0] === undefined ? '' : ` (first: ${warnings[0]})`}`, warnings.length === 0],
      [`unexpected answers or errors: ${counts.failed}${counts.firstFailure === '' ? '' : ` (first: ${counts.firstFailure})`}`, counts.failed === 0],
    ];
    process.stdout.write(
      `pairup soak, ${new Date().toISOString()}: ${Math.floor((counts.ok - warm.ok) / 2)} pairings in ` +
        `${seconds.toFixed(0)} s (${counts.ok - warm.ok} answered 200, ${counts.timeouts - warm.timeouts} timed out, ` +
        `${counts.aborted - warm.aborted} aborted by the client)\n`,
    );
    for (const [text, ok] of checks) {
      process.stdout.write(`  ${ok ? 'ok  ' : 'FAIL'} ${text}\n`);
      if (!ok) failed = true;
    }
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
  if (failed) process.exitCode = 1;
}

await main();
