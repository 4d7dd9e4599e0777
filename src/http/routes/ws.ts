/**
 * `GET /ws`: wait for a partner over a WebSocket, then relay signals to it (protocol:
 * src/protocol/ws.ts). Each socket's life is its {@link WsSession}'s (ws-session.ts); this plugin
 * registers the route, refuses other origins, and closes every socket once at shutdown.
 */
import websocket from '@fastify/websocket';
import { CLOSE_CODES, WS_PATH } from '../../protocol/ws.js';
import { ApiError } from '../api-error.js';
import { sendError } from '../error-handler.js';
import { clientReader } from '../join-request.js';
import { matchRecord } from '../match-record.js';
import { methodNotAllowed } from '../method-not-allowed.js';
import { originAllowed } from '../origin.js';
import type { WsRouteOptions } from '../route-options.js';
import type { App } from '../types.js';
import { routeUpgrades } from '../upgrade.js';
import { KeyCounts } from '../ws-limits.js';
import { WsSession, type Sessions } from './ws-session.js';

/** Registers `GET /ws`; at shutdown every socket is closed with 1001 (going away), once. */
export async function wsRoutes(app: App, options: WsRouteOptions): Promise<void> {
  const sessions: Sessions = {
    open: new Set(),
    closing: false,
    clientOf: clientReader(options),
    joined: new KeyCounts(),
    record: matchRecord(app.log, options.lobby.owner, options.access),
  };
  await app.register(websocket, {
    options: { maxPayload: options.wsMaxMessageBytes, perMessageDeflate: false },
    // A socket's errors (a bad frame, an oversize message, a reset) end that socket only; ws closes
    // it with the code the error calls for (1002, 1009), and its session ends on 'close'.
    errorHandler: (error, socket, request) => {
      request.log.debug({ err: error }, 'WebSocket error');
      if (socket.readyState !== socket.CLOSED && socket.readyState !== socket.CLOSING) socket.terminate();
    },
    preClose: (done) => {
      sessions.closing = true;
      for (const session of [...sessions.open]) session.shutdown();
      const closing = [...app.websocketServer.clients].filter((socket) => socket.readyState !== socket.CLOSED);
      let left = closing.length;
      app.websocketServer.close();
      if (left === 0) return done();
      for (const socket of closing) socket.once('close', () => --left === 0 && done());
    },
  });
  // Every other upgrade is answered as a plain request, and its connection closed after.
  const { access } = options;
  /** Upgrades whose key was refused, from the preHandler to the socket's handler. */
  const refused = new WeakMap<object, ApiError>();
  routeUpgrades(app, (raw) => raw.method === 'GET' && raw.url?.split('?', 1)[0] === WS_PATH);
  app.route({
    method: 'GET',
    url: WS_PATH,
    exposeHeadRoute: false,
    // Browsers do not ask before opening a WebSocket to another origin: its Origin is checked here.
    preHandler: (request, reply, done) => {
      const origin = request.headers.origin;
      if (originAllowed(origin, request.host, options.corsOrigins)) {
        // A browser's WebSocket cannot read an HTTP refusal: a bad key is told after the upgrade, in a frame.
        if (access !== undefined) {
          try {
            access.admit(request);
          } catch (error) {
            refused.set(request, error as ApiError);
          }
        }
        return done();
      }
      sendError(reply, new ApiError('origin_not_allowed', [JSON.stringify((origin ?? '').slice(0, 200)), 'CORS_ORIGINS']));
    },
    // A plain GET (no Upgrade): say what is needed.
    handler: (request, reply) => sendError(reply, new ApiError('upgrade_required', [request.headers.upgrade ?? 'none'])),
    wsHandler: (socket, request) => {
      const refusal = refused.get(request);
      if (refusal === undefined) {
        new WsSession(socket, request, options, sessions);
        return;
      }
      // Refused before any join: the error frame, then the close (4008); the client has a second to take it.
      socket.send(JSON.stringify({ type: 'error', error: refusal.code, message: refusal.message }));
      socket.close(CLOSE_CODES.unauthorized);
      setTimeout(() => socket.terminate(), 1000).unref();
    },
  });
  methodNotAllowed(app, WS_PATH, ['GET']);
}
