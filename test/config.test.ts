import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { ConfigError, ENV_KEYS, loadConfig } from '../src/config.js';

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    expect(loadConfig({})).toEqual({
      host: '::',
      port: 3030,
      tlsCertFile: undefined,
      tlsKeyFile: undefined,
      matchTimeoutMs: 60_000,
      maxWaiting: 100_000,
      maxWaitingPerIp: 64,
      ipv6PrefixBits: 64,
      codeTtlMs: 600_000,
      stunPort: 'same',
      shutdownGraceMs: 10_000,
      adminHost: '127.0.0.1',
      adminPort: 9464,
      metricsMaxPools: 50,
      headersTimeoutMs: 10_000,
      idleTimeoutMs: 10_000,
      keepaliveMs: 30_000,
      maxStreamsPerConnection: 100,
      maxEventLoopDelayMs: 1000,
      logLevel: 'info',
      trustProxy: false,
      proxyProtocol: false,
      redisUrl: undefined,
      redisPrefix: 'pairup:',
      redisCluster: false,
      workers: 1,
      corsOrigins: '*',
      demo: true,
      relayTtlMs: 600_000,
      wsMaxMessageBytes: 16_384,
      wsMaxMessagesPerS: 50,
      wsMaxBufferedBytes: 1_048_576,
      production: false,
    });
  });

  it('is frozen', () => {
    expect(Object.isFrozen(loadConfig({}))).toBe(true);
  });

  it('reads every variable', () => {
    expect(
      loadConfig({
        HOST: '::',
        PORT: '8443',
        TLS_CERT: '/etc/pairup/cert.pem',
        TLS_KEY: '/etc/pairup/key.pem',
        MATCH_TIMEOUT_MS: '30000',
        MAX_WAITING: '500',
        MAX_WAITING_PER_IP: '0',
        IPV6_PREFIX_BITS: '56',
        CODE_TTL_MS: '5000',
        STUN_PORT: '0',
        SHUTDOWN_GRACE_MS: '2500',
        ADMIN_HOST: '10.0.0.5',
        ADMIN_PORT: '0',
        METRICS_MAX_POOLS: '7',
        MAX_EVENT_LOOP_DELAY_MS: '0',
        MAX_STREAMS_PER_CONNECTION: '16',
        HEADERS_TIMEOUT_MS: '5000',
        IDLE_TIMEOUT_MS: '3000',
        KEEPALIVE_MS: '0',
        LOG_LEVEL: 'WARN',
        TRUST_PROXY: '10.0.0.0/8, 192.0.2.1,::1',
        PROXY_PROTOCOL: 'on',
        REDIS_URL: 'rediss://:secret@redis.internal:6380/2',
        REDIS_PREFIX: 'pairup-eu:',
        REDIS_CLUSTER: 'on',
        WORKERS: '4',
        CORS_ORIGINS: 'https://app.example,http://localhost:8080',
        DEMO: 'off',
        RELAY_TTL_MS: '30000',
        WS_MAX_MESSAGE_BYTES: '4096',
        WS_MAX_MESSAGES_PER_S: '10',
        WS_MAX_BUFFERED_BYTES: '65536',
        NODE_ENV: 'production',
      }),
    ).toEqual({
      host: '::',
      port: 8443,
      tlsCertFile: '/etc/pairup/cert.pem',
      tlsKeyFile: '/etc/pairup/key.pem',
      matchTimeoutMs: 30_000,
      maxWaiting: 500,
      maxWaitingPerIp: 0,
      ipv6PrefixBits: 56,
      codeTtlMs: 5000,
      stunPort: 0,
      shutdownGraceMs: 2500,
      adminHost: '10.0.0.5',
      adminPort: 0,
      metricsMaxPools: 7,
      headersTimeoutMs: 5000,
      idleTimeoutMs: 3000,
      keepaliveMs: 0,
      maxStreamsPerConnection: 16,
      maxEventLoopDelayMs: 0,
      logLevel: 'warn',
      trustProxy: ['10.0.0.0/8', '192.0.2.1', '::1'],
      proxyProtocol: true,
      redisUrl: 'rediss://:secret@redis.internal:6380/2',
      redisPrefix: 'pairup-eu:',
      redisCluster: true,
      workers: 4,
      corsOrigins: ['https://app.example', 'http://localhost:8080'],
      demo: false,
      relayTtlMs: 30_000,
      wsMaxMessageBytes: 4096,
      wsMaxMessagesPerS: 10,
      wsMaxBufferedBytes: 65_536,
      production: true,
    });
  });

  it('treats empty values as unset', () => {
    expect(loadConfig({ PORT: '', TLS_CERT: ' ', TLS_KEY: '' }).port).toBe(3030);
  });

  it.each([
    ['true', true],
    ['on', true],
    ['false', false],
    ['off', false],
    ['0', false],
    ['2', 2],
  ])('reads TRUST_PROXY=%s', (raw, expected) => {
    expect(loadConfig({ TRUST_PROXY: raw }).trustProxy).toEqual(expected);
  });

  it.each([
    ['PORT', '65536', 'PORT must be a whole number from 0 to 65535, got "65536"'],
    ['PORT', '80.5', 'PORT must be a whole number from 0 to 65535, got "80.5"'],
    ['PORT', '-1', 'PORT must be a whole number from 0 to 65535, got "-1"'],
    ['MATCH_TIMEOUT_MS', '1e3', 'MATCH_TIMEOUT_MS must be a whole number from 1 to 86400000, got "1e3"'],
    ['MAX_WAITING', '0', 'MAX_WAITING must be a whole number from 1 to 10000000, got "0"'],
    ['REDIS_URL', 'http://:pw@redis:6379', 'REDIS_URL must be a redis:// or rediss:// URL, got "http://:…@redis:6379"'],
    ['REDIS_PREFIX', 'a b', 'REDIS_PREFIX must be 1 to 64 of A-Z a-z 0-9 . _ : -, got "a b"'],
    ['REDIS_CLUSTER', 'on', 'REDIS_CLUSTER needs REDIS_URL (one node of the cluster)'],
    ['CORS_ORIGINS', 'https://app.example/path', 'CORS_ORIGINS must be *, off, or a comma-separated list of origins like https://app.example (scheme, host, optional port; no path), got "https://app.example/path"'],
    ['REDIS_CLUSTER', 'yes', 'REDIS_CLUSTER must be on or off, got "yes"'],
    ['WORKERS', '2', 'WORKERS is 2, which needs REDIS_URL: workers share pools only through Redis'],
    ['WORKERS', '0', 'WORKERS must be a whole number from 1 to 1024, got "0"'],
    ['MAX_WAITING_PER_IP', 'many', 'MAX_WAITING_PER_IP must be a whole number from 0 to 10000000, got "many"'],
    ['CODE_TTL_MS', '0', 'CODE_TTL_MS must be a whole number from 1 to 86400000, got "0"'],
    ['STUN_PORT', 'udp', 'STUN_PORT must be a whole number from 0 to 65535, got "udp"'],
    ['SHUTDOWN_GRACE_MS', '9999999999', 'SHUTDOWN_GRACE_MS must be a whole number from 0 to 86400000, got "9999999999"'],
    ['LOG_LEVEL', 'verbose', 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"'],
    ['HOST', 'a b', 'HOST must be an IP address or host name, got "a b"'],
    ['ADMIN_HOST', 'a/b', 'ADMIN_HOST must be an IP address or host name, got "a/b"'],
    ['METRICS_MAX_POOLS', '-1', 'METRICS_MAX_POOLS must be a whole number from 0 to 10000, got "-1"'],
    [
      'TRUST_PROXY',
      '10.0.0.0/33',
      'TRUST_PROXY must be false, true, a hop count, or a comma-separated list of IP addresses and CIDRs, got "10.0.0.0/33"',
    ],
    [
      'TRUST_PROXY',
      '10.0.0.1,proxy.local',
      'TRUST_PROXY must be false, true, a hop count, or a comma-separated list of IP addresses and CIDRs, got "proxy.local"',
    ],
    ['TLS_KEY', 'key.pem', 'TLS_CERT must be set too: TLS_CERT and TLS_KEY go together'],
  ])('refuses %s=%s, naming it', (key, value, message) => {
    const attempt = () => loadConfig({ [key]: value });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(message);
  });
});

describe('documentation of the configuration', () => {
  it('.env.example lists exactly the variables the server reads', async () => {
    const example = await readFile(new URL('../.env.example', import.meta.url), 'utf8');
    const keys = example
      .split('\n')
      .map((line) => /^#?\s*([A-Z][A-Z0-9_]*)=/.exec(line)?.[1])
      .filter((key) => key !== undefined);
    expect(keys.sort()).toEqual(Object.keys(ENV_KEYS).sort());
  });

  it('README.md has a row for every variable, with its default', async () => {
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
    for (const [key, fallback] of Object.entries(ENV_KEYS)) {
      const row = readme.split('\n').find((line) => line.startsWith(`| \`${key}\``));
      expect(row, key).toBeDefined();
      if (fallback !== '') expect(row, key).toContain(`\`${fallback}\``);
    }
  });
});
