/**
 * Opens the queue backend the configuration asks for: in memory (the default), or Redis shared by
 * every process that uses the same REDIS_URL and REDIS_PREFIX.
 */
import { BackendUnavailableError, type MatchQueue, type PeerLink } from './seam.js';
import { MemoryQueue } from './memory.js';
import type { RedisCommands } from './redis.js';
import type { LinkHandlers, ShardedPubSub } from './redis-link.js';

export interface Backend {
  readonly queue: MatchQueue;
  /** False while the backend cannot be reached (/readyz then says not ready). */
  readonly healthy: boolean;
  /** How to reach the other processes (shared backends only). */
  readonly peers?: PeerLink;
  /** Starts answering other processes' offers for this process's waiters, and taking their relayed messages. */
  start(handlers: LinkHandlers): Promise<void>;
  close(): Promise<void>;
}

export interface BackendLog {
  error(fields: object, message: string): void;
  info(message: string): void;
}

/** Longest wait for Redis to accept a connection; reconnections back off up to RECONNECT_MAX_MS. */
const CONNECT_TIMEOUT_MS = 2000;
const RECONNECT_MAX_MS = 2000;
/** How often a Redis Cluster that went away is asked whether it is back. */
const PROBE_MS = 1000;

export interface RedisSettings {
  readonly url: string | undefined;
  readonly prefix: string;
  /** REDIS_URL names one node of a Redis Cluster; the others are found from it. */
  readonly cluster: boolean;
}

export async function openBackend(
  redis: RedisSettings,
  owner: string,
  log: () => BackendLog,
  /** Called once each time the backend goes away. */
  onDown: (error: unknown) => void = () => undefined,
): Promise<Backend> {
  const { url } = redis;
  if (url === undefined) {
    return { queue: new MemoryQueue(), healthy: true, start: () => Promise.resolve(), close: () => Promise.resolve() };
  }
  // Loaded only when asked for: the in-memory default does not carry the Redis client.
  const [{ createClient, createCluster }, { RedisQueue }, { RedisPeerLink }] = await Promise.all([
    import('redis'),
    import('./redis.js'),
    import('./redis-link.js'),
  ]);
  let connected = false;
  let up = true;
  // One line when Redis goes, one when it comes back: no line per failed reconnection.
  const down = (error: unknown): void => {
    if (!connected || !up) return;
    up = false;
    log().error({ err: error }, 'Redis unreachable: new requests are answered 503 backend_unavailable until it is back');
    onDown(error);
  };
  const back = (): void => {
    if (up) return;
    up = true;
    log().info('Redis reachable again');
  };
  const socket = {
    connectTimeout: CONNECT_TIMEOUT_MS,
    // At start-up, an unreachable Redis stops the server; later, reconnect with backoff.
    reconnectStrategy: (retries: number, cause: Error) => (connected ? Math.min(50 * 2 ** retries, RECONNECT_MAX_MS) : cause),
  };
  // A command while Redis is unreachable fails at once (503 backend_unavailable) instead of waiting.
  const disableOfflineQueue = true;
  let commands: RedisCommands & ShardedPubSub;
  let subscriber: ShardedPubSub;
  let quit: () => Promise<unknown>;
  let probe: NodeJS.Timeout | undefined;
  if (redis.cluster) {
    const parsed = new URL(url);
    const cluster = createCluster({
      rootNodes: [{ url }],
      // Every node found from the first is reached the same way (user, password, TLS).
      defaults: {
        ...(parsed.username === '' ? {} : { username: decodeURIComponent(parsed.username) }),
        ...(parsed.password === '' ? {} : { password: decodeURIComponent(parsed.password) }),
        socket: { ...socket, tls: parsed.protocol === 'rediss:' },
        disableOfflineQueue,
      },
    });
    cluster.on('error', down);
    cluster.on('node-error', down);
    await cluster.connect();
    // A node's reconnection has no event of its own: while down, ask every second whether it is back.
    probe = setInterval(() => {
      if (!up) cluster.eval('return 1', { keys: [`${redis.prefix}probe`], arguments: [] }).then(back, () => undefined);
    }, PROBE_MS);
    probe.unref();
    commands = cluster;
    subscriber = commands;
    quit = () => cluster.close();
  } else {
    const client = createClient({ url, disableOfflineQueue, socket });
    client.on('error', down);
    client.on('ready', back);
    await client.connect();
    const listener = client.duplicate();
    listener.on('error', () => undefined); // told once through the main client
    await listener.connect();
    commands = client;
    subscriber = listener;
    quit = () => Promise.all([client.close(), listener.close()]);
  }
  connected = true;
  const queue = new RedisQueue(commands, { prefix: redis.prefix });
  const peers = new RedisPeerLink(commands, subscriber, { prefix: redis.prefix, owner });
  return {
    queue,
    peers,
    get healthy() {
      return up;
    },
    start: (handlers) =>
      peers.start(handlers, (error) => {
        // Redis going away is said once, above; an offer it cut short is not a second error.
        if (!(error instanceof BackendUnavailableError) && up) log().error({ err: error }, 'offer from another process failed');
      }),
    async close() {
      clearInterval(probe);
      await queue.close();
      await peers.close();
      await quit().catch(() => undefined);
    },
  };
}
