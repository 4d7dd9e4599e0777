import { isIPv4 } from 'node:net';

const MAPPED_PREFIX = '::ffff:';

/**
 * A client IP as the client itself knows it: IPv4-mapped IPv6 (`::ffff:1.2.3.4`), what a
 * dual-stack socket reports for an IPv4 client, becomes the plain IPv4 address.
 */
export function normalizeIp(ip: string): string {
  if (ip.length > MAPPED_PREFIX.length && ip.slice(0, MAPPED_PREFIX.length).toLowerCase() === MAPPED_PREFIX) {
    const v4 = ip.slice(MAPPED_PREFIX.length);
    if (isIPv4(v4)) return v4;
  }
  return ip;
}

/** The observed address of a client as `host:port`: `203.0.113.7:57753`, `[2001:db8::1]:57753`. */
export function formatAddress(ip: string, port: number): string {
  const host = normalizeIp(ip);
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
