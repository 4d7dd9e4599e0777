import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import selfsigned from 'selfsigned';

export interface CertificatePem {
  readonly key: string;
  readonly cert: string;
}

/** A self-signed P-256 certificate for localhost, 127.0.0.1 and ::1, valid for `days`. */
export async function generateDevCertificate(days = 365): Promise<CertificatePem> {
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
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
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

/** Reuses the development certificate in `dir` while it is valid for a week more, else makes one. */
export async function ensureDevCertificate(dir: string): Promise<DevCertificateFiles> {
  const certFile = join(dir, 'dev-cert.pem');
  const keyFile = join(dir, 'dev-key.pem');
  try {
    const [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
    if (Date.parse(new X509Certificate(cert).validTo) - Date.now() > RENEW_BEFORE_MS) {
      return { cert, key, certFile, keyFile, created: false };
    }
  } catch {
    // Missing or unreadable: make a new one below.
  }
  const pem = await generateDevCertificate();
  await mkdir(dir, { recursive: true });
  await writeFile(keyFile, pem.key, { mode: 0o600 });
  await writeFile(certFile, pem.cert);
  return { ...pem, certFile, keyFile, created: true };
}
