/**
 * The admin listener: plain HTTP, meant for 127.0.0.1 or a private network, never the public port.
 * `GET /metrics` (Prometheus text format), `GET /healthz` (the process is up), `GET /readyz` (it is
 * listening and not shutting down: a load balancer should send it clients).
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Metrics } from './metrics.js';

export interface AdminState {
  /** Listening, and not shutting down. */
  ready(): boolean;
  /** Clients waiting now. */
  waiting(): number;
}

export function buildAdmin(metrics: Metrics, state: AdminState, log: FastifyBaseLogger): FastifyInstance {
  const admin = Fastify({ loggerInstance: log, logController: new LogController({ disableRequestLogging: true }) });
  admin.get('/metrics', async (_request, reply) => {
    const text = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(text);
  });
  admin.get('/healthz', () => ({ status: 'ok', waiting: state.waiting() }));
  admin.get('/readyz', (_request, reply) =>
    state.ready() ? { status: 'ready' } : reply.code(503).send({ status: 'not ready' }),
  );
  admin.setNotFoundHandler((request, reply) =>
    reply.code(404).send({
      error: 'not_found',
      message: `no route ${request.method} ${request.url.split('?', 1)[0] ?? '/'}; try GET /metrics, /healthz or /readyz`,
    }),
  );
  return admin;
}
