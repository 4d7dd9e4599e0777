/**
 * The log's reader cannot hold the server: the real process, forked with its standard output on a
 * FIFO whose reader stops reading (a full pipe) or goes away (EPIPE), serves on, and SIGTERM ends it
 * within SHUTDOWN_GRACE_MS, in either LOG_FORMAT; what waits for a slow reader is bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, openSync, readSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LogDestination } from '../../src/ops/log-destination.js';
import { nodeArgs, runCommand } from '../helpers/process.js';
import { ask, testCertificate, TestClient } from '../helpers/server.js';

const MAIN = new URL('../../src/main.ts', import.meta.url).pathname;
const GRACE_MS = 3000;

let dir: string;
let child: ChildProcess | undefined;
let reader: number | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairup-log-'));
});
afterEach(async () => {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  child = undefined;
  if (reader !== undefined) closeSync(reader);
  reader = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** Reads what the FIFO holds now, without waiting ('' when empty). */
function readNow(fd: number): string {
  const buffer = Buffer.alloc(1 << 16);
  let text = '';
  for (;;) {
    try {
      const n = readSync(fd, buffer);
      if (n === 0) return text;
      text += buffer.toString('utf8', 0, n);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') return text;
      throw error;
    }
  }
}

/** The server with its standard output on a FIFO this test reads; resolves once it listens. */
async function start(env: Record<string, string>): Promise<{ origin: string; cert: string; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>; read: () => string; first: string }> {
  const { cert, key } = await testCertificate();
  await writeFile(join(dir, 'cert.pem'), cert);
  await writeFile(join(dir, 'key.pem'), key);
  const fifo = join(dir, 'log');
  expect((await runCommand('mkfifo', [fifo])).code).toBe(0);
  const readFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  reader = readFd;
  const writeFd = openSync(fifo, constants.O_WRONLY);
  const proc = spawn(process.execPath, nodeArgs(MAIN), {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', ADMIN_PORT: '0', HOST: '127.0.0.1', PORT: '0', TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem', SHUTDOWN_GRACE_MS: String(GRACE_MS), ...env },
    stdio: ['ignore', writeFd, 'ignore'],
  });
  child = proc;
  closeSync(writeFd);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  let text = '';
  const deadline = Date.now() + 20_000;
  for (;;) {
    text += readNow(readFd);
    const port = /Server listening at https:\/\/[^ ]+:(\d+)["\n]/.exec(text)?.[1];
    if (port !== undefined) return { origin: `https://127.0.0.1:${port}`, cert, exit, read: () => readNow(readFd), first: text };
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`server did not start: ${text}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** `count` pairings, a log line each, `batch` pools at a time, between two HTTP/2 connections (one connection is never paired with itself). */
async function pairings([one, two]: readonly [TestClient, TestClient], origin: string, count: number, batch = 50): Promise<number[]> {
  const statuses: number[] = [];
  for (let done = 0; done < count; done += batch) {
    const answers = await Promise.all(
      Array.from({ length: Math.min(batch, count - done) }, (_, i) => `pool-${'x'.repeat(48)}-${done + i}`).flatMap((pool) => [
        ask(one.client, origin, `/?pool=${pool}`),
        ask(two.client, origin, `/?pool=${pool}`),
      ]),
    );
    statuses.push(...answers.map((answer) => answer.status));
  }
  return statuses;
}

/** Resolves with the exit, or with 'still running' after `ms`. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | 'still running'> {
  return Promise.race([promise, new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), ms).unref())]);
}

describe('the log’s reader cannot hold the server', () => {
  it.each(['json', 'pretty'] as const)('a reader that stopped reading (full pipe): serving goes on, SIGTERM exits 0 within the grace (%s)', async (format) => {
    const { origin, cert, exit, read, first } = await start({ LOG_FORMAT: format });
    const listening = first.split('\n').find((line) => line.includes('Server listening'));
    if (format === 'json') expect((JSON.parse(listening ?? '') as { msg: string }).msg).toMatch(/^Server listening at https:\/\/127\.0\.0\.1:\d+$/);
    else expect(listening).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(\d+\): Server listening at https:\/\/127\.0\.0\.1:\d+$/);
    // From here on nothing reads the FIFO: 400 lines of about 200 bytes fill its 64 KiB.
    const PAIRINGS = 400;
    const clients = [new TestClient(origin, cert, { h2: true }), new TestClient(origin, cert, { h2: true })] as const;
    try {
      expect(new Set(await pairings(clients, origin, PAIRINGS))).toEqual(new Set([200]));
      expect((await ask(clients[0].client, origin, '/healthz')).status).toBe(200);
      expect(await pairings(clients, origin, 1)).toEqual([200, 200]);
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
    const started = Date.now();
    child?.kill('SIGTERM');
    expect(await within(exit, GRACE_MS + 2000)).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(GRACE_MS);
    // Lines were still waiting for the reader when the process exited: the pipe was full.
    const paired = read().split('\n').filter((line) => line.includes('paired')).length;
    expect(paired).toBeLessThan(PAIRINGS);
  });

  it('a reader that is gone (EPIPE) before anything more is logged: SIGTERM exits 0 within the grace', async () => {
    // The first line to meet the closed pipe is a shutdown's own (pino's exit flush retried it forever).
    const { exit } = await start({});
    closeSync(reader ?? -1);
    reader = undefined;
    const started = Date.now();
    child?.kill('SIGTERM');
    expect(await within(exit, GRACE_MS + 2000)).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(GRACE_MS);
  });

  it('a reader that is gone (EPIPE): serving goes on, SIGTERM exits 0 within the grace', async () => {
    const { origin, cert, exit } = await start({});
    closeSync(reader ?? -1);
    reader = undefined;
    const clients = [new TestClient(origin, cert, { h2: true }), new TestClient(origin, cert, { h2: true })] as const;
    try {
      expect(await pairings(clients, origin, 3)).toEqual([200, 200, 200, 200, 200, 200]);
      expect((await ask(clients[0].client, origin, '/healthz')).status).toBe(200);
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
    const started = Date.now();
    child?.kill('SIGTERM');
    expect(await within(exit, GRACE_MS + 2000)).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(GRACE_MS);
  });
});

describe('LogDestination', () => {
  it('holds at most 4 MiB for a reader that does not keep up, and counts the lines it dropped in a line of their own once it does', () => {
    const held: (() => void)[] = [];
    let written = '';
    // Takes each chunk but confirms none until told to: a reader that stopped reading.
    const out = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        written += chunk.toString('utf8');
        held.push(callback);
      },
    });
    const reports: number[] = [];
    const log = new LogDestination({ out, dropped: (count) => reports.push(count) });
    try {
      const line = `${JSON.stringify({ msg: 'x'.repeat(1000) })}\n`;
      for (let i = 0; i < 6000; i++) log.write(line);
      log.flush();
      expect(out.writableLength).toBeLessThanOrEqual(4 * 1024 * 1024 + 8192);
      const dropped = log.droppedLines;
      expect(dropped).toBeGreaterThan(1500);
      expect(reports).toEqual([]);
      // The reader catches up: the next lines go out, and the count is reported once.
      for (let i = 0; i < 10_000 && held.length > 0; i++) held.shift()?.();
      log.write('{"msg":"after"}\n');
      log.flush();
      expect(reports).toEqual([dropped]);
      expect(log.droppedLines).toBe(0);
      expect(written.endsWith('{"msg":"after"}\n')).toBe(true);
    } finally {
      log.close();
    }
  });
});
