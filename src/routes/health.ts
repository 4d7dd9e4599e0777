import { Type } from 'typebox';
import type { App } from '../app.js';
import { ApiError } from '../errors.js';
import { sendError } from '../error-handler.js';
import type { Lobby } from '../lobby.js';

const Health = Type.Object({ status: Type.Literal('ok'), waiting: Type.Integer() });

/** `GET /healthz`: 200 with the number of waiting clients, 503 once shutting down. */
export function registerHealthRoute(app: App, lobby: Lobby): void {
  app.get('/healthz', { schema: { response: { 200: Health } } }, (_request, reply) => {
    if (lobby.closing) sendError(reply, new ApiError('shutting_down'));
    else void reply.send({ status: 'ok', waiting: lobby.waiting });
  });
}
