/**
 * The development certificate: localhost, 127.0.0.1 and ::1, plus DEV_CERT_HOSTS' names and
 * addresses; made again when an earlier one lacks a host asked for.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDevCertificate, generateDevCertificate, machineHosts } from '../../src/net/dev-certificate.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairup-devcert-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('the development certificate', () => {
  it('covers the local names, and the names and addresses asked for', async () => {
    const { cert } = await generateDevCertificate(1, ['laptop.lan', '192.168.1.20', 'fd00::7']);
    expect(new X509Certificate(cert).subjectAltName).toBe(
      'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:laptop.lan, IP Address:192.168.1.20, IP Address:FD00:0:0:0:0:0:0:7',
    );
  });

  it('is reused while it covers every host asked for, and made again when it lacks one', async () => {
    const first = await ensureDevCertificate(dir);
    const again = await ensureDevCertificate(dir, ['127.0.0.1']);
    expect([first.created, again.created, again.cert]).toEqual([true, false, first.cert]);
    const wider = await ensureDevCertificate(dir, ['laptop.lan', '192.168.1.20']);
    expect(wider.created).toBe(true);
    expect(new X509Certificate(wider.cert).subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:laptop.lan, IP Address:192.168.1.20');
    expect((await ensureDevCertificate(dir, ['laptop.lan'])).created).toBe(false);
  });

  it('auto: this machine’s host name and its addresses but loopback and IPv6 link-local', () => {
    const hosts = machineHosts();
    const name = hostname();
    expect(hosts.slice(0, name.includes('.') ? 1 : 2)).toEqual(name.includes('.') ? [name] : [name, `${name}.local`]);
    expect(hosts.filter((host) => host === '127.0.0.1' || host === '::1' || host.toLowerCase().startsWith('fe80:'))).toEqual([]);
  });
});
