import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import selfsigned from 'selfsigned';

export interface CertificatePem {
  readonly key: string;
  readonly cert: string;
}

/** What every development certificate covers. */
export const LOCAL_HOSTS = ['localhost', '127.0.0.1', '::1'] as const;

/**
 * This machine's names and addresses on its networks (DEV_CERT_HOSTS=auto): its host name (and
 * `NAME.local`, as mDNS announces it), and the address of each interface but loopback and IPv6
 * link-local ones (which need a zone, and no browser takes them in a URL).
 */
export function machineHosts(): string[] {
  const name = hostname();
  const names = name === '' ? [] : name.includes('.') ? [name] : [name, `${name}.local`];
  const addresses = Object.values(networkInterfaces())
    .flatMap((entries) => entries ?? [])
    .filter((entry) => !entry.internal && !(entry.family === 'IPv6' && entry.address.toLowerCase().startsWith('fe80:')))
    .map((entry) => entry.address);
  return [...new Set([...names, ...addresses])];
}

/**
 * A self-signed P-256 certificate for localhost, 127.0.0.1, ::1 and `hosts` (names and IP
 * addresses), valid for `days`.
 */
export async function generateDevCertificate(days = 365, hosts: readonly string[] = []): Promise<CertificatePem> {
  const notBeforeDate = new Date(Date.now() - 60_000);
  const notAfterDate = new Date(notBeforeDate.getTime() + days * 86_400_000);
  const pems = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [...new Set([...LOCAL_HOSTS, ...hosts])].map((host) => (isIP(host) === 0 ? { type: 2, value: host } : { type: 7, ip: host })),
      },
    ],
  });
  return { key: pems.private, cert: pems.cert };
}

export interface DevCertificateFiles extends CertificatePem {
  readonly certFile: string;
  readonly keyFile: string;
  /** False when a still-valid certificate from an earlier start was reused. */
  readonly created: boolean;
}

const RENEW_BEFORE_MS = 7 * 86_400_000;

/** Whether the certificate names `host` among its subject alternative names. */
function covers(certificate: X509Certificate, host: string): boolean {
  return isIP(host) === 0 ? certificate.checkHost(host, { wildcards: false }) !== undefined : certificate.checkIP(host) !== undefined;
}

/**
 * Reuses the development certificate in `dir` while it is valid for a week more and covers every
 * one of `hosts`, else makes one (for the local names and `hosts`).
 */
export async function ensureDevCertificate(dir: string, hosts: readonly string[] = []): Promise<DevCertificateFiles> {
  const certFile = join(dir, 'dev-cert.pem');
  const keyFile = join(dir, 'dev-key.pem');
  try {
    const [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
    const certificate = new X509Certificate(cert);
    if (Date.parse(certificate.validTo) - Date.now() > RENEW_BEFORE_MS && hosts.every((host) => covers(certificate, host))) {
      return { cert, key, certFile, keyFile, created: false };
    }
  } catch {
    // Missing or unreadable: make a new one below.
  }
  const pem = await generateDevCertificate(365, hosts);
  await mkdir(dir, { recursive: true });
  await writeFile(keyFile, pem.key, { mode: 0o600 });
  await writeFile(certFile, pem.cert);
  return { ...pem, certFile, keyFile, created: true };
}
