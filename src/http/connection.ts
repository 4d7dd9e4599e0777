import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import { isNotRead, onConnectionStopped } from '../net/unread-connection.js';

/** The raw request and response of either protocol, as Fastify hands them over. */
export type RawRequest = IncomingMessage | Http2ServerRequest;
export type RawResponse = ServerResponse | Http2ServerResponse;

const connectionIds = new WeakMap<object, string>();
let connections = 0;

/**
 * The name of the connection a request came on, unique in this process. HTTP/2 multiplexes many
 * requests over one session (one socket, one ip:port), so the session is the connection; on
 * HTTP/1.1 the socket is.
 */
export function connectionId(raw: RawRequest): string {
  const connection: object = 'stream' in raw ? (raw.stream.session ?? raw.stream) : raw.socket;
  let id = connectionIds.get(connection);
  if (id === undefined) {
    id = String(++connections);
    connectionIds.set(connection, id);
  }
  return id;
}

/**
 * The connection an HTTP/1.1 response will be written to. A response queued behind an earlier
 * pipelined request has no socket of its own until its turn (`res.socket` is null): that is not a
 * client gone, its request's socket is the connection.
 */
function socketOf(res: ServerResponse): Socket | null {
  return res.socket ?? res.req.socket;
}

/**
 * True once the client can no longer receive this response, including the window where its socket
 * or stream is destroyed but the 'close' event has not run yet.
 */
export function responseGone(res: RawResponse): boolean {
  if (res.destroyed) return true;
  if ('stream' in res) return res.stream.destroyed || res.stream.closed;
  const socket = socketOf(res);
  return socket === null || socket.destroyed;
}

/**
 * Watches for the client going away before its answer was written: the response's 'close' with
 * the response not ended, or (HTTP/1.1) Node no longer reading its connection, where it could
 * leave unseen ({@link connectionNotRead}). Listening on the response, not the socket, keeps keep-alive connections
 * free of accumulating listeners, and it fires for both GET and POST (a request's own 'close'
 * fires as soon as a POST body has been read). A pipelined response still queued behind another
 * gets no 'close' of its own when the connection drops (Node only aborts its request), so it is
 * told through its socket's one shared watcher.
 */
export function watchResponse(res: RawResponse, onGone: () => void): () => void {
  const onClose = (): void => {
    if (!res.writableEnded) onGone();
  };
  res.on('close', onClose);
  if ('stream' in res) return () => res.off('close', onClose);
  const unwatchNotRead = onNotRead(res, onGone);
  if (res.socket !== null) {
    return () => {
      res.off('close', onClose);
      unwatchNotRead();
    };
  }
  const unwatchSocket = onSocketClose(res.req.socket, onClose);
  return () => {
    res.off('close', onClose);
    unwatchSocket();
    unwatchNotRead();
  };
}

/** Callbacks waiting for a socket's close, behind one listener per socket however many there are. */
const closeWatchers = new WeakMap<Socket, Set<() => void>>();

function onSocketClose(socket: Socket, callback: () => void): () => void {
  let watchers = closeWatchers.get(socket);
  if (watchers === undefined) {
    const created = new Set<() => void>();
    watchers = created;
    closeWatchers.set(socket, created);
    socket.once('close', () => {
      closeWatchers.delete(socket);
      for (const watcher of created) watcher();
    });
  }
  watchers.add(callback);
  const own = watchers;
  return () => own.delete(callback);
}

/** Responses let go because Node was not reading their connection: they are still answered. */
const letGoUnread = new WeakSet<ServerResponse>();

/**
 * True while Node does not read the HTTP/1.1 connection of this response: it stops once the answers
 * queued behind the one being written reach 16 KiB (or the client stops reading them), until they
 * go out. A connection not read does not show its client leaving, so a request waiting on it must
 * not be handed out as a partner. Remembered ({@link wasLetGoUnread}): by the time the request's
 * outcome is read, the connection may be read again.
 */
export function connectionNotRead(res: RawResponse): boolean {
  if ('stream' in res) return false;
  const socket = socketOf(res);
  if (socket === null || !isNotRead(socket)) return false;
  letGoUnread.add(res);
  return true;
}

/** Whether this request was let go because its connection was not read (it is answered, 429). */
export function wasLetGoUnread(res: RawResponse): boolean {
  return !('stream' in res) && letGoUnread.has(res);
}

function onNotRead(res: ServerResponse, onGone: () => void): () => void {
  const socket = socketOf(res);
  if (socket === null) return noop;
  return onConnectionStopped(socket, () => {
    letGoUnread.add(res);
    onGone();
  });
}

function noop(): void {
  // Nothing to stop watching.
}
