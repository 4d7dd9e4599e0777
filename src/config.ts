import {
  ConfigError,
  corsOrigins,
  devCertHosts,
  hostName,
  integer,
  onOff,
  parseTurnSecrets,
  redisPrefix,
  redisUrl,
  trustProxy,
  turnUrlList,
} from './config-values.js';

export { ConfigError, parseTurnSecrets } from './config-values.js';

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
  /** The most members a request may ask its group to have (`size`), 2 to 64. */
  readonly maxGroupSize: number;
  /** How long the oldest of a group's waiters waits before a group of `min` or more forms without the rest. */
  readonly fillWaitMs: number;
  /**
   * UDP port of the STUN responder: 'same' is the number of the port the HTTPS server listens on,
   * 0 turns the responder off.
   */
  readonly stunPort: number | 'same';
  /**
   * A second UDP port for RFC 5780 NAT behaviour discovery (OTHER-ADDRESS, RESPONSE-PORT): a client
   * compares its mapping towards both ports. Undefined: off, one STUN port.
   */
  readonly stunAltPort: number | undefined;
  /** The host name or address clients reach this server at, for the STUN entry of `iceServers`; undefined: each request's own host. */
  readonly publicHost: string | undefined;
  /** TURN servers whose credentials every match carries; empty: none. */
  readonly turnUrls: readonly string[];
  /** TURN_SECRET: the secrets shared with the TURN servers, the first signs; undefined when TURN_SECRET_FILE names them. */
  readonly turnSecrets: readonly string[] | undefined;
  readonly turnSecretFile: string | undefined;
  /** The app keys' file (hashes and settings); undefined: no keys, any client may use the server. */
  readonly appKeysFile: string | undefined;
  /** How long a TURN credential lets a client start a relay. */
  readonly turnTtlS: number;
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
  /** `json`: one JSON object a line (for machines); `pretty`: readable lines for a terminal (pino-pretty). */
  readonly logFormat: LogFormat;
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
  /** A relay with no signal either way for this long is closed. */
  readonly relayIdleMs: number;
  /** WebSocket clients one address (limit key) may have joined at once in one process, waiting or relaying; 0: no limit. */
  readonly maxRelaysPerIp: number;
  /** Largest WebSocket message a client may send. */
  readonly wsMaxMessageBytes: number;
  /** Most WebSocket messages a socket may send a second, on average (bursts of twice as many pass). */
  readonly wsMaxMessagesPerS: number;
  /** Most bytes waiting to go out to one WebSocket client that does not read; past it, it is closed. */
  readonly wsMaxBufferedBytes: number;
  /**
   * Names and addresses the development certificate covers besides localhost, 127.0.0.1 and ::1:
   * these, or (`auto`) this machine's host name and the addresses of its network interfaces.
   */
  readonly devCertHosts: 'auto' | readonly string[];
  readonly production: boolean;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

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
  MAX_GROUP_SIZE: '8',
  FILL_WAIT_MS: '10000',
  STUN_PORT: '',
  STUN_ALT_PORT: '',
  PUBLIC_HOST: '',
  TURN_URLS: '',
  TURN_SECRET: '',
  TURN_SECRET_FILE: '',
  TURN_TTL_S: '300',
  APP_KEYS_FILE: '',
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
  LOG_FORMAT: 'json',
  TRUST_PROXY: 'false',
  PROXY_PROTOCOL: 'off',
  REDIS_URL: '',
  REDIS_PREFIX: 'pairup:',
  REDIS_CLUSTER: 'off',
  WORKERS: '1',
  CORS_ORIGINS: '*',
  DEMO: 'on',
  RELAY_TTL_MS: '600000',
  RELAY_IDLE_MS: '60000',
  MAX_RELAYS_PER_IP: '64',
  WS_MAX_MESSAGE_BYTES: '16384',
  WS_MAX_MESSAGES_PER_S: '50',
  WS_MAX_BUFFERED_BYTES: '1048576',
  DEV_CERT_HOSTS: '',
  NODE_ENV: 'development',
} as const;

export type Env = Readonly<Record<string, string | undefined>>;

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
  const turnUrls = turnUrlList(get('TURN_URLS'));
  const turnSecretFile = get('TURN_SECRET_FILE') || undefined;
  const turnSecrets = get('TURN_SECRET') === '' ? undefined : parseTurnSecrets('TURN_SECRET', get('TURN_SECRET'));
  if (turnSecrets !== undefined && turnSecretFile !== undefined) throw new ConfigError('TURN_SECRET_FILE', 'and TURN_SECRET are both set: give the secret one way');
  if (turnUrls.length > 0 && turnSecrets === undefined && turnSecretFile === undefined) {
    throw new ConfigError('TURN_SECRET', 'must be set (or TURN_SECRET_FILE) when TURN_URLS is: it signs the TURN credentials');
  }
  if (turnUrls.length === 0 && (turnSecrets !== undefined || turnSecretFile !== undefined)) {
    throw new ConfigError('TURN_URLS', 'must be set when a TURN secret is: the turn: or turns: URIs clients are to use');
  }
  const port = integer('PORT', get('PORT'), 0, 65_535);
  const stunPort = get('STUN_PORT') === '' ? 'same' : integer('STUN_PORT', get('STUN_PORT'), 0, 65_535);
  const stunAltPort = altPort(get('STUN_ALT_PORT'), stunPort, port);
  const redisCluster = onOff('REDIS_CLUSTER', get('REDIS_CLUSTER'));
  if (redisCluster && redis === undefined) throw new ConfigError('REDIS_CLUSTER', 'needs REDIS_URL (one node of the cluster)');
  return Object.freeze({
    host,
    port,
    tlsCertFile,
    tlsKeyFile,
    matchTimeoutMs: integer('MATCH_TIMEOUT_MS', get('MATCH_TIMEOUT_MS'), 1, DAY_MS),
    maxWaiting: integer('MAX_WAITING', get('MAX_WAITING'), 1, 10_000_000),
    maxWaitingPerIp: integer('MAX_WAITING_PER_IP', get('MAX_WAITING_PER_IP'), 0, 10_000_000),
    ipv6PrefixBits: integer('IPV6_PREFIX_BITS', get('IPV6_PREFIX_BITS'), 16, 128),
    codeTtlMs: integer('CODE_TTL_MS', get('CODE_TTL_MS'), 1, DAY_MS),
    // 64: protocol/schemas.ts GROUP_SIZE_LIMIT (config reads no other module; test/config.test.ts keeps them equal).
    maxGroupSize: integer('MAX_GROUP_SIZE', get('MAX_GROUP_SIZE'), 2, 64),
    fillWaitMs: integer('FILL_WAIT_MS', get('FILL_WAIT_MS'), 0, DAY_MS),
    publicHost: get('PUBLIC_HOST') === '' ? undefined : hostName('PUBLIC_HOST', get('PUBLIC_HOST')),
    turnUrls,
    turnSecrets,
    turnSecretFile,
    appKeysFile: get('APP_KEYS_FILE') || undefined,
    turnTtlS: integer('TURN_TTL_S', get('TURN_TTL_S'), 1, 86_400),
    stunPort,
    stunAltPort,
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
    logFormat: logFormat(get('LOG_FORMAT')),
    trustProxy: trust,
    proxyProtocol,
    redisUrl: redis,
    redisPrefix: redisPrefix(get('REDIS_PREFIX')),
    redisCluster,
    workers,
    corsOrigins: corsOrigins(get('CORS_ORIGINS')),
    demo: onOff('DEMO', get('DEMO')),
    relayTtlMs: integer('RELAY_TTL_MS', get('RELAY_TTL_MS'), 1, DAY_MS),
    relayIdleMs: integer('RELAY_IDLE_MS', get('RELAY_IDLE_MS'), 1, DAY_MS),
    maxRelaysPerIp: integer('MAX_RELAYS_PER_IP', get('MAX_RELAYS_PER_IP'), 0, 10_000_000),
    wsMaxMessageBytes: integer('WS_MAX_MESSAGE_BYTES', get('WS_MAX_MESSAGE_BYTES'), 64, 16_777_216),
    wsMaxMessagesPerS: integer('WS_MAX_MESSAGES_PER_S', get('WS_MAX_MESSAGES_PER_S'), 1, 1_000_000),
    wsMaxBufferedBytes: integer('WS_MAX_BUFFERED_BYTES', get('WS_MAX_BUFFERED_BYTES'), 1024, 1_073_741_824),
    devCertHosts: devCertHosts(get('DEV_CERT_HOSTS')),
    production: get('NODE_ENV') === 'production',
  });
}

/** STUN_ALT_PORT: off (unset or 0), or a port of its own beside a STUN responder that is on. */
function altPort(raw: string, stunPort: number | 'same', port: number): number | undefined {
  const alt = raw === '' ? 0 : integer('STUN_ALT_PORT', raw, 0, 65_535);
  if (alt === 0) return undefined;
  if (stunPort === 0) throw new ConfigError('STUN_ALT_PORT', `is ${alt}, but STUN_PORT is 0 (off): the alternate port answers beside the STUN port`);
  const primary = stunPort === 'same' ? port : stunPort;
  if (alt === primary) {
    const which = stunPort === 'same' ? 'the STUN port (STUN_PORT unset: the number of PORT)' : 'STUN_PORT';
    throw new ConfigError('STUN_ALT_PORT', `is ${alt}, the same as ${which}: it must be another port`);
  }
  return alt;
}

/** A DNS name a certificate can carry: labels of letters, digits and hyphens (a leading `*.` allowed). */

function logLevel(raw: string): LogLevel {
  const level = LOG_LEVELS.find((l) => l === raw.toLowerCase());
  if (level === undefined) {
    throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(raw)}`);
  }
  return level;
}

function logFormat(raw: string): LogFormat {
  const format = LOG_FORMATS.find((f) => f === raw.toLowerCase());
  if (format === undefined) throw new ConfigError('LOG_FORMAT', `must be json or pretty, got ${JSON.stringify(raw)}`);
  return format;
}
