/**
 * The process: the only module that reads the environment, certificates and signals, and listens.
 */
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import closeWithGrace from 'close-with-grace';
import dotenv from 'dotenv';
import { AggregatorRegistry } from 'prom-client';
import { ConfigError, loadConfig, parseTurnSecrets, type Config } from './config.js';
import { configWarnings } from './config-warnings.js';
import { Lobby } from './core/lobby.js';
import { RelayHub } from './core/relay.js';
import { buildApp, type TlsMaterial } from './http/app.js';
import { AppKeys, AppKeysError, formatOf, parseAppKeys, type AppKey } from './net/app-keys.js';
import { CertificateError, checkCertificatePair, expiryOf, reloadCertificates } from './net/certificates.js';
import { ensureDevCertificate, LOCAL_HOSTS, machineHosts } from './net/dev-certificate.js';
import { startStunResponder, StunBindError, type StunResponder } from './net/stun.js';
import { buildAdmin, processSource } from './ops/admin.js';
import { LOG_DRAIN_MS, openLog } from './ops/log-destination.js';
import { Metrics } from './ops/metrics.js';
import { openBackend, type Backend } from './queue/backends.js';
import { BackendUnavailableError } from './queue/seam.js';
import { runPrimary, serveWorker } from './primary.js';

const DEV_CERTS_DIR = 'certs';
/** The default HOST: every IPv6 address and, through IPv4-mapped addresses, every IPv4 one. */
const DUAL_STACK = '::';

/** A start-up failure that is the operator's to fix: printed as one line, no stack trace. */
class StartupError extends Error {}

async function loadTls(config: Config): Promise<{ tls: TlsMaterial; devCertFile?: string; devCertHosts?: readonly string[] }> {
  if (config.tlsCertFile !== undefined && config.tlsKeyFile !== undefined) {
    const read = async (key: string, file: string): Promise<string> => {
      try {
        return await readFile(file, 'utf8');
      } catch (error) {
        throw new StartupError(`${key} cannot be read: ${(error as Error).message}`);
      }
    };
    const [cert, key] = await Promise.all([read('TLS_CERT', config.tlsCertFile), read('TLS_KEY', config.tlsKeyFile)]);
    try {
      checkCertificatePair(cert, key);
    } catch (error) {
      if (!(error instanceof CertificateError)) throw error;
      const file = error.variable === 'TLS_CERT' ? config.tlsCertFile : config.tlsKeyFile;
      throw new StartupError(`${error.variable} (${file}) ${error.message}`);
    }
    return { tls: { cert, key } };
  }
  if (config.production) {
    throw new StartupError('TLS_CERT and TLS_KEY must be set when NODE_ENV=production (no development certificate)');
  }
  const hosts = config.devCertHosts === 'auto' ? machineHosts() : config.devCertHosts;
  const dev = await ensureDevCertificate(resolve(DEV_CERTS_DIR), hosts);
  return { tls: dev, devCertFile: `${DEV_CERTS_DIR}/dev-cert.pem`, devCertHosts: [...LOCAL_HOSTS, ...hosts] };
}

/** TURN_SECRET_FILE's secrets (one, or two while rolling), kept out of the environment. */
async function loadTurnSecrets(config: Config): Promise<readonly string[] | undefined> {
  if (config.turnSecretFile === undefined) return undefined;
  let text: string;
  try {
    text = await readFile(config.turnSecretFile, 'utf8');
  } catch (error) {
    throw new StartupError(`TURN_SECRET_FILE cannot be read: ${(error as Error).message}`);
  }
  // One per line or comma-separated; the file's final newline is not part of a secret.
  return parseTurnSecrets('TURN_SECRET_FILE', text.trim().split(/\s*[\n,]\s*/).join(','));
}

/** APP_KEYS_FILE's keys (JSON or YAML), checked whole: a file that does not read or parse is refused entire. */
async function readAppKeys(file: string): Promise<ReadonlyMap<string, AppKey>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new AppKeysError(`cannot be read: ${(error as Error).message}`, file);
  }
  return parseAppKeys(text, formatOf(file, text), file);
}

async function main(): Promise<void> {
  const { parsed } = dotenv.config({ quiet: true });
  // Before anything else is said, a refused value included: a misspelt setting explains whatever
  // happens next. Workers read the same files and environment, so only the first process says it.
  if (cluster.isPrimary) {
    for (const warning of configWarnings(Object.keys(parsed ?? {}), Object.keys(process.env))) process.stderr.write(`pairup: warning: ${warning}\n`);
  }
  const config = loadConfig(process.env);
  // WORKERS>1: this process only starts and watches the workers, each of which runs the rest.
  if (config.workers > 1 && cluster.isPrimary) return runPrimary(config);
  const worker = cluster.isWorker;
  const { tls, devCertFile, devCertHosts } = await loadTls(config);
  // Batched (4 KiB at a time, at most 200 ms late), and never in the way of serving or exiting,
  // whatever reads standard output (src/ops/log-destination.ts).
  const logStream = await openLog(config.logFormat, process.stdout, () => app.log);
  process.once('exit', logStream.flush);
  const metrics = config.adminPort === 0 ? undefined : new Metrics(config.metricsMaxPools);
  // A worker's metrics are read by the primary, which serves the admin listener for all of them.
  if (worker && metrics !== undefined) {
    AggregatorRegistry.setRegistries([metrics.registry]);
    new AggregatorRegistry(); // answers the primary's requests from now on
  }
  // Composition: the queue backend, the lobby over it, the app around the lobby.
  const owner = randomBytes(6).toString('base64url');
  let backend: Backend;
  try {
    // The backend logs only once requests flow, by which time the app (and its logger) exists.
    backend = await openBackend({ url: config.redisUrl, prefix: config.redisPrefix, cluster: config.redisCluster }, owner, () => app.log, (error) =>
      lobby.fail(new BackendUnavailableError({ cause: error })),
    );
  } catch (error) {
    throw new StartupError(`cannot connect to REDIS_URL: ${(error as Error).message}`);
  }
  const { queue } = backend;
  const lobby = new Lobby({
    queue,
    owner,
    limits: config,
    ...(metrics === undefined ? {} : { observer: metrics }),
    ...(backend.peers === undefined ? {} : { peers: backend.peers }),
    secretKey: backend.secretKey,
    onError: (error) => app.log.error({ err: error }, 'queue failure'),
  });
  const relay = new RelayHub(owner, backend.relay);
  const turnSecrets = await loadTurnSecrets(config);
  let appKeys: AppKeys | undefined;
  if (config.appKeysFile !== undefined) {
    try {
      appKeys = new AppKeys(await readAppKeys(config.appKeysFile));
    } catch (error) {
      throw new StartupError((error as Error).message);
    }
  }
  const app = buildApp(config, {
    lobby,
    tls,
    logStream,
    relay,
    ledger: backend.ledger,
    stunPort: () => stun?.port,
    ...(turnSecrets === undefined ? {} : { turnSecrets }),
    ...(appKeys === undefined ? {} : { appKeys, counter: backend.counter }),
    ...(metrics === undefined ? {} : { metrics }),
  });
  await backend.start({
    offered: (id, offer) => lobby.offered(id, offer),
    held: (id, offer) => lobby.held(id, offer),
    decided: (id, groupId, decision) => lobby.decided(id, groupId, decision),
    relayed: (to, message) => relay.receive(to, message),
  });
  let ready = false;
  const state = { ready: () => ready && backend.healthy, waiting: () => lobby.waiting };
  const admin =
    metrics === undefined || worker
      ? undefined
      : buildAdmin(processSource(metrics.registry, state), app.log);

  let stun: StunResponder | undefined;
  // One ordered shutdown for everything that must close. close-with-grace sets the grace timer
  // first (so that nothing in the closing can keep the process past it), exits 1 on a second signal
  // or when the grace expires, and closes the same way after an uncaught error (then exit 1).
  const { close } = closeWithGrace(
    {
      delay: config.shutdownGraceMs,
      logger: false,
      // SIGHUP reloads the certificate; a quiet event loop is not a reason to close.
      skip: ['SIGHUP', 'beforeExit'],
      onSecondSignal: (signal) => app.log.warn({ signal }, 'second signal: exiting now'),
      onSecondError: (error) => app.log.error({ err: error }, 'second error while closing: exiting now'),
      onTimeout: () => app.log.error({ graceMs: config.shutdownGraceMs }, 'shutdown grace expired: exiting'),
    },
    async ({ signal, err }) => {
      ready = false;
      if (err !== undefined) app.log.error({ err }, 'closing after an uncaught error');
      else app.log.info({ signal }, 'shutting down');
      certificates?.close();
      // The lobby this process made first: every waiter of every transport is answered (a long-poll
      // would otherwise hold the listener's close for its whole timeout). Then the public listener
      // (each plugin's preClose lets its answers out), with STUN; then the admin listener, which says
      // "not ready" until the end; then the queue backend.
      app.log.info({ waiters: lobby.close() }, 'shutting down: answered every waiter');
      await Promise.all([app.close(), stun?.close()]);
      await admin?.close();
      await backend.close();
      app.log.info('closed');
      // The last lines get a moment to go out; a reader that does not take them does not hold the exit.
      await logStream.drained(Math.min(LOG_DRAIN_MS, config.shutdownGraceMs / 2));
    },
  );
  if (worker) serveWorker(() => ({ ready: state.ready(), waiting: state.waiting() }), close);
  const { tlsCertFile: certFile, tlsKeyFile: keyFile } = config;
  let certificateExpiry = expiryOf(tls.cert);
  const certificates =
    certFile === undefined || keyFile === undefined
      ? undefined
      : reloadCertificates(app.server, { certFile, keyFile }, app.log, (cert) => (certificateExpiry = expiryOf(cert)));
  process.on('SIGHUP', () => {
    if (certificates === undefined) app.log.info('SIGHUP: no TLS_CERT and TLS_KEY to reload (development certificate)');
    else void certificates.reload('SIGHUP');
    const { appKeysFile } = config;
    if (appKeys === undefined || appKeysFile === undefined) return;
    // A file that does not parse leaves the keys as they were: a typo does not lock every app out.
    readAppKeys(appKeysFile).then(
      (keys) => {
        appKeys.replace(keys);
        app.log.info({ keys: keys.size }, 'SIGHUP: app keys reloaded');
      },
      (error: unknown) => app.log.error({ reason: (error as Error).message }, 'app keys reload refused; still using the previous keys'),
    );
  });

  let host = config.host;
  try {
    await app.listen({ host, port: config.port });
  } catch (error) {
    // `::` takes IPv4 and IPv6 clients alike; a machine without IPv6 gets IPv4 alone.
    if (host !== DUAL_STACK || (error as NodeJS.ErrnoException).code !== 'EAFNOSUPPORT') {
      throw new StartupError(`cannot listen on ${host}:${config.port}: ${(error as Error).message}`);
    }
    host = '0.0.0.0';
    app.log.warn(`IPv6 is not available here: listening on ${host} (IPv4 only)`);
    try {
      await app.listen({ host, port: config.port });
    } catch (fallbackError) {
      throw new StartupError(`cannot listen on ${host}:${config.port}: ${(fallbackError as Error).message}`);
    }
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  if (config.stunPort !== 0) {
    const stunPort = config.stunPort === 'same' ? port : config.stunPort;
    try {
      stun = await startStunResponder(host, stunPort, app.log, config.stunAltPort === undefined ? {} : { altPort: config.stunAltPort });
    } catch (error) {
      await app.close();
      const failed = error instanceof StunBindError ? error.port : stunPort;
      throw new StartupError(`cannot listen for STUN on UDP ${host}:${failed}: ${(error as Error).message}`);
    }
    const alt = stun.altPort === undefined ? '' : `, and on ${stun.altPort} for NAT discovery (STUN_ALT_PORT)`;
    app.log.info({ port: stun.port, altPort: stun.altPort }, `STUN responder listening on UDP port ${stun.port}${alt}`);
  }
  const answered = stun;
  metrics?.setSources({
    certificateExpiry: () => certificateExpiry,
    ...(answered === undefined ? {} : { stunAnswered: () => answered.answered, stunLimited: () => answered.limited }),
  });
  if (admin !== undefined) {
    try {
      await admin.listen({ host: config.adminHost, port: config.adminPort });
    } catch (error) {
      await Promise.all([app.close(), stun?.close()]);
      throw new StartupError(`cannot listen for admin on ${config.adminHost}:${config.adminPort}: ${(error as Error).message}`);
    }
  }
  ready = true;
  if (devCertFile !== undefined) {
    app.log.info(
      { cert: devCertFile },
      `development certificate in use; try: curl --cacert ${devCertFile} https://localhost:${port}/`,
    );
    // A browser shows a warning page instead of the demo until the certificate is trusted.
    app.log.info(
      { cert: devCertFile, hosts: devCertHosts },
      `browsers warn about the development certificate until ${devCertFile} is trusted (certs/README.md); it covers ${(devCertHosts ?? []).join(', ')}; DEV_CERT_HOSTS adds names and addresses`,
    );
  }
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError || error instanceof StartupError) {
    process.stderr.write(`pairup: ${error.message}\n`);
  } else {
    process.stderr.write(`pairup: failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  }
  process.exitCode = 1;
});
