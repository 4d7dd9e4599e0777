import { generateKeyPairSync } from 'node:crypto';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateDevCertificate, type CertificatePem } from '../../src/net/dev-certificate.js';
import { request } from 'undici';
import { expiryOf } from '../../src/net/certificates.js';
import { freePort, spawnServer, type ServerProcess } from '../helpers/process.js';
import { ask, TestClient } from '../helpers/server.js';

let first: CertificatePem;
let second: CertificatePem;
let dir: string;
let proc: ServerProcess;
let port: number;
let adminPort: number;

/** The certificate expiry the admin listener's /metrics reports. */
async function expiryMetric(): Promise<number> {
  const text = await (await request(`http://127.0.0.1:${adminPort}/metrics`)).body.text();
  return Number(/^pairup_certificate_expiry_timestamp_seconds (\d+)$/m.exec(text)?.[1]);
}

/** The SHA-256 fingerprint of the certificate a brand-new connection is served. */
function servedFingerprint(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

const fingerprint = (pem: CertificatePem) => new X509Certificate(pem.cert).fingerprint256;

async function install(pem: { cert: string; key: string }): Promise<void> {
  await writeFile(join(dir, 'cert.pem'), pem.cert);
  await writeFile(join(dir, 'key.pem'), pem.key);
}

beforeAll(async () => {
  // Valid for different numbers of days, so that their expiry tells them apart.
  [first, second] = await Promise.all([generateDevCertificate(1), generateDevCertificate(2)]);
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairup-certs-'));
  await install(first);
  adminPort = await freePort();
  const env = { HOST: '127.0.0.1', PORT: '0', STUN_PORT: '0', ADMIN_PORT: String(adminPort), TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem' };
  proc = spawnServer(env, dir);
  port = await proc.port;
  await proc.line(new RegExp(`^Server listening at http://127\\.0\\.0\\.1:${adminPort}$`));
});
afterEach(async () => {
  if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
  await proc.exit;
  await rm(dir, { recursive: true, force: true });
});

describe('certificate reload', () => {
  it('on SIGHUP serves the new certificate to new connections, and a waiting client is not disturbed', async () => {
    expect(await servedFingerprint()).toBe(fingerprint(first));
    expect(await expiryMetric()).toBe(expiryOf(first.cert));
    const waiter = new TestClient(`https://localhost:${port}`, first.cert);
    const partner = new TestClient(`https://localhost:${port}`, second.cert);
    try {
      const waiting = ask(waiter.client, `https://localhost:${port}`, '/?pool=reload');
      await new Promise((resolve) => setTimeout(resolve, 300)); // the waiter's request lands
      await install(second);
      proc.child.kill('SIGHUP');
      // Changing the files reloads by itself too; this waits for the reload SIGHUP asked for.
      const reloaded = await proc.line(/^certificate reloaded$/, { reason: 'SIGHUP' });
      expect(reloaded.fingerprint256).toBe(fingerprint(second));
      expect(await servedFingerprint()).toBe(fingerprint(second));
      expect(await expiryMetric()).toBe(expiryOf(second.cert));
      expect(expiryOf(second.cert) - expiryOf(first.cert)).toBeGreaterThan(86_000);
      // The partner trusts only the new certificate; the waiter's connection still runs on the old one.
      const answer = await ask(partner.client, `https://localhost:${port}`, '/?pool=reload');
      expect(answer.status).toBe(200);
      expect((await waiting).text).toBe(`127.0.0.1:${String(partner.localPort)}\n`);
    } finally {
      await Promise.all([waiter.close(), partner.close()]);
    }
  });

  it('notices new files by itself', async () => {
    await install(second);
    const reloaded = await proc.line(/^certificate reloaded$/);
    expect([reloaded.reason, reloaded.fingerprint256]).toEqual(['file changed', fingerprint(second)]);
    expect(await servedFingerprint()).toBe(fingerprint(second));
  });

  it('refuses a broken certificate with one clear line, and keeps serving the old one', async () => {
    await install({ cert: 'not a certificate\n', key: first.key });
    const refused = await proc.line(/^certificate reload refused/);
    expect(refused.level).toBe(50);
    expect(refused.msg).toMatch(/^certificate reload refused \(.+\); still serving the previous certificate$/);
    expect(await servedFingerprint()).toBe(fingerprint(first));
    // A key that does not match the certificate is refused too.
    await install({ cert: second.cert, key: first.key });
    proc.child.kill('SIGHUP');
    const mismatch = await proc.line(/^certificate reload refused \(TLS_KEY does not belong/, { reason: 'SIGHUP' });
    expect(mismatch.msg).toBe(
      "certificate reload refused (TLS_KEY does not belong to the certificate in TLS_CERT (another EC key)); still serving the previous certificate",
    );
    expect(mismatch.level).toBe(50);
    // So is a key of another type, which OpenSSL itself would take and then fail every handshake with.
    await install({ cert: second.cert, key: rsaKey() });
    proc.child.kill('SIGHUP');
    const otherType = await proc.line(/^certificate reload refused \(TLS_KEY does not belong.*an RSA key for an EC/, { reason: 'SIGHUP' });
    expect(otherType.level).toBe(50);
    expect(await servedFingerprint()).toBe(fingerprint(first));
    expect(await expiryMetric()).toBe(expiryOf(first.cert));
    const client = new TestClient(`https://localhost:${port}`, first.cert);
    try {
      expect((await ask(client.client, `https://localhost:${port}`, '/healthz')).status).toBe(200);
    } finally {
      await client.close();
    }
  });
});

/** A fresh RSA private key, PEM. */
function rsaKey(): string {
  return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}
