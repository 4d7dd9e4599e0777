/**
 * The WebSocket baseline: the least possible pairing-and-relay server on `ws` over node:https, for
 * `npm run bench -- --ws` to compare pairup's /ws with. The same messages as pairup (join, queued,
 * matched with pairup's fields, signal, leave, peer_left), an array per pool, no limits, no
 * validation beyond JSON.parse.
 *
 * Run: TLS_CERT=… TLS_KEY=… PORT=0 node --import tsx bench/ws-baseline.ts; prints {"port":N} once listening.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { WebSocketServer, type WebSocket } from 'ws';

interface Client {
  readonly socket: WebSocket;
  readonly address: string;
  pool?: string;
  peer?: Client;
}

const pools = new Map<string, Client[]>();
const server = createServer({ cert: readFileSync(process.env.TLS_CERT ?? ''), key: readFileSync(process.env.TLS_KEY ?? '') });
const wss = new WebSocketServer({ server, path: '/ws', maxPayload: 16_384 });
let waiting = 0;

function matched(client: Client, peer: Client, shared: { matchId: string; secret: string }, initiator: boolean): string {
  return JSON.stringify({
    type: 'matched',
    matchId: shared.matchId,
    pool: client.pool,
    secret: shared.secret,
    self: client.address,
    peer: peer.address,
    via: 'socket',
    portIsSource: true,
    initiator,
    waitedMs: 0,
    peerMeta: null,
  });
}

wss.on('connection', (socket, request) => {
  const client: Client = { socket, address: `${request.socket.remoteAddress ?? ''}:${request.socket.remotePort ?? 0}` };
  socket.on('message', (data) => {
    const message = JSON.parse((data as Buffer).toString('utf8')) as { type: string; pool?: string; data?: unknown };
    if (message.type === 'join') {
      const pool = message.pool ?? 'default';
      client.pool = pool;
      const other = pools.get(pool)?.shift();
      if (other === undefined) {
        const list = pools.get(pool) ?? [];
        list.push(client);
        pools.set(pool, list);
        waiting++;
        socket.send('{"type":"queued"}');
        return;
      }
      waiting--;
      if (pools.get(pool)?.length === 0) pools.delete(pool);
      const shared = { matchId: randomUUID(), secret: randomBytes(32).toString('base64url') };
      client.peer = other;
      other.peer = client;
      other.socket.send(matched(other, client, shared, true));
      socket.send(matched(client, other, shared, false));
    } else if (message.type === 'signal') {
      client.peer?.socket.send(JSON.stringify({ type: 'signal', data: message.data }));
    } else if (message.type === 'leave') {
      socket.close(1000);
    }
  });
  socket.on('close', () => {
    const list = client.pool === undefined || client.peer !== undefined ? undefined : pools.get(client.pool);
    const at = list?.indexOf(client) ?? -1;
    if (list !== undefined && at >= 0) {
      list.splice(at, 1);
      waiting--;
      if (list.length === 0 && client.pool !== undefined) pools.delete(client.pool);
    }
    const peer = client.peer;
    if (peer !== undefined && peer.socket.readyState === peer.socket.OPEN) {
      peer.peer = undefined;
      peer.socket.send('{"type":"peer_left"}');
      peer.socket.close(4002);
    }
  });
});

// /healthz, as the other servers answer it: how many wait.
server.on('request', (req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: 'ok', waiting }));
  } else {
    res.writeHead(404);
    res.end();
  }
});

server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof address === 'object' && address !== null ? address.port : 0 })}\n`);
});
