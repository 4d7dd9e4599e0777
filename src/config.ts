import { isIP } from 'node:net';

/**
 * Configuration, read from an environment-like record once, validated, frozen. Every key here is
 * listed in .env.example and in README.md (test/config.test.ts checks both).
 */
export interface Config {
  readonly host: string;
  readonly port: number;
  /** Certificate and key files; undefined means "make a development certificate". */
  readonly tlsCertFile: string | undefined;
  readonly tlsKeyFile: string | undefined;
  /** Default wait for a partner, and the most a request may ask for. */
  readonly matchTimeoutMs: number;
  readonly maxWaiting: number;
  /** 0 turns the per-IP limit off. */
  readonly maxWaitingPerIp: number;
  /** MAX_WAITING_PER_IP counts IPv6 clients by their network of this many bits (128: each address). */
  readonly ipv6PrefixBits: number;
  /** How long a rendezvous code that made a match is refused to everyone. */
  readonly codeTtlMs: number;
  /**
   * UDP port of the STUN responder: 'same' is the number of the port the HTTPS server listens on,
   * 0 turns the responder off.
   */
  readonly stunPort: number | 'same';
  readonly shutdownGraceMs: number;
  /** The plain-HTTP admin listener (metrics, health, readiness); port 0 turns it off. */
  readonly adminHost: string;
  readonly adminPort: number;
  /** Pools with a metrics label of their own; later pools are counted as `other`. */
  readonly metricsMaxPools: number;
  /** Time an HTTP/1.1 client has to send a request's headers: slowloris clients are cut off. */
  readonly headersTimeoutMs: number;
  /**
   * Time a new connection has to complete its TLS handshake and start its first request (HTTP/1.1:
   * send a first byte; HTTP/2: open a stream): silent connections are closed after it.
   */
  readonly idleTimeoutMs: number;
  /**
   * How often a silent connection is probed for a client that vanished without closing (TCP
   * keep-alive idle time; HTTP/2 PING interval, a session whose PING goes unanswered that long is
   * closed). 0 turns both off.
   */
  readonly keepaliveMs: number;
  /** HTTP/2 streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly maxStreamsPerConnection: number;
  /** New requests get 503 while the event loop lags more than this; 0 turns the check off. */
  readonly maxEventLoopDelayMs: number;
  readonly logLevel: LogLevel;
  /** Fastify's trustProxy: false, true, a hop count, or a list of addresses and CIDRs. */
  readonly trustProxy: boolean | number | readonly string[];
  /** Read a PROXY protocol header (v1 or v2) before each TLS handshake, from TRUST_PROXY addresses only. */
  readonly proxyProtocol: boolean;
  /** The shared queue (several processes, several machines); undefined: in memory, this process alone. */
  readonly redisUrl: string | undefined;
  /** Namespaces pairup's Redis keys. */
  readonly redisPrefix: string;
  /** REDIS_URL is one node of a Redis Cluster. */
  readonly redisCluster: boolean;
  /** Processes serving the one port (node:cluster); more than 1 needs REDIS_URL. */
  readonly workers: number;
  /** Origins whose pages may call the API: any (`*`), these, or none (`off`). */
  readonly corsOrigins: '*' | 'off' | readonly string[];
  /** Serve the demo page at /demo/. */
  readonly demo: boolean;
  /** How long a WebSocket relay stays open after its match. */
  readonly relayTtlMs: number;
  /** Largest WebSocket message a client may send. */
  readonly wsMaxMessageBytes: number;
  /** Most WebSocket messages a socket may send in one second. */
  readonly wsMaxMessagesPerS: number;
  /** Most bytes waiting to go out to one WebSocket client that does not read; past it, it is closed. */
  readonly wsMaxBufferedBytes: number;
  readonly production: boolean;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The environment variables this server reads, with their defaults ('' means no default). */
export const ENV_KEYS = {
  HOST: '::',
  PORT: '3030',
  TLS_CERT: '',
  TLS_KEY: '',
  MATCH_TIMEOUT_MS: '60000',
  MAX_WAITING: '100000',
  MAX_WAITING_PER_IP: '64',
  IPV6_PREFIX_BITS: '64',
  CODE_TTL_MS: '600000',
  STUN_PORT: '',
  SHUTDOWN_GRACE_MS: '10000',
  ADMIN_HOST: '127.0.0.1',
  ADMIN_PORT: '9464',
  METRICS_MAX_POOLS: '50',
  HEADERS_TIMEOUT_MS: '10000',
  IDLE_TIMEOUT_MS: '10000',
  KEEPALIVE_MS: '30000',
  MAX_STREAMS_PER_CONNECTION: '100',
  MAX_EVENT_LOOP_DELAY_MS: '1000',
  LOG_LEVEL: 'info',
  TRUST_PROXY: 'false',
  PROXY_PROTOCOL: 'off',
  REDIS_URL: '',
  REDIS_PREFIX: 'pairup:',
  REDIS_CLUSTER: 'off',
  WORKERS: '1',
  CORS_ORIGINS: '*',
  DEMO: 'on',
  RELAY_TTL_MS: '600000',
  WS_MAX_MESSAGE_BYTES: '16384',
  WS_MAX_MESSAGES_PER_S: '50',
  WS_MAX_BUFFERED_BYTES: '1048576',
  NODE_ENV: 'development',
} as const;

export type Env = Readonly<Record<string, string | undefined>>;

/** A bad configuration value: its message is the one line start-up prints. */
export class ConfigError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(`${key} ${message}`);
    this.name = 'ConfigError';
  }
}

const DAY_MS = 86_400_000;

export function loadConfig(env: Env): Config {
  const get = (key: keyof typeof ENV_KEYS): string => {
    const value = env[key]?.trim();
    return value === undefined || value === '' ? ENV_KEYS[key] : value;
  };
  const tlsCertFile = get('TLS_CERT') || undefined;
  const tlsKeyFile = get('TLS_KEY') || undefined;
  if ((tlsCertFile === undefined) !== (tlsKeyFile === undefined)) {
    const missing = tlsCertFile === undefined ? 'TLS_CERT' : 'TLS_KEY';
    throw new ConfigError(missing, 'must be set too: TLS_CERT and TLS_KEY go together');
  }
  const host = hostName('HOST', get('HOST'));
  const trust = trustProxy(get('TRUST_PROXY'));
  const proxyProtocol = onOff('PROXY_PROTOCOL', get('PROXY_PROTOCOL'));
  if (proxyProtocol && (trust === false || typeof trust === 'number')) {
    throw new ConfigError(
      'PROXY_PROTOCOL',
      'needs TRUST_PROXY set to the load balancers\' addresses (a list of addresses and CIDRs, or true): PROXY headers are taken only from them',
    );
  }
  const redis = redisUrl(get('REDIS_URL'));
  const workers = integer('WORKERS', get('WORKERS'), 1, 1024);
  if (workers > 1 && redis === undefined) {
    throw new ConfigError('WORKERS', `is ${workers}, which needs REDIS_URL: workers share pools only through Redis`);
  }
  const redisCluster = onOff('REDIS_CLUSTER', get('REDIS_CLUSTER'));
  if (redisCluster && redis === undefined) throw new ConfigError('REDIS_CLUSTER', 'needs REDIS_URL (one node of the cluster)');
  return Object.freeze({
    host,
    port: integer('PORT', get('PORT'), 0, 65_535),
    tlsCertFile,
    tlsKeyFile,
    matchTimeoutMs: integer('MATCH_TIMEOUT_MS', get('MATCH_TIMEOUT_MS'), 1, DAY_MS),
    maxWaiting: integer('MAX_WAITING', get('MAX_WAITING'), 1, 10_000_000),
    maxWaitingPerIp: integer('MAX_WAITING_PER_IP', get('MAX_WAITING_PER_IP'), 0, 10_000_000),
    ipv6PrefixBits: integer('IPV6_PREFIX_BITS', get('IPV6_PREFIX_BITS'), 16, 128),
    codeTtlMs: integer('CODE_TTL_MS', get('CODE_TTL_MS'), 1, DAY_MS),
    stunPort: get('STUN_PORT') === '' ? 'same' : integer('STUN_PORT', get('STUN_PORT'), 0, 65_535),
    shutdownGraceMs: integer('SHUTDOWN_GRACE_MS', get('SHUTDOWN_GRACE_MS'), 0, DAY_MS),
    adminHost: hostName('ADMIN_HOST', get('ADMIN_HOST')),
    adminPort: integer('ADMIN_PORT', get('ADMIN_PORT'), 0, 65_535),
    metricsMaxPools: integer('METRICS_MAX_POOLS', get('METRICS_MAX_POOLS'), 0, 10_000),
    headersTimeoutMs: integer('HEADERS_TIMEOUT_MS', get('HEADERS_TIMEOUT_MS'), 100, 600_000),
    idleTimeoutMs: integer('IDLE_TIMEOUT_MS', get('IDLE_TIMEOUT_MS'), 100, 600_000),
    keepaliveMs: integer('KEEPALIVE_MS', get('KEEPALIVE_MS'), 0, DAY_MS),
    maxStreamsPerConnection: integer('MAX_STREAMS_PER_CONNECTION', get('MAX_STREAMS_PER_CONNECTION'), 1, 10_000),
    maxEventLoopDelayMs: integer('MAX_EVENT_LOOP_DELAY_MS', get('MAX_EVENT_LOOP_DELAY_MS'), 0, 60_000),
    logLevel: logLevel(get('LOG_LEVEL')),
    trustProxy: trust,
    proxyProtocol,
    redisUrl: redis,
    redisPrefix: redisPrefix(get('REDIS_PREFIX')),
    redisCluster,
    workers,
    corsOrigins: corsOrigins(get('CORS_ORIGINS')),
    demo: onOff('DEMO', get('DEMO')),
    relayTtlMs: integer('RELAY_TTL_MS', get('RELAY_TTL_MS'), 1, DAY_MS),
    wsMaxMessageBytes: integer('WS_MAX_MESSAGE_BYTES', get('WS_MAX_MESSAGE_BYTES'), 64, 16_777_216),
    wsMaxMessagesPerS: integer('WS_MAX_MESSAGES_PER_S', get('WS_MAX_MESSAGES_PER_S'), 1, 1_000_000),
    wsMaxBufferedBytes: integer('WS_MAX_BUFFERED_BYTES', get('WS_MAX_BUFFERED_BYTES'), 1024, 1_073_741_824),
    production: get('NODE_ENV') === 'production',
  });
}

function hostName(key: string, raw: string): string {
  if (!/^[A-Za-z0-9.:_-]+$/.test(raw)) throw new ConfigError(key, `must be an IP address or host name, got ${JSON.stringify(raw)}`);
  return raw;
}

function integer(key: string, raw: string, min: number, max: number): number {
  const value = /^[0-9]+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(key, `must be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function onOff(key: string, raw: string): boolean {
  const lower = raw.toLowerCase();
  if (lower === 'on' || lower === 'true') return true;
  if (lower === 'off' || lower === 'false') return false;
  throw new ConfigError(key, `must be on or off, got ${JSON.stringify(raw)}`);
}

function logLevel(raw: string): LogLevel {
  const level = LOG_LEVELS.find((l) => l === raw.toLowerCase());
  if (level === undefined) {
    throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(raw)}`);
  }
  return level;
}

function trustProxy(raw: string): Config['trustProxy'] {
  const lower = raw.toLowerCase();
  if (lower === 'false' || lower === 'off' || lower === '0') return false;
  if (lower === 'true' || lower === 'on') return true;
  if (/^[0-9]+$/.test(raw)) return integer('TRUST_PROXY', raw, 1, 100);
  const entries = raw.split(',').map((s) => s.trim());
  for (const entry of entries) {
    if (!isAddressOrCidr(entry)) {
      throw new ConfigError(
        'TRUST_PROXY',
        `must be false, true, a hop count, or a comma-separated list of IP addresses and CIDRs, got ${JSON.stringify(entry)}`,
      );
    }
  }
  return Object.freeze(entries);
}

function isAddressOrCidr(entry: string): boolean {
  const [ip = '', bits, ...rest] = entry.split('/');
  const family = isIP(ip);
  if (family === 0 || rest.length > 0) return false;
  if (bits === undefined) return true;
  return /^[0-9]{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

function corsOrigins(raw: string): Config['corsOrigins'] {
  if (raw === '*') return '*';
  if (raw.toLowerCase() === 'off') return 'off';
  const origins = raw.split(',').map((s) => s.trim());
  for (const origin of origins) {
    const url = URL.canParse(origin) ? new URL(origin) : undefined;
    if (url === undefined || !/^https?:$/.test(url.protocol) || url.origin !== origin) {
      throw new ConfigError('CORS_ORIGINS', `must be *, off, or a comma-separated list of origins like https://app.example (scheme, host, optional port; no path), got ${JSON.stringify(origin)}`);
    }
  }
  return Object.freeze(origins);
}

function redisUrl(raw: string): string | undefined {
  if (raw === '') return undefined;
  if (!/^rediss?:\/\//.test(raw) || !URL.canParse(raw)) {
    throw new ConfigError('REDIS_URL', `must be a redis:// or rediss:// URL, got ${JSON.stringify(raw.replace(/:[^:@/]*@/, ':…@'))}`);
  }
  return raw;
}

function redisPrefix(raw: string): string {
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(raw)) throw new ConfigError('REDIS_PREFIX', `must be 1 to 64 of A-Z a-z 0-9 . _ : -, got ${JSON.stringify(raw)}`);
  return raw;
}
