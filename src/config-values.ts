/**
 * Reading one configuration value: each parser takes the variable's name and its raw text, and
 * returns the value or throws a ConfigError whose message names the variable (config.ts uses them).
 */
import { isIP } from 'node:net';

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


const DNS_NAME = /^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

export function devCertHosts(raw: string): 'auto' | readonly string[] {
  if (raw === '') return Object.freeze([]);
  if (raw.toLowerCase() === 'auto') return 'auto';
  const hosts = raw.split(',').map((s) => s.trim());
  for (const host of hosts) {
    if (isIP(host) === 0 && (!DNS_NAME.test(host) || host.length > 253)) {
      throw new ConfigError('DEV_CERT_HOSTS', `must be auto, or a comma-separated list of host names and IP addresses, got ${JSON.stringify(host)}`);
    }
  }
  return Object.freeze(hosts);
}

export function hostName(key: string, raw: string): string {
  if (!/^[A-Za-z0-9.:_-]+$/.test(raw)) throw new ConfigError(key, `must be an IP address or host name, got ${JSON.stringify(raw)}`);
  return raw;
}

/** `turn:` and `turns:` URIs (RFC 7065): a host or [IPv6], an optional port and transport. */
const TURN_URI = /^turns?:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})(:[0-9]{1,5})?(\?transport=(udp|tcp))?$/;

export function turnUrlList(raw: string): readonly string[] {
  if (raw === '') return Object.freeze([]);
  const urls = raw.split(',').map((s) => s.trim());
  for (const url of urls) {
    if (!TURN_URI.test(url)) throw new ConfigError('TURN_URLS', `must be comma-separated turn: or turns: URIs like turn:turn.example:3478?transport=udp, got ${JSON.stringify(url)}`);
  }
  return Object.freeze(urls);
}

/**
 * One secret, or two separated by a comma while a secret is rolled: the first signs, and the TURN
 * servers accept both. Never printed: an error names only the variable and what is wrong.
 */
export function parseTurnSecrets(key: string, raw: string): readonly string[] {
  const secrets = raw.split(',').map((s) => s.trim());
  if (secrets.length > 2 || secrets.some((secret) => secret === '')) {
    throw new ConfigError(key, 'must be one secret, or two separated by a comma (the first signs), none empty');
  }
  return Object.freeze(secrets);
}

export function integer(key: string, raw: string, min: number, max: number): number {
  const value = /^[0-9]+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(key, `must be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

export function onOff(key: string, raw: string): boolean {
  const lower = raw.toLowerCase();
  if (lower === 'on' || lower === 'true') return true;
  if (lower === 'off' || lower === 'false') return false;
  throw new ConfigError(key, `must be on or off, got ${JSON.stringify(raw)}`);
}



export function trustProxy(raw: string): false | true | number | readonly string[] {
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

export function corsOrigins(raw: string): '*' | 'off' | readonly string[] {
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

export function redisUrl(raw: string): string | undefined {
  if (raw === '') return undefined;
  if (!/^rediss?:\/\//.test(raw) || !URL.canParse(raw)) {
    throw new ConfigError('REDIS_URL', `must be a redis:// or rediss:// URL, got ${JSON.stringify(raw.replace(/:[^:@/]*@/, ':…@'))}`);
  }
  return raw;
}

export function redisPrefix(raw: string): string {
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(raw)) throw new ConfigError('REDIS_PREFIX', `must be 1 to 64 of A-Z a-z 0-9 . _ : -, got ${JSON.stringify(raw)}`);
  return raw;
}
