import type { RelayHub } from '../../src/core/relay.js';
import type { AppKeys } from '../../src/net/app-keys.js';
import type { WindowCounter } from '../../src/queue/counter-seam.js';
import { Writable } from 'node:stream';
import { buildConnector, Client, request, type Dispatcher } from 'undici';
import { Lobby } from '../../src/core/lobby.js';
import { buildApp, type App } from '../../src/http/app.js';
import { MemoryQueue } from '../../src/queue/memory.js';
import { loadConfig, type Config, type Env } from '../../src/config.js';
import { generateDevCertificate, type CertificatePem } from '../../src/net/dev-certificate.js';
import type { Metrics } from '../../src/ops/metrics.js';

let certificate: Promise<CertificatePem> | undefined;

/** One throwaway certificate per test file, for localhost, 127.0.0.1 and ::1. */
export function testCertificate(): Promise<CertificatePem> {
  return (certificate ??= generateDevCertificate(1));
}

export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [key: string]: unknown;
}

export interface TestServer {
  readonly app: App;
  /** The server's queue backend, for tests that look inside. */
  readonly queue: MemoryQueue;
  readonly origin: string;
  readonly port: number;
  readonly cert: string;
  readonly logs: LogLine[];
  /** Log lines at warn (40) or above. */
  warnings(): LogLine[];
  close(): Promise<void>;
}

/** The real server over TLS on an ephemeral loopback port, its log lines collected. */
export async function startServer(
  env: Env = {},
  host = '127.0.0.1',
  options: {
    pressureSampleMs?: number;
    metrics?: Metrics;
    clientDir?: URL;
    stunPort?: () => number | undefined;
    appKeys?: AppKeys;
    counter?: WindowCounter;
    relay?: RelayHub;
    /** The lobby's name as a process (a relay hub given must have it too). */
    owner?: string;
  } = {},
): Promise<TestServer> {
  const config: Config = loadConfig({ LOG_LEVEL: 'info', MAX_WAITING_PER_IP: '0', ...env, HOST: host, PORT: '0' });
  const { cert, key } = await testCertificate();
  const logs: LogLine[] = [];
  const logStream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logs.push(JSON.parse(line) as LogLine);
      callback();
    },
  });
  const queue = new MemoryQueue();
  const lobby = new Lobby({ queue, limits: config, ...(options.metrics === undefined ? {} : { observer: options.metrics }), ...(options.owner === undefined ? {} : { owner: options.owner }) });
  const app = buildApp(config, { lobby, tls: { cert, key }, logStream, ...options });
  await app.listen({ host, port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('server has no port');
  const hostInUrl = host.includes(':') ? `[${host}]` : host;
  return {
    app,
    queue,
    origin: `https://${hostInUrl}:${address.port}`,
    port: address.port,
    cert,
    logs,
    warnings: () => logs.filter((line) => line.level >= 40),
    // As main.ts closes: the lobby it made first (every waiter answered), then the app.
    close: () => {
      app.log.info({ waiters: lobby.close() }, 'shutting down: answered every waiter');
      return app.close();
    },
  };
}

/** An undici client on one connection (HTTP/2 when `h2`), that knows its local port. */
export class TestClient {
  readonly client: Client;
  /** Local port of the connection, once connected. */
  localPort: number | undefined;

  constructor(origin: string, cert: string, options: { h2?: boolean; pipelining?: number } = {}) {
    const connector = buildConnector({ ca: cert, allowH2: options.h2 === true });
    this.client = new Client(origin, {
      allowH2: options.h2 === true,
      // On HTTP/2, undici also caps concurrent streams by this.
      pipelining: options.pipelining ?? (options.h2 === true ? 128 : 1),
      connect: (opts, callback) => {
        connector(opts, (...args) => {
          if (args[0] === null) this.localPort = args[1].localPort;
          callback(...args);
        });
      },
    });
  }

  close(): Promise<void> {
    return this.client.destroy();
  }
}

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
}

export interface AskOptions {
  readonly method?: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'HEAD' | 'OPTIONS';
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly signal?: AbortSignal;
}

/** One request; the whole answer read as text. */
export async function ask(dispatcher: Dispatcher, origin: string, path: string, options: AskOptions = {}): Promise<Answer> {
  const response = await request(new URL(path, origin), {
    dispatcher,
    method: options.method ?? 'GET',
    headers: options.headers,
    body: options.body,
    signal: options.signal,
  });
  return { status: response.statusCode, headers: response.headers, text: await response.body.text() };
}

export function json(answer: Answer): Record<string, unknown> {
  return JSON.parse(answer.text) as Record<string, unknown>;
}

/** Resolves once `predicate` holds, polling; rejects after `ms`. */
export async function eventually(predicate: () => boolean, ms = 2000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
