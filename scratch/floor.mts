// Fastify with pairup's server options and security headers, pairing in a 20-line route: the floor.
import Fastify from 'fastify';
import { readFileSync } from 'node:fs';
import { securityHeaders } from '../src/http/security-headers.ts';
const headers = process.env.HEADERS === '1' ? securityHeaders() : {};
const app = Fastify({ http2: true, https: { allowHTTP1: true, cert: readFileSync(process.env.TLS_CERT!), key: readFileSync(process.env.TLS_KEY!) }, logger: false });
const pools = new Map<string, { resolve: (peer: string) => void; address: string }[]>();
app.addHook('onRequest', (_req, reply, done) => { void reply.headers(headers); done(); });
app.get('/', async (req, reply) => {
  const pool = (req.query as { pool?: string }).pool ?? 'default';
  const self = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
  const queue = pools.get(pool) ?? [];
  const peer = queue.shift();
  if (peer !== undefined) { peer.resolve(self); return reply.type('text/plain; charset=utf-8').send(peer.address); }
  pools.set(pool, queue);
  const answer = await new Promise<string>((resolve) => queue.push({ resolve, address: self }));
  return reply.type('text/plain; charset=utf-8').send(answer);
});
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
