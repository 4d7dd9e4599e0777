/**
 * Opens the queue backend the configuration asks for: in memory (the default), or Redis shared by
 * every process that uses the same REDIS_URL and REDIS_PREFIX. Each backend has its own opener;
 * another backend is one more file and one more row of {@link OPENERS}.
 */
import type { Backend, BackendLog } from './backend.js';
import { openMemoryBackend } from './memory-backend.js';

export type { Backend, BackendHandlers, BackendLog } from './backend.js';

/** Which backend, and what it needs to be reached: REDIS_URL set means Redis. */
export interface BackendSettings {
  readonly url: string | undefined;
  readonly prefix: string;
  /** REDIS_URL names one node of a Redis Cluster; the others are found from it. */
  readonly cluster: boolean;
}

type BackendKind = 'memory' | 'redis';

type Opener = (settings: BackendSettings, owner: string, log: () => BackendLog, onDown: (error: unknown) => void) => Promise<Backend>;

const OPENERS: Readonly<Record<BackendKind, Opener>> = {
  memory: () => Promise.resolve(openMemoryBackend()),
  redis: async ({ url, prefix, cluster }, owner, log, onDown) => {
    if (url === undefined) throw new TypeError('a Redis backend needs REDIS_URL');
    // Loaded only when asked for: the in-memory default does not carry the Redis client.
    const { openRedisBackend } = await import('./redis-backend.js');
    return openRedisBackend({ url, prefix, cluster }, owner, log, onDown);
  },
};

function kindOf(settings: BackendSettings): BackendKind {
  return settings.url === undefined ? 'memory' : 'redis';
}

export function openBackend(
  settings: BackendSettings,
  owner: string,
  log: () => BackendLog,
  /** Called once each time the backend goes away. */
  onDown: (error: unknown) => void = () => undefined,
): Promise<Backend> {
  return OPENERS[kindOf(settings)](settings, owner, log, onDown);
}
