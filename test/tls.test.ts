import { createConnection } from 'node:net';
import { connect, type ConnectionOptions, type SecureVersion } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from './helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(() => server.close());

interface Handshake {
  readonly protocol: string | null;
  readonly alpn: string | false | null;
}

function handshake(options: ConnectionOptions): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: server.port, ca: server.cert, ...options }, () => {
      resolve({ protocol: socket.getProtocol(), alpn: socket.alpnProtocol });
      socket.end();
    });
    socket.once('error', reject);
  });
}

// Old protocol versions need the client's security level lowered before it will even offer them.
const legacy = (maxVersion: SecureVersion): ConnectionOptions => ({
  minVersion: 'TLSv1',
  maxVersion,
  ciphers: 'DEFAULT:@SECLEVEL=0',
});

describe('TLS', () => {
  it('negotiates HTTP/2 and HTTP/1.1 on the same port', async () => {
    expect(await handshake({ ALPNProtocols: ['h2'] })).toEqual({ protocol: 'TLSv1.3', alpn: 'h2' });
    expect(await handshake({ ALPNProtocols: ['http/1.1'] })).toEqual({ protocol: 'TLSv1.3', alpn: 'http/1.1' });
  });

  it('accepts TLS 1.2', async () => {
    expect(await handshake({ ...legacy('TLSv1.2'), ALPNProtocols: ['h2'] })).toEqual({ protocol: 'TLSv1.2', alpn: 'h2' });
  });

  it.each(['TLSv1.1', 'TLSv1'] as const)('refuses %s with a protocol-version alert', async (version) => {
    await expect(handshake(legacy(version))).rejects.toMatchObject({ code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
  });
});

describe('connections that never speak TLS properly', () => {
  /** Sends raw bytes over plain TCP and resolves with what came back once the server closed. */
  function tcp(bytes: Buffer | string, closeAfterWrite = false): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ host: '127.0.0.1', port: debugServer.port }, () => {
        socket.write(bytes);
        if (closeAfterWrite) socket.end();
      });
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('close', () => resolve(Buffer.concat(chunks)));
      socket.on('error', reject);
    });
  }

  let debugServer: TestServer;
  beforeAll(async () => {
    debugServer = await startServer({ LOG_LEVEL: 'debug' });
  });
  afterAll(() => debugServer.close());

  it('closes plain HTTP, garbage, a truncated handshake and TLS 1.1 on the TLS port; logs each at debug', async () => {
    const before = debugServer.logs.length;
    // The server answers each with at most a TLS alert, then closes.
    for (const bytes of ['GET / HTTP/1.1\r\nHost: localhost\r\n\r\n', Buffer.from([0, 1, 2, 3, 255, 254, 13, 10])]) {
      const reply = await tcp(bytes);
      expect(reply.length).toBeLessThanOrEqual(7);
    }
    // The first bytes of a TLS ClientHello, then the client hangs up.
    await tcp(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]), true);
    // A client that offers nothing newer than TLS 1.1.
    await new Promise<void>((resolve) => {
      const old = connect({ host: '127.0.0.1', port: debugServer.port, ca: debugServer.cert, ...legacy('TLSv1.1') });
      old.on('error', () => resolve());
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const failures = debugServer.logs.slice(before).filter((line) => line.msg === 'TLS handshake failed');
    expect(failures.map((line) => line.code)).toEqual([
      'ERR_SSL_HTTP_REQUEST',
      'ERR_SSL_WRONG_VERSION_NUMBER',
      'ECONNRESET',
      'ERR_SSL_UNSUPPORTED_PROTOCOL',
    ]);
    for (const line of failures) expect(line.level).toBe(20);
    expect(debugServer.warnings()).toEqual([]);
    const health = await handshakeThenHealth();
    expect(health).toBe(200);
  });

  function handshakeThenHealth(): Promise<number> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: debugServer.port, ca: debugServer.cert, ALPNProtocols: ['http/1.1'] }, () => {
        socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      });
      let text = '';
      socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      socket.on('close', () => resolve(Number(text.split(' ')[1])));
      socket.on('error', reject);
    });
  }
});
