/**
 * The baseline: the least possible Node.js HTTPS pairing server, for the benchmark to compare with.
 * node:http2 with allowHTTP1 and the compatibility API, no framework, an array per pool, pair or
 * queue in the request callback, a waiter dropped when its client goes. It answers the same JSON
 * (`self`, `peer`) the workloads verify, or (without JSON in Accept) the peer's address as text, and
 * `/healthz` with the number waiting.
 *
 * With BASELINE_PAYLOAD=pairup it answers with pairup's security headers and all the fields of
 * pairup's JSON answer instead (`npm run bench -- --baseline-payload pairup`): what the required
 * payload alone costs, apart from everything else pairup does.
 *
 * Run: TLS_CERT=… TLS_KEY=… PORT=0 node --import tsx bench/baseline.ts; prints {"port":N} once listening.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { securityHeaders } from '../src/http/security-headers.js';

const fullPayload = process.env.BASELINE_PAYLOAD === 'pairup';
const FULL_HEADERS = { ...securityHeaders(), 'content-type': 'application/json; charset=utf-8' };
const FULL_TEXT_HEADERS = { ...securityHeaders(), 'content-type': 'text/plain; charset=utf-8' };

interface Waiter {
  readonly res: Http2ServerResponse;
  readonly address: string;
  /** Asked for text (no JSON in Accept), as curl and wrk do: the answer is the peer's address. */
  readonly text: boolean;
}

const pools = new Map<string, Waiter[]>();
let waiting = 0;

function addressOf(req: Http2ServerRequest): string {
  const ip = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  return ip.includes(':') ? `[${ip}]:${req.socket.remotePort}` : `${ip}:${req.socket.remotePort}`;
}

/** What both partners share when answering with pairup's payload. */
interface Shared {
  readonly pool: string;
  readonly matchId: string;
  readonly secret: string;
}

function answer(res: Http2ServerResponse, text: boolean, self: string, peer: string, shared?: Shared, initiator = false): void {
  if (text) {
    res.writeHead(200, shared === undefined ? { 'content-type': 'text/plain' } : { ...FULL_TEXT_HEADERS, 'content-length': Buffer.byteLength(peer) + 1 });
    res.end(`${peer}\n`);
    return;
  }
  if (shared === undefined) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ self, peer }));
    return;
  }
  const { pool, matchId, secret } = shared;
  const body = JSON.stringify({ matchId, pool, secret, self, peer, via: 'socket', portIsSource: true, initiator, waitedMs: 0 });
  res.writeHead(200, { ...FULL_HEADERS, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const server = createSecureServer(
  { allowHTTP1: true, cert: readFileSync(process.env.TLS_CERT ?? ''), key: readFileSync(process.env.TLS_KEY ?? '') },
  (req, res) => {
    const url = new URL(req.url, 'https://localhost');
    if (url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'ok', waiting }));
      return;
    }
    const pool = url.searchParams.get('pool') ?? 'default';
    const self = addressOf(req);
    const text = !(req.headers.accept ?? '').includes('json');
    const queue = pools.get(pool);
    const peer = queue?.shift();
    if (peer !== undefined) {
      waiting--;
      if (queue?.length === 0) pools.delete(pool);
      const shared = fullPayload ? { pool, matchId: randomUUID(), secret: randomBytes(32).toString('base64url') } : undefined;
      answer(peer.res, peer.text, peer.address, self, shared, true);
      answer(res, text, self, peer.address, shared);
      return;
    }
    const waiter = { res, address: self, text };
    if (queue === undefined) pools.set(pool, [waiter]);
    else queue.push(waiter);
    waiting++;
    res.on('close', () => {
      const list = pools.get(pool);
      const index = list?.indexOf(waiter) ?? -1;
      if (list === undefined || index < 0) return;
      list.splice(index, 1);
      waiting--;
      if (list.length === 0) pools.delete(pool);
    });
  },
);

server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof address === 'object' && address !== null ? address.port : 0 })}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
