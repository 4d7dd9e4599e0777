/**
 * The admin listener: plain HTTP, meant for 127.0.0.1 or a private network, never the public port.
 * `GET /metrics` (Prometheus text format), `GET /healthz` (the process is up), `GET /readyz` (it is
 * listening and not shutting down: a load balancer should send it clients). With WORKERS, the
 * primary serves it for all workers together.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';

export interface AdminSource {
  /** The Prometheus text, and its content type. */
  metrics(): Promise<string>;
  readonly contentType: string;
  /** Listening, and not shutting down. */
  ready(): boolean | Promise<boolean>;
  /** Clients waiting now. */
  waiting(): number | Promise<number>;
}

/** One process's figures: its own registry, readiness and waiters. */
export function processSource(registry: Registry, state: Pick<AdminSource, 'ready' | 'waiting'>): AdminSource {
  return { contentType: registry.contentType, metrics: () => registry.metrics(), ready: state.ready, waiting: state.waiting };
}

export function buildAdmin(source: AdminSource, log: FastifyBaseLogger): FastifyInstance {
  const admin = Fastify({ loggerInstance: log, logController: new LogController({ disableRequestLogging: true }) });
  admin.get('/metrics', async (_request, reply) => {
    const text = await source.metrics();
    return reply.type(source.contentType).send(text);
  });
  admin.get('/healthz', async () => ({ status: 'ok', waiting: await source.waiting() }));
  admin.get('/readyz', async (_request, reply) =>
    (await source.ready()) ? { status: 'ready' } : reply.code(503).send({ status: 'not ready' }),
  );
  admin.setNotFoundHandler((request, reply) =>
    reply.code(404).send({
      error: 'not_found',
      message: `no route ${request.method} ${request.url.split('?', 1)[0] ?? '/'}; try GET /metrics, /healthz or /readyz`,
    }),
  );
  return admin;
}
