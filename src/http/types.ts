/**
 * The server's Fastify types, named once: a leaf module that routes, plugins and the error handler
 * import instead of importing them back from the module that builds the app.
 */
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest, RouteGenericInterface } from 'fastify';
import type { Http2SecureServer, Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';

/** The pairup server: HTTP/2 with HTTP/1.1 (allowHTTP1), TypeBox schemas. */
export type App = FastifyInstance<Http2SecureServer, Http2ServerRequest, Http2ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>;
/** Request and reply of any route, whatever its schema. */
export type AnyRequest = FastifyRequest<RouteGenericInterface, Http2SecureServer>;
export type AnyReply = FastifyReply<RouteGenericInterface, Http2SecureServer>;
