/**
 * Opens the queue backend the configuration asks for: in memory (the default), or Redis shared by
 * every process that uses the same REDIS_URL and REDIS_PREFIX.
 */
import type { MatchOffer, MatchQueue, PeerLink } from './seam.js';
import { MemoryQueue } from './memory.js';
import type { RedisQueue } from './redis.js';

export interface Backend {
  readonly queue: MatchQueue;
  /** False while the backend cannot be reached (/readyz then says not ready). */
  readonly healthy: boolean;
  /** How to reach the other processes (shared backends only). */
  readonly peers?: PeerLink;
  /** Starts answering other processes' offers for this process's waiters. */
  start(offered: (id: string, offer: MatchOffer) => Promise<'matched' | 'gone'>): Promise<void>;
  close(): Promise<void>;
}

export interface BackendLog {
  error(fields: object, message: string): void;
  info(message: string): void;
}

/** Longest wait for Redis to accept a connection; reconnections back off up to RECONNECT_MAX_MS. */
const CONNECT_TIMEOUT_MS = 2000;
const RECONNECT_MAX_MS = 2000;

export async function openBackend(
  redis: { readonly url: string | undefined; readonly prefix: string },
  owner: string,
  log: () => BackendLog,
  /** Called once each time the backend goes away. */
  onDown: (error: unknown) => void = () => undefined,
): Promise<Backend> {
  if (redis.url === undefined) {
    return { queue: new MemoryQueue(), healthy: true, start: () => Promise.resolve(), close: () => Promise.resolve() };
  }
  // Loaded only when asked for: the in-memory default does not carry the Redis client.
  const [{ createClient }, { RedisQueue }, { RedisPeerLink }] = await Promise.all([
    import('redis'),
    import('./redis.js'),
    import('./redis-link.js'),
  ]);
  let connected = false;
  let up = true;
  const client = createClient({
    url: redis.url,
    // A command while Redis is unreachable fails at once (503 backend_unavailable) instead of waiting.
    disableOfflineQueue: true,
    socket: {
      connectTimeout: CONNECT_TIMEOUT_MS,
      // At start-up, an unreachable Redis stops the server; later, reconnect with backoff.
      reconnectStrategy: (retries: number, cause: Error) =>
        connected ? Math.min(50 * 2 ** retries, RECONNECT_MAX_MS) : cause,
    },
  });
  // One line when Redis goes, one when it comes back: no line per failed reconnection.
  client.on('error', (error: unknown) => {
    if (!connected || !up) return;
    up = false;
    log().error({ err: error }, 'Redis unreachable: new requests are answered 503 backend_unavailable until it is back');
    onDown(error);
  });
  // Set once connected; the 'ready' of a reconnection renews its heartbeat.
  const opened: { queue?: RedisQueue } = {};
  client.on('ready', () => {
    const queue = opened.queue;
    if (up || queue === undefined) return;
    // A restarted Redis has lost this process's heartbeat: renew it before taking requests again,
    // or the next join would take this process's own waiters for a dead process's.
    queue.ready().then(
      () => {
        up = true;
        log().info('Redis reachable again');
      },
      () => undefined, // still down: the next 'ready' tries again
    );
  });
  await client.connect();
  connected = true;
  const subscriber = client.duplicate();
  subscriber.on('error', () => undefined); // told once through the main client
  await subscriber.connect();
  const queue = new RedisQueue(client, { prefix: redis.prefix, owner });
  opened.queue = queue;
  await queue.ready();
  const peers = new RedisPeerLink(client, subscriber, { prefix: redis.prefix, owner });
  return {
    queue,
    peers,
    get healthy() {
      return up;
    },
    start: (offered) => peers.start(offered, (error) => log().error({ err: error }, 'offer from another process failed')),
    async close() {
      await queue.close();
      await peers.close();
      await Promise.all([client.quit(), subscriber.quit()]).catch(() => undefined);
    },
  };
}
