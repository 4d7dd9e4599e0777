/**
 * HTTP/1.1 connections Node has stopped reading: whether it has, and the requests waiting on one,
 * told once when it does. The connection guards (net) see it happen; the routes (http) wait on it.
 */
import type { Socket } from 'node:net';

/** What Node's HTTP/1.1 server marks on a connection's socket while it does not read it. */
type ServerSocket = Socket & { _paused?: boolean };

/** Callbacks of requests waiting on an HTTP/1.1 connection, told when Node stops reading it. */
const notReadWatchers = Symbol('pairup.notReadWatchers');
type WatchedSocket = Socket & { [notReadWatchers]?: Set<() => void> };

/** True while Node does not read this HTTP/1.1 connection. */
export function isNotRead(socket: Socket): boolean {
  return (socket as ServerSocket)._paused === true;
}

/** Calls `watcher` when Node stops reading `socket` ({@link connectionStopped}); returns how to stop watching. */
export function onConnectionStopped(socket: Socket, watcher: () => void): () => void {
  const watched: WatchedSocket = socket;
  // On the socket itself, not in a WeakMap: this is on every waiting request's path.
  const watchers = (watched[notReadWatchers] ??= new Set());
  watchers.add(watcher);
  return () => watchers.delete(watcher);
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
