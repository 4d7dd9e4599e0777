/**
 * Clients that vanish without closing (a cut link: no FIN, no RST) are found by TCP keep-alive
 * (HTTP/1.1) and HTTP/2 PING, and their waiters dropped. For real: the server and the client each run
 * in a network namespace this test creates, joined by a veth pair, and the test cuts the link.
 * Needs root and iproute2; where a namespace cannot be created, the test says so and is skipped.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testCertificate } from './helpers/server.js';
import { nodeArgs } from './helpers/process.js';

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const tag = `pu${process.pid % 100000}`;
const SERVER_NS = `${tag}s`;
const CLIENT_NS = `${tag}c`;
const NET = `10.231.${process.pid % 250}`;
const PORT = 3030;

const run = (...args: string[]): string => execFileSync(args[0] as string, args.slice(1), { encoding: 'utf8', stdio: 'pipe' });
const inNs = (ns: string, ...args: string[]): string => run('ip', 'netns', 'exec', ns, ...args);

/** Why namespaces cannot be used here, or undefined when they can. */
function unavailable(): string | undefined {
  try {
    run('ip', 'netns', 'add', `${tag}p`);
    run('ip', 'netns', 'del', `${tag}p`);
    return undefined;
  } catch (error) {
    return (error as Error).message.split('\n')[0];
  }
}

const reason = unavailable();
let dir = '';
const processes: ChildProcess[] = [];

function setUpNetwork(): void {
  run('ip', 'netns', 'add', SERVER_NS);
  run('ip', 'netns', 'add', CLIENT_NS);
  run('ip', 'link', 'add', `${tag}a`, 'type', 'veth', 'peer', 'name', `${tag}b`);
  run('ip', 'link', 'set', `${tag}a`, 'netns', SERVER_NS);
  run('ip', 'link', 'set', `${tag}b`, 'netns', CLIENT_NS);
  inNs(SERVER_NS, 'ip', 'addr', 'add', `${NET}.1/24`, 'dev', `${tag}a`);
  inNs(CLIENT_NS, 'ip', 'addr', 'add', `${NET}.2/24`, 'dev', `${tag}b`);
  for (const [ns, dev] of [
    [SERVER_NS, `${tag}a`],
    [CLIENT_NS, `${tag}b`],
  ] as const) {
    inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
    inNs(ns, 'ip', 'link', 'set', dev, 'up');
  }
  // The server never needs ARP for the client: once the client's address is gone, the server's
  // sends must still leave and go unanswered, not fail at the server for want of a neighbour.
  const mac = /link\/ether ([0-9a-f:]{17})/.exec(inNs(CLIENT_NS, 'ip', '-o', 'link', 'show', 'dev', `${tag}b`))?.[1];
  if (mac === undefined) throw new Error('no MAC address on the client side of the link');
  inNs(SERVER_NS, 'ip', 'neigh', 'replace', `${NET}.2`, 'lladdr', mac, 'dev', `${tag}a`, 'nud', 'permanent');
}

function start(ns: string, args: string[], env: Record<string, string>): { child: ChildProcess; output: () => string } {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  processes.push(child);
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  return { child, output: () => output };
}

/** The server's /healthz `waiting`, asked from inside its own namespace. */
function waiting(): number {
  const script = `require('https').get({host:'127.0.0.1',port:${PORT},path:'/healthz',ca:require('fs').readFileSync(${JSON.stringify(join(dir, 'cert.pem'))})},r=>{let b='';r.on('data',d=>b+=d);r.on('end',()=>console.log(JSON.parse(b).waiting))})`;
  return Number(inNs(SERVER_NS, process.execPath, '-e', script).trim());
}

async function until(predicate: () => boolean, ms: number, what: string): Promise<number> {
  const started = Date.now();
  while (!predicate()) {
    if (Date.now() - started > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return Date.now() - started;
}

describe('half-open connections', () => {
  beforeAll(async () => {
    if (reason !== undefined) return;
    dir = await mkdtemp(join(tmpdir(), 'pairup-half-open-'));
    const { cert, key } = await testCertificate();
    await writeFile(join(dir, 'cert.pem'), cert);
    await writeFile(join(dir, 'key.pem'), key);
    setUpNetwork();
  });

  afterAll(async () => {
    for (const child of processes) child.kill('SIGKILL');
    if (reason !== undefined) return;
    for (const ns of [SERVER_NS, CLIENT_NS]) {
      try {
        run('ip', 'netns', 'del', ns);
      } catch {
        // already gone
      }
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('drops the waiters of a client whose link was cut, over HTTP/1.1 and HTTP/2', async (context) => {
    if (reason !== undefined) {
      context.skip(`cannot create a network namespace here (${reason}); CI runs this as root`);
      return;
    }
    const server = start(SERVER_NS, nodeArgs(MAIN), {
      HOST: '0.0.0.0',
      PORT: String(PORT),
      TLS_CERT: join(dir, 'cert.pem'),
      TLS_KEY: join(dir, 'key.pem'),
      KEEPALIVE_MS: '1000',
      MATCH_TIMEOUT_MS: '60000',
    });
    await until(() => server.output().includes('Server listening'), 15_000, 'the server');

    // One waiter over HTTP/1.1 and one over HTTP/2, from the client's namespace.
    const client = `
      const https = require('https'), http2 = require('http2');
      https.get({ host: '${NET}.1', port: ${PORT}, path: '/?pool=h1', rejectUnauthorized: false, agent: false }).on('error', () => {});
      const session = http2.connect('https://${NET}.1:${PORT}', { rejectUnauthorized: false });
      session.on('error', () => {});
      session.request({ ':path': '/?pool=h2' }).on('error', () => {});
      setInterval(() => {}, 1000);`;
    start(CLIENT_NS, ['-e', client], {});
    await until(() => waiting() === 2, 15_000, 'two waiters');
    // Let everything already sent on both connections be delivered first: data still unacknowledged
    // when the link goes would be retransmitted for many minutes instead of keep-alive probed.
    await new Promise((resolve) => setTimeout(resolve, 2000));

    // The client's address disappears: the server's packets still leave (its link is up) but nothing
    // answers, as when a link fails somewhere between the two. (Taking the veth down would make the
    // server's own sends fail, which the kernel treats as congestion and retries forever.)
    inNs(CLIENT_NS, 'ip', 'addr', 'flush', 'dev', `${tag}b`);
    // HTTP/2: the PING of the next second goes unanswered. HTTP/1.1: TCP keep-alive, 1 s of silence,
    // then ten probes a second apart (Node 20 sets the count and interval on each socket).
    let seen = 2;
    const h2DroppedAfterMs = await until(() => (seen = waiting()) < 2, 10_000, 'the HTTP/2 waiter to be dropped');
    expect(h2DroppedAfterMs).toBeLessThan(5_000);
    expect(seen).toBe(1);
    await until(() => waiting() === 0, 25_000, 'the HTTP/1.1 waiter to be dropped').catch((error: unknown) => {
      // The server's sockets say why: keep-alive probes, or data being retransmitted.
      throw new Error(`${String(error)}\n${inNs(SERVER_NS, 'ss', '-tino', 'state', 'all')}`);
    });
    expect(server.output()).not.toMatch(/"level":(40|50|60)/);
  }, 90_000);
});
