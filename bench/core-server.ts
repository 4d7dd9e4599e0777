/**
 * pairup's own per-request work without its HTTP framework, for `npm run bench -- --floor`: where the
 * floor is. Raw `node:http2` (allowHTTP1, the compatibility API, as the baselines) in front of
 * pairup's own lobby and in-memory queue, its pairing log line (info, the same buffered destination),
 * its metrics counting, and its answer (security and CORS headers, the same text or JSON). Left out:
 * Fastify (routing, hooks, validation, the reply), the connection guards, the overload watch, STUN.
 * Answers other than a match are bare (the benchmark's answers are matches).
 *
 * Run: TLS_CERT=… TLS_KEY=… PORT=0 node --import tsx bench/core-server.ts; prints {"port":N} once listening.
 */
import { readFileSync } from 'node:fs';
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import pino from 'pino';
import { loadConfig } from '../src/config.js';
import { Lobby } from '../src/core/lobby.js';
import type { Outcome, Room } from '../src/core/types.js';
import { connectionId, responseGone, watchResponse } from '../src/http/connection.js';
import { iceServersOf } from '../src/http/ice-servers.js';
import { matchAnswer } from '../src/http/match-answer.js';
import { securityHeaders } from '../src/http/security-headers.js';
import { clientAddressOf, formatAddress, limitKey } from '../src/net/address.js';
import { LogDestination } from '../src/ops/log-destination.js';
import { Metrics } from '../src/ops/metrics.js';
import { pairingLog } from '../src/ops/pairing-log.js';
import { MemoryQueue } from '../src/queue/memory.js';

const config = loadConfig(process.env);
const metrics = new Metrics(config.metricsMaxPools);
const lobby = new Lobby({ queue: new MemoryQueue(), limits: config, observer: metrics });
const logger = pino({ level: config.logLevel }, new LogDestination({ out: process.stdout }));
const logPairing = pairingLog(logger);
const clientAddress = clientAddressOf(config.trustProxy);
// As pairup by default: its STUN responder on the number of the HTTPS port, named by the request's host.
let listening: number | undefined;
const iceServers = iceServersOf({ publicHost: config.publicHost, stunPort: () => listening, turn: undefined });
const hostOf = (authority: string): string => (authority.startsWith('[') ? authority.slice(0, authority.indexOf(']') + 1) : (authority.split(':', 1)[0] ?? ''));
// What every pairup answer carries with the default CORS_ORIGINS (`*`).
const common = { 'access-control-allow-origin': '*', 'access-control-expose-headers': 'retry-after', ...securityHeaders() };
const TEXT = { ...common, 'content-type': 'text/plain; charset=utf-8' };
const JSON_TYPE = { ...common, 'content-type': 'application/json; charset=utf-8' };

function answer(res: Http2ServerResponse, status: number, headers: Record<string, string>, body: string): void {
  res.writeHead(status, { ...headers, 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
  metrics.response(status);
}

function findPeer(req: Http2ServerRequest, res: Http2ServerResponse, room: Room, text: boolean): void {
  const { ip, via } = clientAddress(req.socket.remoteAddress ?? '', req.headers['x-forwarded-for']);
  const joined = lobby.join({
    room,
    limitKey: limitKey(ip, config.ipv6PrefixBits),
    address: formatAddress(ip, req.socket.remotePort ?? 0),
    via,
    connection: connectionId(req),
    meta: undefined,
    timeoutMs: config.matchTimeoutMs,
    isGone: () => responseGone(res),
    watch: (onGone) => watchResponse(res, onGone),
  });
  const write = (outcome: Outcome): void => {
    if (outcome.kind === 'gone') return;
    if (outcome.kind !== 'matched') return answer(res, outcome.kind === 'timeout' ? 408 : 503, TEXT, outcome.kind);
    const { peer } = outcome;
    if (!outcome.initiator) logPairing({ room, matchId: outcome.matchId, waiter: peer.address, arrival: joined.address, across: false });
    if (text) answer(res, 200, TEXT, `${peer.address}\n`);
    else {
      const ice = iceServers(hostOf(req.headers.host ?? req.headers[':authority'] ?? ''), outcome.matchId);
      answer(res, 200, JSON_TYPE, JSON.stringify(matchAnswer(room, joined.address, outcome, ice, false)));
    }
  };
  if (joined.result !== undefined) write(joined.result);
  else void joined.outcome.then(write);
}

const server = createSecureServer(
  { allowHTTP1: true, cert: readFileSync(process.env.TLS_CERT ?? ''), key: readFileSync(process.env.TLS_KEY ?? '') },
  (req, res) => {
    const url = new URL(req.url, 'https://localhost');
    if (url.pathname === '/healthz') return answer(res, 200, JSON_TYPE, JSON.stringify({ status: 'ok', waiting: lobby.waiting }));
    const text = !(req.headers.accept ?? '').includes('json');
    findPeer(req, res, { kind: 'pool', name: url.searchParams.get('pool') ?? 'default' }, text);
  },
);
metrics.watchConnections(server);

server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const address = server.address();
  listening = typeof address === 'object' && address !== null ? address.port : undefined;
  process.stdout.write(`${JSON.stringify({ port: typeof address === 'object' && address !== null ? address.port : 0 })}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
