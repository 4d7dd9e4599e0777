import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';

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
 * the response not ended. Listening on the response, not the socket, keeps keep-alive connections
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
  const queuedOn = 'stream' in res || res.socket !== null ? null : res.req.socket;
  if (queuedOn === null) return () => res.off('close', onClose);
  const unwatchSocket = onSocketClose(queuedOn, onClose);
  return () => {
    res.off('close', onClose);
    unwatchSocket();
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

/** What Node's HTTP/1.1 server marks on a connection's socket while it does not read it. */
type ServerSocket = Socket & { _paused?: boolean };

/**
 * True while Node does not read the HTTP/1.1 connection of this response: it stops once the answers
 * queued behind the one being written reach 16 KiB (or the client stops reading them), until they
 * go out. A connection not read does not show its client leaving, so a request waiting on it must
 * not be handed out as a partner.
 */
export function connectionNotRead(res: RawResponse): boolean {
  if ('stream' in res) return false;
  const socket: ServerSocket | null = socketOf(res);
  return socket?._paused === true;
}

/** Callbacks of requests waiting on an HTTP/1.1 connection, told when Node stops reading it. */
const notReadWatchers = Symbol('pairup.notReadWatchers');
type WatchedSocket = Socket & { [notReadWatchers]?: Set<() => void> };

/** Calls `onNotRead` once if Node stops reading this response's HTTP/1.1 connection while it waits. */
export function watchNotRead(res: RawResponse, onNotRead: () => void): () => void {
  if ('stream' in res) return noop;
  const socket: WatchedSocket | null = socketOf(res);
  if (socket === null) return noop;
  // On the socket itself, not in a WeakMap: this is on every waiting request's path.
  const watchers = (socket[notReadWatchers] ??= new Set());
  watchers.add(onNotRead);
  return () => watchers.delete(onNotRead);
}

/**
 * Node has stopped reading this HTTP/1.1 connection (the connection guards see it on the request
 * that made it stop): every request waiting on it is told, once.
 */
export function connectionStopped(socket: Socket): void {
  const watched: WatchedSocket = socket;
  const watchers = watched[notReadWatchers];
  if (watchers === undefined || watchers.size === 0) return;
  watched[notReadWatchers] = undefined;
  for (const watcher of watchers) watcher();
}

function noop(): void {
  // Nothing to stop watching.
}
