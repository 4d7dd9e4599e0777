/**
 * The wire contract, shared by the server's routes and every client: names, patterns, limits, the
 * answer's schema, the error table. No Node or Fastify imports: whatever speaks to pairup can import it.
 */
export * from './schemas.js';
export * from './errors.js';
export * from './ws.js';
export * from './punch.js';
