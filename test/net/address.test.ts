import { describe, expect, it } from 'vitest';
import { canonicalIp, clientAddressOf, formatAddress, limitKey, normalizeIp } from '../../src/net/address.js';

describe('formatAddress', () => {
  it.each([
    ['203.0.113.7', 57753, '203.0.113.7:57753'],
    ['2001:db8::1', 57753, '[2001:db8::1]:57753'],
    ['::1', 1, '[::1]:1'],
    ['::ffff:1.2.3.4', 80, '1.2.3.4:80'],
    ['::FFFF:198.51.100.2', 443, '198.51.100.2:443'],
    ['::ffff:abcd', 9, '[::ffff:abcd]:9'],
    ['fe80::1%eth0', 5, '[fe80::1%eth0]:5'],
  ])('%s port %i is %s', (ip, port, expected) => {
    expect(formatAddress(ip, port)).toBe(expected);
  });
});

describe('normalizeIp', () => {
  it('counts a mapped IPv4 client as the IPv4 client', () => {
    expect(normalizeIp('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(normalizeIp('2001:db8::2')).toBe('2001:db8::2');
  });
});

describe('canonicalIp', () => {
  it.each([
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8::0:1', '2001:db8::1'],
    ['::FFFF:102:304', '1.2.3.4'],
    ['::ffff:1.2.3.4', '1.2.3.4'],
    ['203.0.113.7', '203.0.113.7'],
    ['::1', '::1'],
  ])('%s is %s', (ip, expected) => {
    expect(canonicalIp(ip)).toBe(expected);
  });
});

describe('limitKey', () => {
  it.each([
    ['2001:db8:1:2:3:4:5:6', 64, '2001:db8:1:2::/64'],
    ['2001:db8:1:2:3:4:5:6', 56, '2001:db8:1::/56'],
    ['2001:db8:1:2:3:4:5:6', 60, '2001:db8:1::/60'],
    ['2001:db8:1:2f:3:4:5:6', 60, '2001:db8:1:20::/60'],
    ['2001:db8:1:2:3:4:5:6', 128, '2001:db8:1:2:3:4:5:6'],
    ['203.0.113.7', 64, '203.0.113.7'],
  ])('%s by /%i is %s', (ip, bits, expected) => {
    expect(limitKey(ip, bits)).toBe(expected);
  });
});

describe('clientAddressOf', () => {
  it('walks X-Forwarded-For right to left through trusted proxies, valid addresses only', () => {
    const all = clientAddressOf(true);
    expect(all('127.0.0.1', '192.0.2.1, 203.0.113.9')).toEqual({ ip: '192.0.2.1', via: 'x-forwarded-for' });
    expect(all('127.0.0.1', 'x<script>y')).toEqual({ ip: '127.0.0.1', via: 'socket' });
    expect(all('127.0.0.1', ['192.0.2.1', 'bad, 203.0.113.9'])).toEqual({ ip: '203.0.113.9', via: 'x-forwarded-for' });
    const list = clientAddressOf(['127.0.0.1']);
    expect(list('::ffff:127.0.0.1', '192.0.2.1, 203.0.113.9')).toEqual({ ip: '203.0.113.9', via: 'x-forwarded-for' });
    expect(clientAddressOf(1)('127.0.0.1', '192.0.2.1, 203.0.113.9')).toEqual({ ip: '203.0.113.9', via: 'x-forwarded-for' });
    expect(clientAddressOf(false)('::ffff:127.0.0.1', '203.0.113.9')).toEqual({ ip: '127.0.0.1', via: 'socket' });
  });
});
