import type { Http2SecureServer } from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from './config.js';

/**
 * What the server does to connections before any request: cut slow and silent ones, probe for
 * clients that vanished without closing, and log failed handshakes quietly.
 */
export function guardConnections(
  server: Http2SecureServer,
  config: Pick<Config, 'headersTimeoutMs' | 'idleTimeoutMs' | 'keepaliveMs'>,
  log: FastifyBaseLogger,
): void {
  limitSlowClients(server, config.headersTimeoutMs, config.idleTimeoutMs);
  if (config.keepaliveMs > 0) probeSilentClients(server, config.keepaliveMs);
  // Plain HTTP on the TLS port, old protocol versions, scanners: the client's problem, not ours.
  server.on('tlsClientError', (error: Error & { code?: string }, socket: TLSSocket) => {
    log.debug({ code: error.code, remote: socket.remoteAddress }, 'TLS handshake failed');
  });
}

/**
 * Slowloris: Node's HTTP/1.1 handling in an allowHTTP1 server cuts a connection whose request headers
 * take longer than `headersTimeout` (counted from the connection's start for its first request),
 * answering 408 through the client-error handler. A request that has fully arrived is never cut,
 * however long it then waits for a partner. Connections are checked every
 * `connectionsCheckingInterval`, read when the server starts listening: 30 s by default, too coarse.
 *
 * Silent connections: one that has sent nothing (HTTP/1.1) or opened no stream (HTTP/2, which has no
 * headers timer) `idleTimeoutMs` after its TLS handshake is closed.
 */
function limitSlowClients(server: Http2SecureServer, headersTimeoutMs: number, idleTimeoutMs: number): void {
  const http1 = server as Http2SecureServer & { headersTimeout: number; connectionsCheckingInterval: number };
  http1.headersTimeout = headersTimeoutMs;
  http1.connectionsCheckingInterval = Math.min(1000, Math.max(50, Math.floor(headersTimeoutMs / 4)));
  server.on('secureConnection', (socket: TLSSocket) => {
    if (socket.alpnProtocol === 'h2') return; // its session is timed below
    const silent = setTimeout(() => socket.destroy(), idleTimeoutMs);
    silent.unref();
    const spoke = (): void => clearTimeout(silent);
    socket.once('data', spoke);
    socket.once('close', spoke);
  });
  server.on('session', (session) => {
    const silent = setTimeout(() => session.destroy(), idleTimeoutMs);
    silent.unref();
    const spoke = (): void => clearTimeout(silent);
    session.once('stream', spoke);
    session.once('close', spoke);
  });
}

/**
 * Half-open connections: a client that vanished without closing (power loss, a cut link) leaves a
 * waiter nobody will ever answer. TCP keep-alive makes the kernel probe every silent connection
 * (after `keepaliveMs` idle, then ten probes a second apart: Node 20 sets those on each socket on
 * Linux), and each HTTP/2 session is PINGed every `keepaliveMs`: one whose previous PING is still
 * unanswered is destroyed. Either way the waiter's response closes and its ticket settles as gone.
 */
function probeSilentClients(server: Http2SecureServer, keepaliveMs: number): void {
  server.on('connection', (socket: Socket) => socket.setKeepAlive(true, keepaliveMs));
  server.on('session', (session) => {
    let unanswered = false;
    const probe = setInterval(() => {
      if (unanswered) {
        session.destroy();
        return;
      }
      unanswered = true;
      session.ping((error) => {
        if (error === null) unanswered = false;
      });
    }, keepaliveMs);
    probe.unref();
    session.once('close', () => clearInterval(probe));
  });
}
