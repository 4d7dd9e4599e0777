/**
 * Certificate renewal without a restart: the certificate and key files are read again on SIGHUP and
 * whenever either file changes, checked, and swapped into the listening server in place
 * (`setSecureContext`). New connections get the new certificate; open connections, and the clients
 * waiting on them, are not touched. A pair that does not load (unreadable, not PEM, key not matching
 * the certificate) is refused with one log line, and the previous certificate keeps serving.
 */
import { createSecureContext, type Server as TlsServer } from 'node:tls';
import { X509Certificate } from 'node:crypto';
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
      // Throws for anything that would not serve: not PEM, no key, key not matching the certificate.
      createSecureContext({ cert, key, ...SECURE_CONTEXT_OPTIONS });
      server.setSecureContext({ cert, key, ...SECURE_CONTEXT_OPTIONS });
      const x509 = new X509Certificate(cert);
      log.info(
        { reason, subject: x509.subject, validTo: x509.validTo, fingerprint256: x509.fingerprint256 },
        'certificate reloaded',
      );
      onReloaded(cert);
      return true;
    } catch (error) {
      log.error(
        { reason, cert: files.certFile, key: files.keyFile, error: (error as Error).message },
        `certificate reload refused (${(error as Error).message}); still serving the previous certificate`,
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
