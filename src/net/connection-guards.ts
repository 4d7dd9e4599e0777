import type { IncomingMessage, ServerResponse } from 'node:http';
import { constants as h2, type Http2SecureServer, type Http2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config.js';
import { MAX_HEADER_BYTES } from '../protocol/schemas.js';
import { connectionStopped, isNotRead } from './unread-connection.js';

type GuardConfig = Pick<Config, 'headersTimeoutMs' | 'idleTimeoutMs' | 'keepaliveMs'>;

/** What shutdown needs from the guards. */
export interface ConnectionGuards {
  /**
   * Ends every request whose body has not fully arrived: nobody waits on it, and it would hold
   * the server's close until its own deadline. Waiters are answered before this is called.
   */
  endUnfinished(): void;
}

/**
 * What the server does to connections around their requests: cut slow, silent and idle ones, read
 * pipelining HTTP/1.1 connections so that Node can stop reading them, probe for clients that
 * vanished without closing, and log failed handshakes quietly. No connection outlives its purpose:
 * each is either waiting for an answer, sending a request, or closed within a deadline.
 */
export function guardConnections(server: Http2SecureServer, config: GuardConfig, log: FastifyBaseLogger): ConnectionGuards {
  const unfinished = new Unfinished();
  limitHttp1(server, config, unfinished);
  limitHttp2(server, config, unfinished);
  if (config.keepaliveMs > 0) probeSilentClients(server, config.keepaliveMs);
  // Plain HTTP on the TLS port, old protocol versions, scanners: the client's problem, not ours.
  server.on('tlsClientError', (error: Error & { code?: string }, socket: TLSSocket) => {
    log.debug({ code: error.code, remote: socket.remoteAddress }, 'TLS handshake failed');
  });
  return { endUnfinished: () => unfinished.end() };
}

/** Requests whose bodies are still arriving, each with what ends it. */
class Unfinished {
  readonly #ends = new Set<() => void>();

  /** Tracks one request until `done` is called; `end` aborts it at shutdown. Returns `done`. */
  track(end: () => void): () => void {
    this.#ends.add(end);
    return () => this.#ends.delete(end);
  }

  end(): void {
    for (const end of [...this.#ends]) end();
    this.#ends.clear();
  }
}

/**
 * HTTP/1.1 in an allowHTTP1 server. Node handles slowloris here: a connection whose request headers
 * take longer than `headersTimeout` (counted from the connection's start for its first request), or
 * whose whole request (headers and body) takes longer than `requestTimeout`, is answered 408 through
 * the client-error handler and closed. A request that has fully arrived is never cut, however long
 * it then waits for a partner. Connections are checked every `connectionsCheckingInterval`, read
 * when the server starts listening: 30 s by default, too coarse. A keep-alive connection idle after
 * its answer is closed after `keepAliveTimeout`; none of these are set for an HTTP/2 server by
 * Fastify, so they are set here.
 *
 * Silent connections: one that has sent nothing `idleTimeoutMs` after its TLS handshake is closed.
 *
 * Pipelining: Node parses every request a client sends ahead and queues their answers in order. It
 * bounds the answers queued unwritten itself: past the socket's high-water mark of them (16 KiB) it
 * stops reading the connection until they go out (what was already read, at most one chunk, is
 * still parsed). A connection not read does not show its client leaving: a request waiting for a
 * peer on it could be handed out after its client had gone. So when Node stops reading a
 * connection, the requests waiting on it are told (`connectionStopped`) and answered at once (429
 * `too_many_pipelined`), and none is let wait on it until it is read again. Requests waiting for a
 * peer queue no answer themselves: how many one connection holds is bounded by MAX_WAITING_PER_IP
 * and MAX_WAITING. (A pause of its own past `maxStreamsPerConnection` queued requests was undone by
 * Node, which resumes the connection after every request it parses.)
 */
function limitHttp1(server: Http2SecureServer, config: GuardConfig, unfinished: Unfinished): void {
  const http1 = server as Http2SecureServer & {
    headersTimeout: number;
    requestTimeout: number;
    keepAliveTimeout: number;
    maxHeaderSize: number;
    connectionsCheckingInterval: number;
  };
  http1.maxHeaderSize = MAX_HEADER_BYTES; // Node's default, made explicit: the README promises it
  http1.headersTimeout = config.headersTimeoutMs;
  http1.requestTimeout = config.headersTimeoutMs;
  http1.keepAliveTimeout = config.idleTimeoutMs;
  http1.connectionsCheckingInterval = Math.min(1000, Math.max(50, Math.floor(config.headersTimeoutMs / 4)));
  server.on('secureConnection', (socket: TLSSocket) => {
    if (socket.alpnProtocol === 'h2') return; // its session is timed below
    // Checked by the bytes it has read, not by a 'data' listener: any 'data' listener makes Node's
    // HTTP/1.1 parser stop reading the TLS stream directly and take every chunk through the socket's
    // JavaScript stream instead, which costs the storm dearly (bench/README.md).
    const silent = setTimeout(() => {
      if (socket.bytesRead === 0) socket.destroy();
    }, config.idleTimeoutMs);
    silent.unref();
    socket.once('close', () => clearTimeout(silent));
  });

  const pipelining = new WeakSet<Socket>();
  server.on('request', (raw: IncomingMessage, res: ServerResponse) => {
    if (raw.httpVersionMajor !== 1) return;
    const socket = raw.socket;
    if (hasBody(raw)) {
      // Node's requestTimeout cuts a body that is too slow; at shutdown nobody waits for it.
      const done = unfinished.track(() => socket.destroy());
      raw.once('end', done).once('close', done);
    }
    // Node stopped reading the connection as this request came (answers queued behind a waiting
    // request reached its limit): the requests waiting on it are answered now, not left blind.
    if (isNotRead(socket)) connectionStopped(socket);
    if (res.socket !== null || pipelining.has(socket)) return; // answered in turn, or switched already
    pipelining.add(socket);
    // A connection that pipelines is read through its JavaScript stream from now on (a 'data'
    // listener makes Node's parser stop reading the TLS stream directly). Node pauses such a
    // connection itself while its queued answers cannot go out; paused while its parser read the TLS
    // stream directly, the rest of the chunk failed (HPE_PAUSED: a 400 and the connection closed).
    socket.on('data', ignore);
  });
}

function ignore(): void {
  // The parser is Node's own 'data' listener; this one only switches the connection's reading.
}

function hasBody(raw: IncomingMessage): boolean {
  const length = raw.headers['content-length'];
  return raw.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * HTTP/2, which has neither Node's headers timer nor its keep-alive timer:
 * - a session with no open stream for `idleTimeoutMs` (from its start, or since its last stream
 *   ended) is closed;
 * - a stream whose body has not fully arrived `headersTimeoutMs` after its headers is reset
 *   (CANCEL): it is neither waiting for a partner nor sending anything.
 * The session's own timeout (Fastify's http2SessionTimeout) cannot do either: it counts any frame,
 * our keep-alive PINGs included, as activity, and its graceful close waits for every open stream.
 */
function limitHttp2(server: Http2SecureServer, config: GuardConfig, unfinished: Unfinished): void {
  server.on('session', (session: Http2Session) => {
    let open = 0;
    let idle: NodeJS.Timeout | undefined;
    const startIdle = (): void => {
      idle = setTimeout(() => session.close(), config.idleTimeoutMs);
      idle.unref();
    };
    startIdle();
    session.on('stream', (stream: ServerHttp2Stream) => {
      if (open++ === 0) clearTimeout(idle);
      stream.once('close', () => {
        if (--open === 0 && !session.closed && !session.destroyed) startIdle();
      });
      if (stream.endAfterHeaders) return;
      const cancel = (): void => {
        if (!stream.destroyed) stream.close(h2.NGHTTP2_CANCEL);
      };
      const late = setTimeout(cancel, config.headersTimeoutMs);
      const done = unfinished.track(cancel);
      const arrived = (): void => {
        clearTimeout(late);
        done();
      };
      stream.once('end', arrived).once('close', arrived);
    });
    session.once('close', () => clearTimeout(idle));
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
