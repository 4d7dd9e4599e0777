import { Type } from 'typebox';
import type { Lobby } from '../../core/lobby.js';
import { ApiError } from '../api-error.js';
import { sendError } from '../error-handler.js';
import { methodNotAllowed } from '../method-not-allowed.js';
import type { App } from '../types.js';

const Health = Type.Object({ status: Type.Literal('ok'), waiting: Type.Integer() });

/** `GET /healthz`: 200 with the number of waiting clients, 503 once shutting down. */
export function healthRoutes(app: App, options: { readonly lobby: Lobby }, done: (error?: Error) => void): void {
  const { lobby } = options;
  app.get('/healthz', { schema: { response: { 200: Health } } }, (_request, reply) => {
    if (lobby.closing) sendError(reply, new ApiError('shutting_down'));
    else void reply.send({ status: 'ok', waiting: lobby.waiting });
  });
  methodNotAllowed(app, '/healthz', ['GET', 'HEAD']);
  done();
}
