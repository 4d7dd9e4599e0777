/**
 * Every Node client against a server whose longest wait (MATCH_TIMEOUT_MS, here 1 s) is shorter than
 * what its caller asked for: each keeps asking until its own deadline, and meets a partner that
 * comes after several of the server's waits ended.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectPeer, findPeer, NoPeerError } from '../../src/client/index.js';
import { nodeArgs, runNode } from '../helpers/process.js';
import { startServer, type TestServer } from '../helpers/server.js';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
/** Later than two of the server's 1-second waits. */
const LATE_MS = 2500;
const later = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, LATE_MS));

let server: TestServer;
let dir: string;
let cacert: string;
beforeAll(async () => {
  server = await startServer({ MATCH_TIMEOUT_MS: '1000' });
  dir = await mkdtemp(join(tmpdir(), 'pairup-short-'));
  cacert = join(dir, 'ca.pem');
  await writeFile(cacert, server.cert);
});
afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('against a server whose MATCH_TIMEOUT_MS is 1 s', () => {
  it('findPeer and connectPeer wait their own timeoutMs and meet a partner that comes after 2.5 s', async () => {
    const found = findPeer({ url: server.origin, code: 'short-find', ca: server.cert, timeoutMs: 8000 });
    const connected = connectPeer({ url: server.origin, code: 'short-connect', ca: server.cert, timeoutMs: 8000 });
    await later();
    const [lateFound, lateConnected] = await Promise.all([
      findPeer({ url: server.origin, code: 'short-find', ca: server.cert, timeoutMs: 3000 }),
      connectPeer({ url: server.origin, code: 'short-connect', ca: server.cert, timeoutMs: 3000 }),
    ]);
    const [early, earlyChannel] = await Promise.all([found, connected]);
    expect([early.peer, earlyChannel.match.peer]).toEqual([lateFound.self, lateConnected.match.self]);
    earlyChannel.close();
    lateConnected.close();
  });

  it('findPeer and connectPeer end with NoPeerError at their own deadline, not the server’s', async () => {
    const started = performance.now();
    const [found, connected] = await Promise.all([
      findPeer({ url: server.origin, pool: 'short-nobody-1', ca: server.cert, timeoutMs: 2500 }).catch((error: unknown) => error),
      connectPeer({ url: server.origin, pool: 'short-nobody-2', ca: server.cert, timeoutMs: 2500 }).catch((error: unknown) => error),
    ]);
    const tookMs = performance.now() - started;
    expect([found, connected].map((error) => [error instanceof NoPeerError, (error as NoPeerError).message])).toEqual([
      [true, 'no peer came within 2.5 s'],
      [true, 'no peer came within 2.5 s'],
    ]);
    expect(tookMs).toBeGreaterThanOrEqual(2400);
    expect(tookMs).toBeLessThan(4500);
  });

  it('pairup find and pairup signal wait their --timeout and meet a partner that comes after 2.5 s', async () => {
    const pairup = (args: string[]) => runNode([...nodeArgs(CLI), ...args, '--cacert', cacert, '--timeout', '8']);
    const found = pairup(['find', server.origin, '--code', 'short-cli-find']);
    const signalled = pairup(['signal', server.origin, '--code', 'short-cli-signal']);
    await later();
    const lateFound = await findPeer({ url: server.origin, code: 'short-cli-find', ca: server.cert, timeoutMs: 3000 });
    const lateChannel = await connectPeer({ url: server.origin, code: 'short-cli-signal', ca: server.cert, timeoutMs: 3000 });
    // The command's stdin is closed: it leaves as soon as it is matched (leaving first here too raced it).
    const [findRun, signalRun] = await Promise.all([found, signalled]);
    lateChannel.close();
    expect(findRun).toEqual({ code: 0, stdout: `${lateFound.self}\n`, stderr: '' });
    const lines = signalRun.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect([signalRun.code, signalRun.stderr, lines.length, lines[0]?.type, lines[0]?.peer]).toEqual([0, '', 1, 'matched', lateChannel.match.self]);
  });
});
