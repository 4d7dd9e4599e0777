import { describe, expect, it } from 'vitest';
import { formatAddress, normalizeIp } from '../src/address.js';

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
