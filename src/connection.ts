import type { ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { IncomingMessage } from 'node:http';

/** The raw request and response of either protocol, as Fastify hands them over. */
export type RawRequest = IncomingMessage | Http2ServerRequest;
export type RawResponse = ServerResponse | Http2ServerResponse;

/**
 * Identity of the connection a request came on. HTTP/2 multiplexes many requests over one session
 * (one socket, one ip:port), so the session is the connection; on HTTP/1.1 the socket is.
 */
export function connectionOf(raw: RawRequest): object {
  return 'stream' in raw ? raw.stream.session ?? raw.stream : raw.socket;
}

/**
 * True once the client can no longer receive this response, including the window where its socket
 * or stream is destroyed but the 'close' event has not run yet.
 */
export function responseGone(res: RawResponse): boolean {
  if (res.destroyed) return true;
  if ('stream' in res) return res.stream.destroyed || res.stream.closed;
  const socket = res.socket;
  return socket === null || socket.destroyed;
}

/**
 * Watches for the client going away before its answer was written: the response's 'close' with
 * the response not ended. Listening on the response, not the socket, keeps keep-alive connections
 * free of accumulating listeners, and it fires for both GET and POST (a request's own 'close'
 * fires as soon as a POST body has been read).
 */
export function watchResponse(res: RawResponse, onGone: () => void): () => void {
  const onClose = (): void => {
    if (!res.writableEnded) onGone();
  };
  res.on('close', onClose);
  return () => res.off('close', onClose);
}
