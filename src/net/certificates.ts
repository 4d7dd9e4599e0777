/**
 * Certificate renewal without a restart: the certificate and key files are read again on SIGHUP and
 * whenever either file changes, checked, and swapped into the listening server in place
 * (`setSecureContext`). New connections get the new certificate; open connections, and the clients
 * waiting on them, are not touched. A pair that does not load (unreadable, not PEM, key not matching
 * the certificate) is refused with one log line, and the previous certificate keeps serving.
 */
import { createSecureContext, type Server as TlsServer } from 'node:tls';
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import type { FastifyBaseLogger } from 'fastify';

/** TLS settings that belong to the secure context and must survive a reload. */
export const SECURE_CONTEXT_OPTIONS = { minVersion: 'TLSv1.2' } as const;

/** How often the files are checked for changes (stat), and how long a burst of changes is waited out. */
const WATCH_INTERVAL_MS = 1000;
const SETTLE_MS = 250;

export interface CertificateFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface CertificateReloader {
  /** Loads the files now; resolves true if the server now serves them. */
  reload(reason: string): Promise<boolean>;
  /** Stops watching the files. */
  close(): void;
}

/** A certificate and key that would not serve, and which of the two variables is at fault. */
export class CertificateError extends Error {
  constructor(
    readonly variable: 'TLS_CERT' | 'TLS_KEY',
    message: string,
  ) {
    super(message);
    this.name = 'CertificateError';
  }
}

/**
 * Throws a {@link CertificateError} unless `cert` and `key` would serve together. OpenSSL keeps one
 * certificate and key per key type, so a key of another type than the certificate's (an RSA key with
 * an EC certificate) loads without complaint and fails every handshake: the pair is checked here.
 */
export function checkCertificatePair(cert: string, key: string): void {
  let x509: X509Certificate;
  let privateKey: KeyObject;
  try {
    x509 = new X509Certificate(cert);
  } catch (error) {
    throw new CertificateError('TLS_CERT', `is not a PEM certificate (${(error as Error).message})`);
  }
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    throw new CertificateError('TLS_KEY', `is not a PEM private key (${(error as Error).message})`);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    const [keyType, certType] = [privateKey, x509.publicKey].map((k) => (k.asymmetricKeyType ?? 'unknown').toUpperCase());
    const why = keyType === certType ? `another ${keyType} key` : `an ${keyType} key for an ${certType} certificate`;
    throw new CertificateError('TLS_KEY', `does not belong to the certificate in TLS_CERT (${why})`);
  }
  try {
    createSecureContext({ cert, key, ...SECURE_CONTEXT_OPTIONS });
  } catch (error) {
    throw new CertificateError('TLS_CERT', `cannot be served with TLS_KEY (${(error as Error).message})`);
  }
}

/** When a PEM certificate expires, in seconds since the epoch. */
export function expiryOf(cert: string | Buffer): number {
  return Math.floor(Date.parse(new X509Certificate(cert).validTo) / 1000);
}

export function reloadCertificates(
  server: TlsServer,
  files: CertificateFiles,
  log: FastifyBaseLogger,
  /** Called with the new certificate once it serves. */
  onReloaded: (cert: string) => void = () => undefined,
): CertificateReloader {
  let queue: Promise<boolean> = Promise.resolve(true);
  let settle: NodeJS.Timeout | undefined;

  async function load(reason: string): Promise<boolean> {
    try {
      const [cert, key] = await Promise.all([readFile(files.certFile, 'utf8'), readFile(files.keyFile, 'utf8')]);
      checkCertificatePair(cert, key);
      server.setSecureContext({ cert, key, ...SECURE_CONTEXT_OPTIONS });
      const x509 = new X509Certificate(cert);
      log.info(
        { reason, subject: x509.subject, validTo: x509.validTo, fingerprint256: x509.fingerprint256 },
        'certificate reloaded',
      );
      onReloaded(cert);
      return true;
    } catch (error) {
      const message = error instanceof CertificateError ? `${error.variable} ${error.message}` : (error as Error).message;
      log.error(
        { reason, cert: files.certFile, key: files.keyFile, error: message },
        `certificate reload refused (${message}); still serving the previous certificate`,
      );
      return false;
    }
  }

  const reload = (reason: string): Promise<boolean> => (queue = queue.then(() => load(reason)));

  const onChange = (current: Stats, previous: Stats): void => {
    if (current.mtimeMs === previous.mtimeMs && current.ino === previous.ino && current.size === previous.size) return;
    // A renewal writes two files, often one after the other: load once both have landed.
    clearTimeout(settle);
    settle = setTimeout(() => void reload('file changed'), SETTLE_MS);
  };
  for (const file of [files.certFile, files.keyFile]) {
    watchFile(file, { interval: WATCH_INTERVAL_MS, persistent: false }, onChange);
  }
  return {
    reload,
    close() {
      clearTimeout(settle);
      for (const file of [files.certFile, files.keyFile]) unwatchFile(file, onChange);
    },
  };
}
