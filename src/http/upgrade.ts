import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { App } from './types.js';

/** An upgrade's connection is the TLS socket it came on: a net.Socket (Node's types say Duplex). */
type UpgradeListener = (raw: IncomingMessage, socket: Socket, head: Buffer) => void;

/**
 * Requests with `Connection: Upgrade` (HTTP/1.1 only: HTTP/2 has no such header). Node hands such a
 * connection over whole: none of its timers applies to it any more, and nothing closes it after
 * its answer. @fastify/websocket routes every upgrade through Fastify and closes the socket after
 * an answer of its own route only, so an upgrade to any other path was answered and its connection
 * then held forever (3000 of them held 3000 descriptors long past IDLE_TIMEOUT_MS).
 *
 * Here only a WebSocket join (`isJoin`) goes on to the upgrade listeners registered so far
 * (@fastify/websocket's). Any other upgrade is answered as the plain request it also is (a server
 * may ignore Upgrade, RFC 9110 §7.8), with `Connection: close`, and its connection is closed once
 * the answer is out. Until then it is bounded like any request: Node gives an upgrade request no
 * body, so it is either answered at once or waits for a partner (MATCH_TIMEOUT_MS), and a client
 * that leaves is seen through its response's 'close'.
 */
export function routeUpgrades(app: App, isJoin: (raw: IncomingMessage) => boolean): void {
  const server = app.server;
  const joins = server.listeners('upgrade') as UpgradeListener[];
  server.removeAllListeners('upgrade');
  server.on('upgrade', (raw: IncomingMessage, socket: Socket, head: Buffer) => {
    if (isJoin(raw)) {
      for (const listener of joins) listener.call(server, raw, socket, head);
      return;
    }
    answerAndClose(app, raw, socket);
  });
}

function answerAndClose(app: App, raw: IncomingMessage, socket: Socket): void {
  // Node took its own error listener off the socket before handing it over.
  socket.on('error', () => socket.destroy());
  const res = new ServerResponse(raw);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  // As Node's own server does after a last answer: end, then destroy once the end is written.
  res.once('finish', () => {
    res.detachSocket(socket);
    socket.destroySoon();
  });
  try {
    // The Fastify types name the HTTP/2 compatibility objects; an HTTP/1.1 pair is what it routes here.
    app.routing(raw as never, res as never);
  } catch (error) {
    app.log.warn({ err: error }, 'upgrade request failed');
    socket.destroy();
  }
}
