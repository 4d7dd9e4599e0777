import { connect as connectH2 } from 'node:http2';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { parseProxyHeader } from '../../src/net/proxy-protocol.js';
import { eventually, startServer, type TestServer } from '../helpers/server.js';

// Headers are built here by hand from the PROXY protocol specification (v1 text, v2 binary).

const SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
const V1_START = Buffer.from('PROXY ');

function v1(line: string): Buffer {
  return Buffer.from(`${line}\r\n`, 'latin1');
}

/** A v2 header: command 0 LOCAL / 1 PROXY, family byte (0x11 TCP over IPv4, 0x21 TCP over IPv6), address block. */
function v2(command: number, familyTransport: number, block: Buffer, version = 2): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt8((version << 4) | command, 0);
  head.writeUInt8(familyTransport, 1);
  head.writeUInt16BE(block.length, 2);
  return Buffer.concat([SIGNATURE, head, block]);
}

function ipv4Block(source: string, destination: string, sourcePort: number, destinationPort: number): Buffer {
  const block = Buffer.alloc(12);
  Buffer.from(source.split('.').map(Number)).copy(block, 0);
  Buffer.from(destination.split('.').map(Number)).copy(block, 4);
  block.writeUInt16BE(sourcePort, 8);
  block.writeUInt16BE(destinationPort, 10);
  return block;
}

function ipv6Block(source: number[], sourcePort: number): Buffer {
  const block = Buffer.alloc(36);
  source.forEach((group, i) => block.writeUInt16BE(group, i * 2));
  block.writeUInt16BE(1, 30); // destination ::1
  block.writeUInt16BE(sourcePort, 32);
  block.writeUInt16BE(443, 34);
  return block;
}

describe('parseProxyHeader', () => {
  const rest = Buffer.from([0x16, 0x03, 0x01]); // the TLS ClientHello that follows

  it.each([
    ['v1 TCP4', v1('PROXY TCP4 203.0.113.7 192.0.2.1 40001 443'), { address: '203.0.113.7', port: 40001, family: 'IPv4' }],
    ['v1 TCP6', v1('PROXY TCP6 2001:DB8:0::7 2001:db8::1 65535 443'), { address: '2001:db8::7', port: 65535, family: 'IPv6' }],
    ['v2 TCP over IPv4', v2(1, 0x11, ipv4Block('198.51.100.8', '192.0.2.1', 40002, 443)), { address: '198.51.100.8', port: 40002, family: 'IPv4' }],
    [
      'v2 TCP over IPv6',
      v2(1, 0x21, ipv6Block([0x2001, 0xdb8, 0, 0, 0, 0, 0, 9], 1)),
      { address: '2001:db8::9', port: 1, family: 'IPv6' },
    ],
    [
      'v2 with TLVs after the addresses',
      v2(1, 0x11, Buffer.concat([ipv4Block('198.51.100.9', '192.0.2.1', 5, 443), Buffer.from([0x04, 0x00, 0x01, 0xaa])])),
      { address: '198.51.100.9', port: 5, family: 'IPv4' },
    ],
  ])('reads %s', (_name, header, source) => {
    expect(parseProxyHeader(Buffer.concat([header, rest]))).toEqual({ kind: 'proxy', source, length: header.length });
  });

  it.each([
    ['v1 UNKNOWN', v1('PROXY UNKNOWN')],
    ['v1 UNKNOWN with addresses', v1('PROXY UNKNOWN ffff::1 ffff::2 1 2')],
    ['v2 LOCAL', v2(0, 0x00, Buffer.alloc(0))],
    ['v2 PROXY with an unspecified family', v2(1, 0x00, Buffer.alloc(0))],
  ])('reads %s as the balancer speaking for itself', (_name, header) => {
    expect(parseProxyHeader(Buffer.concat([header, rest]))).toEqual({ kind: 'local', length: header.length });
  });

  it.each([
    ['nothing', Buffer.alloc(0)],
    ['part of the v1 prefix', Buffer.from('PRO')],
    ['a v1 line without its end', Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 400')],
    ['part of the v2 signature', SIGNATURE.subarray(0, 7)],
    ['a v2 header without its addresses', v2(1, 0x11, ipv4Block('198.51.100.8', '192.0.2.1', 1, 2)).subarray(0, 20)],
  ])('asks for more after %s', (_name, data) => {
    expect(parseProxyHeader(data)).toEqual({ kind: 'incomplete' });
  });

  it('never throws, whatever the bytes after either signature', () => {
    const tail = fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes));
    const data = fc.oneof(
      tail,
      tail.map((bytes) => Buffer.concat([V1_START, bytes])),
      tail.map((bytes) => Buffer.concat([SIGNATURE, bytes])),
    );
    fc.assert(
      fc.property(data, (bytes) => {
        const result = parseProxyHeader(bytes);
        expect(['proxy', 'local', 'incomplete', 'invalid']).toContain(result.kind);
        if (result.kind === 'proxy' || result.kind === 'local') expect(result.length).toBeLessThanOrEqual(bytes.length);
      }),
      { numRuns: 2000 },
    );
  });

  it.each([
    ['no header (a TLS ClientHello)', rest, 'no PROXY protocol header'],
    ['plain HTTP', Buffer.from('GET / HTTP/1.1\r\n'), 'no PROXY protocol header'],
    ['a v1 line over 107 bytes', Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}`), 'PROXY v1 line too long'],
    ['a bad v1 address', v1('PROXY TCP4 203.0.113.700 192.0.2.1 1 2'), 'malformed PROXY v1 line "PROXY TCP4 203.0.113.700 192.0.2.1 1 2"'],
    ['a v1 port over 65535', v1('PROXY TCP4 203.0.113.7 192.0.2.1 65536 2'), 'malformed PROXY v1 line "PROXY TCP4 203.0.113.7 192.0.2.1 65536 2"'],
    ['a v1 port with a leading zero', v1('PROXY TCP4 203.0.113.7 192.0.2.1 080 2'), 'malformed PROXY v1 line "PROXY TCP4 203.0.113.7 192.0.2.1 080 2"'],
    ['an IPv6 address in TCP4', v1('PROXY TCP4 ::1 ::1 1 2'), 'malformed PROXY v1 line "PROXY TCP4 ::1 ::1 1 2"'],
    ['an unknown v1 protocol', v1('PROXY UDP4 203.0.113.7 192.0.2.1 1 2'), 'malformed PROXY v1 line "PROXY UDP4 203.0.113.7 192.0.2.1 1 2"'],
    ['a v1 line with extra fields', v1('PROXY TCP4 203.0.113.7 192.0.2.1 1 2 3'), 'malformed PROXY v1 line "PROXY TCP4 203.0.113.7 192.0.2.1 1 2 3"'],
    ['v2 version 1', v2(1, 0x11, ipv4Block('198.51.100.8', '192.0.2.1', 1, 2), 1), 'PROXY v2 version 1'],
    ['a v2 command 2', v2(2, 0x11, ipv4Block('198.51.100.8', '192.0.2.1', 1, 2)), 'PROXY v2 command 2'],
    ['v2 over a UNIX socket', v2(1, 0x31, Buffer.alloc(216)), 'PROXY v2 address family/transport 0x31 not supported'],
    ['v2 over UDP', v2(1, 0x12, ipv4Block('198.51.100.8', '192.0.2.1', 1, 2)), 'PROXY v2 address family/transport 0x12 not supported'],
    ['a v2 IPv4 block too short', v2(1, 0x11, Buffer.alloc(8)), 'PROXY v2 address family/transport 0x11 not supported'],
  ])('refuses %s', (_name, data, reason) => {
    expect(parseProxyHeader(data)).toEqual({ kind: 'invalid', reason });
  });
});

/** A connection through a pretend balancer: `header` first, then TLS, then whatever `speak` does. */
function throughBalancer(port: number, header: Buffer, alpn: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const raw: Socket = connectTcp(port, '127.0.0.1', () => {
      raw.write(header);
      const tls = connectTls({ socket: raw, servername: 'localhost', rejectUnauthorized: false, ALPNProtocols: [alpn] }, () => resolve(tls));
      tls.once('error', reject);
      tls.once('close', () => reject(new Error('closed before the handshake')));
    });
    raw.once('error', reject);
  });
}

/** One HTTP/1.1 request on a fresh proxied connection; the whole answer. */
async function h1Request(port: number, header: Buffer, path: string, extra = ''): Promise<{ status: number; body: string }> {
  const tls = await throughBalancer(port, header, 'http/1.1');
  tls.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nConnection: close\r\n${extra}\r\n`);
  let text = '';
  for await (const chunk of tls) text += String(chunk);
  const [head = '', body = ''] = text.split('\r\n\r\n');
  return { status: Number(head.split(' ')[1]), body };
}

/** One HTTP/2 request on a fresh proxied connection. */
async function h2Request(port: number, header: Buffer, path: string): Promise<{ status: number; body: string }> {
  const tls = await throughBalancer(port, header, 'h2');
  const session = connectH2('https://localhost', { createConnection: () => tls });
  try {
    const stream = session.request({ ':path': path, accept: 'application/json' });
    const status = await new Promise<number>((resolve) => stream.once('response', (headers) => resolve(Number(headers[':status']))));
    let body = '';
    for await (const chunk of stream) body += String(chunk);
    return { status, body };
  } finally {
    session.close();
  }
}

/** Whether the server closes a connection that sent `header` (true), or starts TLS on it (false). */
async function refused(port: number, header: Buffer): Promise<boolean> {
  return throughBalancer(port, header, 'http/1.1').then(
    (tls) => {
      tls.destroy();
      return false;
    },
    () => true,
  );
}

describe('PROXY_PROTOCOL=on', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ PROXY_PROTOCOL: 'on', TRUST_PROXY: '127.0.0.1' });
  });
  afterAll(() => server.close());

  it('reports the clients’ real addresses and ports, over HTTP/1.1 (v1) and HTTP/2 (v2, IPv6)', async () => {
    const first = h1Request(server.port, v1('PROXY TCP4 203.0.113.7 192.0.2.1 40001 443'), '/?pool=proxied');
    await eventually(() => server.app.lobby.waiting === 1, 2000, 'the first to wait');
    const second = await h2Request(server.port, v2(1, 0x21, ipv6Block([0x2001, 0xdb8, 0, 0, 0, 0, 0, 9], 40002)), '/?pool=proxied');
    const answers = [await first, second].map((a): unknown[] => {
      const body = JSON.parse(a.body) as Record<string, unknown>;
      return [a.status, body.self, body.peer, body.via, body.portIsSource];
    });
    expect(answers).toEqual([
      [200, '203.0.113.7:40001', '[2001:db8::9]:40002', 'socket', true],
      [200, '[2001:db8::9]:40002', '203.0.113.7:40001', 'socket', true],
    ]);
  });

  it('takes a LOCAL header (a health check) as the balancer’s own connection', async () => {
    const answer = await h1Request(server.port, v2(0, 0x00, Buffer.alloc(0)), '/healthz');
    expect([answer.status, answer.body]).toEqual([200, '{"status":"ok","waiting":0}']);
  });

  it('survives clients that reset the connection in the middle of the header, or after it', async () => {
    for (const bytes of [Buffer.from('PROXY TCP4 203.0'), v1('PROXY TCP4 203.0.113.7 192.0.2.1 1 2')]) {
      for (let i = 0; i < 5; i++) {
        const socket = connectTcp(server.port, '127.0.0.1');
        await new Promise<void>((resolve) => socket.once('connect', resolve));
        socket.write(bytes);
        await new Promise((resolve) => setTimeout(resolve, 20));
        socket.resetAndDestroy();
      }
    }
    // And after the TLS handshake, while a request waits.
    for (let i = 0; i < 5; i++) {
      const raw = connectTcp(server.port, '127.0.0.1');
      await new Promise<void>((resolve) => raw.once('connect', resolve));
      raw.write(v1('PROXY TCP4 203.0.113.7 192.0.2.1 1 2'));
      const tls = connectTls({ socket: raw, servername: 'localhost', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
      await new Promise<void>((resolve) => tls.once('secureConnect', resolve));
      tls.write('GET /?pool=reset HTTP/1.1\r\nHost: localhost\r\n\r\n');
      await eventually(() => server.app.lobby.waiting === 1, 2000, 'the request to wait');
      raw.resetAndDestroy();
      await eventually(() => server.app.lobby.waiting === 0, 2000, 'the waiter to be dropped');
    }
    const answer = await h1Request(server.port, v1('PROXY TCP4 203.0.113.7 192.0.2.1 1 2'), '/healthz');
    expect(answer.status).toBe(200);
    expect(server.warnings()).toEqual([]);
  });

  it('closes connections without a valid header, and keeps serving', async () => {
    expect(await refused(server.port, Buffer.alloc(0))).toBe(true); // TLS at once, no header
    expect(await refused(server.port, v1('PROXY TCP4 203.0.113.700 192.0.2.1 1 2'))).toBe(true);
    expect(await refused(server.port, v2(2, 0x11, ipv4Block('198.51.100.8', '192.0.2.1', 1, 2)))).toBe(true);
    const answer = await h1Request(server.port, v1('PROXY TCP4 203.0.113.7 192.0.2.1 1 2'), '/healthz');
    expect(answer.status).toBe(200);
    expect(server.warnings()).toEqual([]);
  });
});

describe('PROXY_PROTOCOL=on with X-Forwarded-For', () => {
  it.each([
    ['true', 'every address is trusted'],
    ['127.0.0.1,203.0.113.0/24', 'the client’s own address is in the list'],
  ])('never believes a client’s own X-Forwarded-For (TRUST_PROXY=%s: %s)', async (trust) => {
    const server = await startServer({ PROXY_PROTOCOL: 'on', TRUST_PROXY: trust });
    try {
      const forged = 'X-Forwarded-For: 6.6.6.6\r\n';
      const first = h1Request(server.port, v1('PROXY TCP4 203.0.113.7 192.0.2.1 40001 443'), '/?pool=forged', forged);
      await eventually(() => server.app.lobby.waiting === 1, 2000, 'the first to wait');
      const second = await h1Request(server.port, v1('PROXY TCP4 198.51.100.8 192.0.2.1 40002 443'), '/?pool=forged', forged);
      const answers = [await first, second].map((a) => {
        const body = JSON.parse(a.body) as Record<string, unknown>;
        return [a.status, body.self, body.peer, body.via, body.portIsSource];
      });
      expect(answers).toEqual([
        [200, '203.0.113.7:40001', '198.51.100.8:40002', 'socket', true],
        [200, '198.51.100.8:40002', '203.0.113.7:40001', 'socket', true],
      ]);
    } finally {
      await server.close();
    }
  });
});

describe('PROXY_PROTOCOL=on from an address outside TRUST_PROXY', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ PROXY_PROTOCOL: 'on', TRUST_PROXY: '10.0.0.0/8' });
  });
  afterAll(() => server.close());

  it('refuses even a valid header', async () => {
    expect(await refused(server.port, v1('PROXY TCP4 203.0.113.7 192.0.2.1 40001 443'))).toBe(true);
    expect(server.app.lobby.waiting).toBe(0);
  });
});

describe('PROXY_PROTOCOL configuration', () => {
  it.each([
    [{ PROXY_PROTOCOL: 'on' }],
    [{ PROXY_PROTOCOL: 'on', TRUST_PROXY: '2' }],
  ])('refuses %j: the balancers must be named', (env) => {
    expect(() => loadConfig(env)).toThrow(
      new ConfigError(
        'PROXY_PROTOCOL',
        "needs TRUST_PROXY set to the load balancers' addresses (a list of addresses and CIDRs, or true): PROXY headers are taken only from them",
      ),
    );
  });

  it('reads on and off', () => {
    expect(loadConfig({ PROXY_PROTOCOL: 'on', TRUST_PROXY: '10.0.0.1' }).proxyProtocol).toBe(true);
    expect(loadConfig({ PROXY_PROTOCOL: 'OFF' }).proxyProtocol).toBe(false);
    expect(() => loadConfig({ PROXY_PROTOCOL: 'v2' })).toThrow('PROXY_PROTOCOL must be on or off, got "v2"');
  });
});
