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
