import type { AddressSource } from '../protocol/schemas.js';
import { isIP, isIPv4 } from 'node:net';
import proxyAddr from 'proxy-addr';

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

/**
 * The one spelling of a valid IP address (RFC 5952 for IPv6: lower case, zeros compressed), so
 * that `2001:DB8:0::1` and `2001:db8::1` are one client. IPv4-mapped addresses become IPv4.
 */
export function canonicalIp(ip: string): string {
  if (isIPv4(ip) || ip.includes('%')) return normalizeIp(ip);
  // The URL parser writes IPv6 hosts canonically; a mapped address comes out in hex.
  const host = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (mapped === null) return host;
  const [high, low] = [parseInt(mapped[1] ?? '0', 16), parseInt(mapped[2] ?? '0', 16)];
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
}

/** The eight 16-bit groups of a canonical IPv6 address (no zone, no embedded IPv4). */
export function ipv6Groups(ip: string): number[] {
  const [head = '', tail] = ip.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((group) => parseInt(group, 16)));
  const [before, after] = [parse(head), parse(tail ?? '')];
  if (tail === undefined) return before;
  return [...before, ...Array<number>(8 - before.length - after.length).fill(0), ...after];
}

/**
 * What MAX_WAITING_PER_IP counts a client as: an IPv4 address, or the IPv6 network of
 * `ipv6PrefixBits` around an IPv6 address (a single host is commonly given a whole /64, so each of its
 * addresses apart would be 2^64 clients). `ip` is canonical.
 */
export function limitKey(ip: string, ipv6PrefixBits: number): string {
  if (!ip.includes(':') || ipv6PrefixBits >= 128 || ip.includes('%')) return ip;
  const groups = ipv6Groups(ip);
  if (groups.length !== 8) return ip;
  const masked = groups.map((group, i) => {
    const bits = Math.min(16, Math.max(0, ipv6PrefixBits - i * 16));
    return bits === 0 ? 0 : group & (0xffff << (16 - bits)) & 0xffff;
  });
  return `${canonicalIp(masked.map((group) => group.toString(16)).join(':'))}/${ipv6PrefixBits}`;
}


export interface ClientAddress {
  /** Canonical IP address. */
  readonly ip: string;
  readonly via: AddressSource;
}

/** Which proxies may name the client (TRUST_PROXY): none, all, a hop count, or addresses and CIDRs. */
export type ProxyTrust = boolean | number | readonly string[];

/** Whether the proxy at `address`, `hop` hops from the server, may be believed. */
export function compileTrust(trust: ProxyTrust): (address: string, hop: number) => boolean {
  if (trust === true) return () => true;
  if (trust === false) return () => false;
  if (typeof trust === 'number') return (_address, hop) => hop < trust;
  const trusted = proxyAddr.compile([...trust]);
  return (address, hop) => trusted(address, hop);
}

/**
 * Decides who the client of a request is, from the connection's address and X-Forwarded-For. The
 * header is read right to left while the address it was appended by is a trusted proxy; the first
 * address that is not a trusted proxy is the client. An entry that is not a valid IP address ends
 * the walk: the client is then the last address that could be checked (so a client cannot name
 * itself `x<script>`, nor rotate made-up names past MAX_WAITING_PER_IP).
 */
export function clientAddressOf(trust: ProxyTrust): (socketIp: string, forwardedFor: string | string[] | undefined) => ClientAddress {
  const trusted = compileTrust(trust);
  return (socketIp, forwardedFor) => {
    let ip = canonicalIp(socketIp);
    let via: AddressSource = 'socket';
    if (forwardedFor === undefined || trust === false) return { ip, via };
    const entries = (typeof forwardedFor === 'string' ? forwardedFor : forwardedFor.join(',')).split(',');
    for (let i = entries.length - 1, hop = 0; i >= 0 && trusted(ip, hop); i--, hop++) {
      const entry = (entries[i] ?? '').trim();
      if (isIP(entry) === 0) break;
      ip = canonicalIp(entry);
      via = 'x-forwarded-for';
    }
    return { ip, via };
  };
}
