import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import type { FastifyBaseLogger, FastifyError } from 'fastify';
import type { AnyReply, AnyRequest } from './types.js';
import { ApiError } from './api-error.js';

/** Writes an error answer: JSON body from the error table, Retry-After where retrying helps. */
export function sendError(reply: AnyReply, error: ApiError): void {
  if (error.retryAfterS !== undefined) void reply.header('retry-after', String(error.retryAfterS));
  void reply.code(error.statusCode).type('application/json; charset=utf-8').send(error.toJSON());
}

export interface ErrorContext {
  /** The longest wait a request may ask for, named in timeout errors. */
  readonly maxTimeoutS: number;
  /** MAX_GROUP_SIZE, named in size and min errors. */
  readonly maxGroupSize: number;
}

/** Fastify's error handler: every failure becomes an entry of the error table. */
export function createErrorHandler(context: ErrorContext) {
  return function errorHandler(error: FastifyError, request: AnyRequest, reply: AnyReply): void {
    const apiError = toApiError(error, request, context);
    // Only failures of the server itself are errors; refusals are the server doing its job.
    if (apiError.code === 'internal_error') {
      request.log.error({ err: error, reqId: request.id, method: request.method, url: request.url }, 'request failed');
    } else {
      request.log.debug({ code: apiError.code, message: apiError.message }, 'request rejected');
    }
    sendError(reply, apiError);
  };
}

/** What each failure means to a client. */
/** Why a JSON body was refused, when the parser does not say. */
const INVALID_JSON_WHY = 'it does not parse, or it has a "__proto__" key or a "constructor" holding "prototype" (refused: prototype poisoning)';

export function toApiError(error: FastifyError | ApiError, request: AnyRequest, context: ErrorContext): ApiError {
  if (error instanceof ApiError) return error;
  if (error.validation !== undefined) return fromValidation(error, request, context);
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError('body_too_large', [request.routeOptions.bodyLimit]);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError('unsupported_media_type', [request.headers['content-type'] ?? 'none']);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError('invalid_json', ['the body is empty']);
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      // Fastify's parser says no more than this: a syntax error and a refused key look alike.
      return new ApiError('invalid_json', [INVALID_JSON_WHY]);
  }
  // JSON.parse failures (and the parser's prototype-poisoning guard) arrive as plain 400 errors.
  if (error.statusCode === 400 && (error instanceof SyntaxError || error.name === 'SyntaxError')) {
    return new ApiError('invalid_json', [error.message]);
  }
  if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
    return new ApiError('invalid_request', [error.message]);
  }
  return new ApiError('internal_error');
}

function fromValidation(error: FastifyError, request: AnyRequest, context: ErrorContext): ApiError {
  const [first] = error.validation ?? [];
  if (first === undefined) return new ApiError('invalid_request', [error.message]);
  const params = first.params;
  if (first.keyword === 'additionalProperties') {
    const field = String(params['additionalProperty']);
    const code = error.validationContext === 'querystring' ? 'unknown_parameter' : 'unknown_field';
    return new ApiError(code, [JSON.stringify(field)], field);
  }
  const field = first.instancePath.split('/')[1];
  switch (field) {
    case 'pool':
      return new ApiError('invalid_pool', [], 'pool');
    case 'code':
      return new ApiError('invalid_code', [], 'code');
    case 'timeout':
      return new ApiError('invalid_timeout', [context.maxTimeoutS], 'timeout', { maxTimeoutS: context.maxTimeoutS });
    case 'meta':
      return new ApiError('invalid_meta', [], 'meta');
    // A query's size or min given twice (an array): what either may be, as when it is out of range.
    case 'size':
      return new ApiError('invalid_size', [context.maxGroupSize], 'size');
    case 'min':
      return new ApiError('invalid_min', [sizeAsked(request, context.maxGroupSize)], 'min');
    case undefined:
    case '':
      return new ApiError('invalid_body');
    default:
      return new ApiError('invalid_request', [`${field} ${first.message ?? 'is invalid'}`], field);
  }
}

/** The most `min` may be when the query's `min` is refused: its `size` (given once and valid), else 2 as without one. */
function sizeAsked(request: AnyRequest, maxGroupSize: number): number {
  const { size } = request.query as { size?: unknown };
  const asked = typeof size === 'string' && /^[0-9]{1,2}$/.test(size) ? Number(size) : undefined;
  return asked !== undefined && asked >= 2 && asked <= maxGroupSize ? asked : 2;
}

/**
 * Answers a connection whose bytes are not HTTP (Node's 'clientError'), in the same JSON shape as
 * every other error, then closes it. Such clients are common on a public port and not the server's
 * fault: logged at debug. Fastify calls it with the instance as `this`.
 */
export function clientErrorHandler(
  this: { readonly log: FastifyBaseLogger },
  error: Error & { code?: string },
  socket: Socket,
): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const apiError =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? new ApiError('request_timeout')
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? new ApiError('headers_too_large')
        : new ApiError('malformed_request', [error.code ?? error.message]);
  this.log.debug({ code: error.code, remote: socket.remoteAddress }, 'client error');
  if (socket.writable) {
    const body = JSON.stringify(apiError.toJSON());
    socket.write(
      `HTTP/1.1 ${apiError.statusCode} ${STATUS_CODES[apiError.statusCode] ?? ''}\r\n` +
        `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Connection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}
