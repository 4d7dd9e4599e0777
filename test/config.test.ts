import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { configWarnings } from '../src/config-warnings.js';
import { ConfigError, ENV_KEYS, loadConfig } from '../src/config.js';
import { GROUP_SIZE_LIMIT } from '../src/protocol/schemas.js';

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
      maxGroupSize: 8,
      fillWaitMs: 10_000,
      stunPort: 'same',
      stunAltPort: undefined,
      publicHost: undefined,
      turnUrls: [],
      turnSecrets: undefined,
      turnSecretFile: undefined,
      turnTtlS: 300,
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
      logFormat: 'json',
      trustProxy: false,
      proxyProtocol: false,
      redisUrl: undefined,
      redisPrefix: 'pairup:',
      redisCluster: false,
      workers: 1,
      corsOrigins: '*',
      demo: true,
      devCertHosts: [],
      relayTtlMs: 600_000,
      relayIdleMs: 60_000,
      maxRelaysPerIp: 64,
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
        PUBLIC_HOST: 'pairup.example',
        TURN_URLS: 'turn:turn.example:3478?transport=udp, turns:[2001:db8::3]:5349?transport=tcp',
        TURN_SECRET: 'new-secret,old-secret',
        TURN_TTL_S: '600',
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
        LOG_FORMAT: 'Pretty',
        TRUST_PROXY: '10.0.0.0/8, 192.0.2.1,::1',
        PROXY_PROTOCOL: 'on',
        REDIS_URL: 'rediss://:secret@redis.internal:6380/2',
        REDIS_PREFIX: 'pairup-eu:',
        REDIS_CLUSTER: 'on',
        WORKERS: '4',
        CORS_ORIGINS: 'https://app.example,http://localhost:8080',
        DEMO: 'off',
        RELAY_TTL_MS: '30000',
        RELAY_IDLE_MS: '5000',
        MAX_RELAYS_PER_IP: '0',
        WS_MAX_MESSAGE_BYTES: '4096',
        WS_MAX_MESSAGES_PER_S: '10',
        WS_MAX_BUFFERED_BYTES: '65536',
        DEV_CERT_HOSTS: 'laptop.lan,192.168.1.20',
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
      maxGroupSize: 8,
      fillWaitMs: 10_000,
      stunPort: 0,
      publicHost: 'pairup.example',
      turnUrls: ['turn:turn.example:3478?transport=udp', 'turns:[2001:db8::3]:5349?transport=tcp'],
      turnSecrets: ['new-secret', 'old-secret'],
      turnSecretFile: undefined,
      turnTtlS: 600,
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
      logFormat: 'pretty',
      trustProxy: ['10.0.0.0/8', '192.0.2.1', '::1'],
      proxyProtocol: true,
      redisUrl: 'rediss://:secret@redis.internal:6380/2',
      redisPrefix: 'pairup-eu:',
      redisCluster: true,
      workers: 4,
      corsOrigins: ['https://app.example', 'http://localhost:8080'],
      demo: false,
      relayTtlMs: 30_000,
      relayIdleMs: 5000,
      maxRelaysPerIp: 0,
      wsMaxMessageBytes: 4096,
      wsMaxMessagesPerS: 10,
      wsMaxBufferedBytes: 65_536,
      devCertHosts: ['laptop.lan', '192.168.1.20'],
      production: true,
    });
  });

  it('reads DEV_CERT_HOSTS: a list of names and addresses, or auto', () => {
    expect(loadConfig({ DEV_CERT_HOSTS: 'laptop.lan, 192.168.1.20,fd00::7' }).devCertHosts).toEqual(['laptop.lan', '192.168.1.20', 'fd00::7']);
    expect(loadConfig({ DEV_CERT_HOSTS: 'AUTO' }).devCertHosts).toBe('auto');
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
    ['STUN_ALT_PORT', '3030', 'STUN_ALT_PORT is 3030, the same as the STUN port (STUN_PORT unset: the number of PORT): it must be another port'],
    ['STUN_ALT_PORT', '65536', 'STUN_ALT_PORT must be a whole number from 0 to 65535, got "65536"'],
    ['STUN_ALT_PORT', 'next', 'STUN_ALT_PORT must be a whole number from 0 to 65535, got "next"'],
    ['SHUTDOWN_GRACE_MS', '9999999999', 'SHUTDOWN_GRACE_MS must be a whole number from 0 to 86400000, got "9999999999"'],
    ['LOG_LEVEL', 'verbose', 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"'],
    ['LOG_FORMAT', 'text', 'LOG_FORMAT must be json or pretty, got "text"'],
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
    ['TURN_URLS', 'http://turn.example', 'TURN_URLS must be comma-separated turn: or turns: URIs like turn:turn.example:3478?transport=udp, got "http://turn.example"'],
    ['TURN_URLS', 'turn:turn.example', 'TURN_SECRET must be set (or TURN_SECRET_FILE) when TURN_URLS is: it signs the TURN credentials'],
    ['TURN_SECRET', 's3cret', 'TURN_URLS must be set when a TURN secret is: the turn: or turns: URIs clients are to use'],
    ['TURN_SECRET_FILE', '/etc/pairup/turn-secret', 'TURN_URLS must be set when a TURN secret is: the turn: or turns: URIs clients are to use'],
    ['TURN_TTL_S', '0', 'TURN_TTL_S must be a whole number from 1 to 86400, got "0"'],
    ['PUBLIC_HOST', 'https://pairup.example', 'PUBLIC_HOST must be an IP address or host name, got "https://pairup.example"'],
    ['DEV_CERT_HOSTS', 'laptop.lan,bad host', 'DEV_CERT_HOSTS must be auto, or a comma-separated list of host names and IP addresses, got "bad host"'],
    ['DEV_CERT_HOSTS', 'https://laptop.lan', 'DEV_CERT_HOSTS must be auto, or a comma-separated list of host names and IP addresses, got "https://laptop.lan"'],
  ])('refuses %s=%s, naming it', (key, value, message) => {
    const attempt = () => loadConfig({ [key]: value });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(message);
  });

  it.each([
    [{ STUN_PORT: '3478', STUN_ALT_PORT: '3478' }, 'STUN_ALT_PORT is 3478, the same as STUN_PORT: it must be another port'],
    [{ STUN_PORT: '0', STUN_ALT_PORT: '3479' }, 'STUN_ALT_PORT is 3479, but STUN_PORT is 0 (off): the alternate port answers beside the STUN port'],
    [{ PORT: '443', STUN_ALT_PORT: '443' }, 'STUN_ALT_PORT is 443, the same as the STUN port (STUN_PORT unset: the number of PORT): it must be another port'],
  ])('refuses STUN_ALT_PORT that is not a port of its own: %j', (env, message) => {
    const attempt = () => loadConfig(env);
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(message);
  });

  it.each([
    [{}, undefined],
    [{ STUN_ALT_PORT: '0' }, undefined],
    [{ STUN_ALT_PORT: '3031' }, 3031],
    [{ STUN_PORT: '3478', STUN_ALT_PORT: '3479' }, 3479],
    [{ STUN_PORT: '3478', STUN_ALT_PORT: '3030' }, 3030],
  ])('reads STUN_ALT_PORT from %j', (env, expected) => {
    expect(loadConfig(env).stunAltPort).toBe(expected);
  });

  it.each([
    [{ TURN_SECRET: 'a,b,c' }, 'TURN_SECRET must be one secret, or two separated by a comma (the first signs), none empty'],
    [{ TURN_SECRET: 'hunter2,' }, 'TURN_SECRET must be one secret, or two separated by a comma (the first signs), none empty'],
    [{ TURN_SECRET: 'hunter2', TURN_SECRET_FILE: '/run/secret' }, 'TURN_SECRET_FILE and TURN_SECRET are both set: give the secret one way'],
  ])('refuses TURN secrets given wrong, never printing them: %j', (env, message) => {
    const attempt = () => loadConfig({ TURN_URLS: 'turn:turn.example', ...env });
    expect(attempt).toThrow(new ConfigError(message.split(' ', 1)[0] ?? '', message.slice(message.indexOf(' ') + 1)));
    expect(() => attempt()).not.toThrow(/hunter2/);
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

describe('group settings', () => {
  it('reads MAX_GROUP_SIZE (2 to 64, the protocol’s limit) and FILL_WAIT_MS', () => {
    const config = loadConfig({ MAX_GROUP_SIZE: '64', FILL_WAIT_MS: '0' });
    expect([config.maxGroupSize, config.fillWaitMs]).toEqual([GROUP_SIZE_LIMIT, 0]);
    expect(() => loadConfig({ MAX_GROUP_SIZE: '65' })).toThrow(new ConfigError('MAX_GROUP_SIZE', 'must be a whole number from 2 to 64, got "65"'));
    expect(() => loadConfig({ MAX_GROUP_SIZE: '1' })).toThrow(new ConfigError('MAX_GROUP_SIZE', 'must be a whole number from 2 to 64, got "1"'));
    expect(() => loadConfig({ FILL_WAIT_MS: '-1' })).toThrow(new ConfigError('FILL_WAIT_MS', 'must be a whole number from 0 to 86400000, got "-1"'));
  });
});

describe('configWarnings', () => {
  it('names every unknown variable of .env, with the setting it is closest to', () => {
    expect(configWarnings(['MATCH_TIMOUT_MS', 'PORT', 'GREETING', 'max_waiting'], [])).toEqual([
      '.env sets MATCH_TIMOUT_MS, which is not a pairup setting: it is ignored; did you mean MATCH_TIMEOUT_MS?',
      '.env sets GREETING, which is not a pairup setting: it is ignored',
      '.env sets max_waiting, which is not a pairup setting: it is ignored; did you mean MAX_WAITING?',
    ]);
  });

  it('names variables of the environment only when they are a typo or two from a setting', () => {
    const environment = ['PATH', 'HOME', 'HOSTNAME', 'USER', 'SHELL', 'TERM', 'LANG', 'PWD', 'NODE_OPTIONS', 'PORT', 'MAX_WAITNG', 'REDIS_URI', 'IDLE_TIMEOUT_MSS', 'WOKRERS'];
    expect(configWarnings([], environment)).toEqual([
      'the environment sets MAX_WAITNG, which is not a pairup setting: it is ignored; did you mean MAX_WAITING?',
      'the environment sets REDIS_URI, which is not a pairup setting: it is ignored; did you mean REDIS_URL?',
      'the environment sets IDLE_TIMEOUT_MSS, which is not a pairup setting: it is ignored; did you mean IDLE_TIMEOUT_MS?',
      'the environment sets WOKRERS, which is not a pairup setting: it is ignored; did you mean WORKERS?',
    ]);
  });

  it('says nothing twice of a name set in both .env and the environment', () => {
    expect(configWarnings(['MAX_WAITNG'], ['MAX_WAITNG'])).toEqual([
      '.env sets MAX_WAITNG, which is not a pairup setting: it is ignored; did you mean MAX_WAITING?',
    ]);
  });
});
