import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet from 'helmet';

/**
 * The security headers every answer carries, computed once with helmet. Applying helmet's middleware
 * per request (as @fastify/helmet does, rebuilding it each time) cost nearly half the storm's
 * throughput (bench/README.md), and each header costs every response its bytes through TLS: so this
 * is the set that matters for an API whose answers are JSON and text, never pages (the OWASP REST guidance):
 * HSTS, nosniff, a content security policy that allows nothing, no framing, and no caching, since
 * a cached answer would hand somebody else's peer to the next client.
 */
export function securityHeaders(): Readonly<Record<string, string>> {
  const headers: Record<string, string> = {};
  const capture = {
    setHeader(name: string, value: string | number | readonly string[]) {
      headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
      return this;
    },
    removeHeader(name: string) {
      // eslint-disable-next-line @typescript-eslint/no-dynamic-delete
      delete headers[name.toLowerCase()];
    },
    getHeader(name: string) {
      return headers[name.toLowerCase()];
    },
  };
  const middleware = helmet({
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: true },
    xFrameOptions: { action: 'deny' },
    crossOriginOpenerPolicy: false,
    crossOriginResourcePolicy: false,
    originAgentCluster: false,
    referrerPolicy: false,
    xDnsPrefetchControl: false,
    xDownloadOptions: false,
    xPermittedCrossDomainPolicies: false,
    xPoweredBy: false,
    xXssProtection: false,
  });
  // helmet's middleware only sets headers on the response; it never reads the request.
  middleware(Object.create(null) as IncomingMessage, capture as unknown as ServerResponse, (error?: unknown) => {
    if (error instanceof Error) throw error;
  });
  headers['cache-control'] = 'no-store';
  return Object.freeze(headers);
}
