/**
 * The backend shared by every process that uses the same REDIS_URL and REDIS_PREFIX: its connections
 * (one Redis server, or a Redis Cluster), how it goes away and comes back, and the key match secrets
 * are derived under. backends.ts loads this module only when REDIS_URL is set.
 */
import { randomBytes } from 'node:crypto';
import { createClient, createCluster } from 'redis';
import type { Backend, BackendLog } from './backend.js';
import { RedisCounter, type CounterCommands } from './redis-counter.js';
import { RedisLedger, type LedgerCommands } from './redis-ledger.js';
import { RedisPeerLink, type ShardedPubSub } from './redis-link.js';
import { RedisRelayLink } from './redis-relay.js';
import { RedisQueue, type RedisCommands } from './redis.js';
import { BackendUnavailableError } from './seam.js';

/** Longest wait for Redis to accept a connection; reconnections back off up to RECONNECT_MAX_MS. */
const CONNECT_TIMEOUT_MS = 2000;
const RECONNECT_MAX_MS = 2000;
/** How often a Redis Cluster that went away is asked whether it is back. */
const PROBE_MS = 1000;

export interface RedisSettings {
  readonly url: string;
  readonly prefix: string;
  /** REDIS_URL names one node of a Redis Cluster; the others are found from it. */
  readonly cluster: boolean;
}

export async function openRedisBackend(
  redis: RedisSettings,
  owner: string,
  log: () => BackendLog,
  /** Called once each time the backend goes away. */
  onDown: (error: unknown) => void,
): Promise<Backend> {
  const { url } = redis;
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
  let commands: RedisCommands & ShardedPubSub & LedgerCommands & CounterCommands;
  let subscriber: ShardedPubSub;
  // Relayed messages have connections of their own: a pairing's offers and scripts never wait behind them.
  let relayPublisher: ShardedPubSub;
  let relaySubscriber: ShardedPubSub;
  let quit: () => Promise<unknown>;
  let probe: NodeJS.Timeout | undefined;
  if (redis.cluster) {
    const parsed = new URL(url);
    const options = {
      rootNodes: [{ url }],
      // Every node found from the first is reached the same way (user, password, TLS).
      defaults: {
        ...(parsed.username === '' ? {} : { username: decodeURIComponent(parsed.username) }),
        ...(parsed.password === '' ? {} : { password: decodeURIComponent(parsed.password) }),
        socket: { ...socket, tls: parsed.protocol === 'rediss:' },
        disableOfflineQueue,
      },
    };
    const cluster = createCluster(options);
    const relayCluster = createCluster(options);
    cluster.on('error', down);
    cluster.on('node-error', down);
    relayCluster.on('error', () => undefined); // told once through the main cluster client
    relayCluster.on('node-error', () => undefined);
    await Promise.all([cluster.connect(), relayCluster.connect()]);
    // A node's reconnection has no event of its own: while down, ask every second whether it is back.
    probe = setInterval(() => {
      if (!up) cluster.eval('return 1', { keys: [`${redis.prefix}probe`], arguments: [] }).then(back, () => undefined);
    }, PROBE_MS);
    probe.unref();
    commands = cluster;
    subscriber = commands;
    relayPublisher = relaySubscriber = relayCluster;
    quit = () => Promise.all([cluster.close(), relayCluster.close()]);
  } else {
    const client = createClient({ url, disableOfflineQueue, socket });
    client.on('error', down);
    client.on('ready', back);
    await client.connect();
    const others = [client.duplicate(), client.duplicate(), client.duplicate()] as const;
    for (const other of others) other.on('error', () => undefined); // told once through the main client
    await Promise.all(others.map((other) => other.connect()));
    commands = client;
    [subscriber, relayPublisher, relaySubscriber] = others;
    quit = () => Promise.all([client.close(), ...others.map((other) => other.close())]);
  }
  // The first process to start makes the key; every other one takes it.
  const keyName = `${redis.prefix}secret-key`;
  await commands.set(keyName, randomBytes(32).toString('base64'), { NX: true });
  const secretKey = Buffer.from((await commands.get(keyName)) ?? '', 'base64');
  if (secretKey.length !== 32) throw new Error(`${keyName} in Redis is not a 32-byte key`);
  connected = true;
  const queue = new RedisQueue(commands, { prefix: redis.prefix });
  const peers = new RedisPeerLink(commands, subscriber, { prefix: redis.prefix, owner });
  const relay = new RedisRelayLink(relayPublisher, relaySubscriber, { prefix: redis.prefix, owner });
  return {
    queue,
    peers,
    relay,
    ledger: new RedisLedger(commands, redis.prefix),
    counter: new RedisCounter(commands, redis.prefix),
    secretKey,
    get healthy() {
      return up;
    },
    start: async (handlers) => {
      await relay.start((to, message) => handlers.relayed(to, message));
      await peers.start(handlers, (error) => {
        // Redis going away is said once, above; an offer it cut short is not a second error.
        if (!(error instanceof BackendUnavailableError) && up) log().error({ err: error }, 'offer from another process failed');
      });
    },
    async close() {
      clearInterval(probe);
      await queue.close();
      await Promise.all([peers.close(), relay.close()]);
      await quit().catch(() => undefined);
    },
  };
}
