import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { discoverNat, StunError, stunMapping } from '../../src/client/index.js';
import { bindingError, bindingSuccess } from '../../src/net/stun.js';
import { addressValue, OTHER_ADDRESS, parseMessage } from '../../src/protocol/stun.js';
import { spawnServer, type ServerProcess } from '../helpers/process.js';
import { testCertificate } from '../helpers/server.js';

const sockets: Socket[] = [];
async function udp(type: 'udp4' | 'udp6' = 'udp4', host = type === 'udp4' ? '127.0.0.1' : '::1'): Promise<Socket> {
  const socket = createSocket(type);
  sockets.push(socket);
  await new Promise<void>((resolve) => socket.bind(0, host, resolve));
  return socket;
}
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.close();
});

/** A UDP port free on every address a moment ago: the server's alternate STUN port. */
async function freeUdpPort(): Promise<number> {
  const probe = createSocket('udp6');
  await new Promise<void>((resolve) => probe.bind(0, '::', resolve));
  const { port } = probe.address();
  await new Promise<void>((resolve) => probe.close(resolve));
  return port;
}

describe('discoverNat against a pairup server', () => {
  let dir: string;
  const servers: ServerProcess[] = [];
  let withAlt: { port: number; altPort: number };
  let withoutAlt: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pairup-nat-'));
    const { cert, key } = await testCertificate();
    await writeFile(join(dir, 'cert.pem'), cert);
    await writeFile(join(dir, 'key.pem'), key);
    const altPort = await freeUdpPort();
    // HOST unset: `::`, every address. Its answers name 0.0.0.0 as the other address: the client uses the host it asked.
    const alt = spawnServer({ PORT: '0', STUN_ALT_PORT: String(altPort), TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem' }, dir);
    const plain = spawnServer({ HOST: '127.0.0.1', PORT: '0', TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem' }, dir);
    servers.push(alt, plain);
    const listening = await alt.line(/^STUN responder listening/);
    expect([listening.altPort, listening.msg]).toEqual([altPort, `STUN responder listening on UDP port ${listening.port as number}, and on ${altPort} for NAT discovery (STUN_ALT_PORT)`]);
    withAlt = { port: listening.port as number, altPort };
    withoutAlt = (await plain.line(/^STUN responder listening/)).port as number;
  }, 30_000);
  afterAll(async () => {
    for (const server of servers) {
      server.child.kill('SIGTERM');
      expect(await server.exit).toEqual({ code: 0, signal: null });
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('says independent on loopback, where both ports see the same mapping', async () => {
    const socket = await udp();
    const report = await discoverNat(socket, { host: '127.0.0.1', port: withAlt.port });
    const mapping = `127.0.0.1:${socket.address().port}`;
    expect(report).toEqual({ mapping, nat: 'independent', alternate: mapping });
  });

  it('works over IPv6 too (the mapping in brackets)', async () => {
    const socket = await udp('udp6');
    const mapping = `[::1]:${socket.address().port}`;
    expect(await discoverNat(socket, { host: '::1', port: withAlt.port })).toEqual({ mapping, nat: 'independent', alternate: mapping });
  });

  it('says unknown when the server has no alternate port (no OTHER-ADDRESS)', async () => {
    const socket = await udp();
    expect(await discoverNat(socket, { host: '127.0.0.1', port: withoutAlt })).toEqual({ mapping: `127.0.0.1:${socket.address().port}`, nat: 'unknown' });
  });

  it('leaves the socket as it found it: its listeners, and the datagrams meant for them', async () => {
    const socket = await udp();
    const seen: string[] = [];
    socket.on('message', (message: Buffer) => {
      if (parseMessage(message) === undefined) seen.push(message.toString());
    });
    const before = [socket.listenerCount('message'), socket.listenerCount('close'), socket.listenerCount('error')];
    const sender = await udp();
    const discovery = discoverNat(socket, { host: '127.0.0.1', port: withAlt.port });
    sender.send('for the program', socket.address().port, '127.0.0.1');
    expect((await discovery).nat).toBe('independent');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(seen).toEqual(['for the program']);
    expect([socket.listenerCount('message'), socket.listenerCount('close'), socket.listenerCount('error')]).toEqual(before);
  });
});

/**
 * A STUN responder of the test's own, on 127.0.0.1: `answer` says what each request gets (undefined:
 * nothing). What the client does with mappings a real NAT would give, without a NAT.
 */
async function fakeServer(answer: (transaction: Uint8Array, from: RemoteInfo, count: number) => Buffer | undefined): Promise<{ port: number; requests: number }> {
  const socket = await udp();
  const state = { port: socket.address().port, requests: 0 };
  socket.on('message', (message: Buffer, from: RemoteInfo) => {
    const request = parseMessage(message);
    if (request === undefined) return;
    state.requests++;
    const reply = answer(request.transaction, from, state.requests);
    if (reply !== undefined) socket.send(reply, from.port, from.address);
  });
  return state;
}

const otherAddress = (ip: string, port: number) => [{ type: OTHER_ADDRESS, value: addressValue(ip, port) }];

describe('discoverNat against responders that report what a NAT would', () => {
  it('says dependent when the alternate port sees another mapping, asking it at the server’s host when OTHER-ADDRESS is 0.0.0.0', async () => {
    // As a NAT that maps each destination apart would: the alternate port sees the next port.
    const alternate = await fakeServer((transaction, from) => bindingSuccess(transaction, from.address, from.port + 1));
    const primary = await fakeServer((transaction, from) => bindingSuccess(transaction, from.address, from.port, otherAddress('0.0.0.0', alternate.port)));
    const socket = await udp();
    const port = socket.address().port;
    expect(await discoverNat(socket, { host: '127.0.0.1', port: primary.port })).toEqual({
      mapping: `127.0.0.1:${port}`,
      nat: 'dependent',
      alternate: `127.0.0.1:${port + 1}`,
    });
    expect([primary.requests, alternate.requests]).toEqual([1, 1]);
  });

  it('asks the alternate at the address OTHER-ADDRESS names when it names one', async () => {
    const alternate = await fakeServer((transaction, from) => bindingSuccess(transaction, '198.51.100.9', from.port));
    const primary = await fakeServer((transaction, from) => bindingSuccess(transaction, '198.51.100.9', from.port, otherAddress('127.0.0.1', alternate.port)));
    const socket = await udp();
    const mapping = `198.51.100.9:${socket.address().port}`;
    // The host given is a name; the alternate is asked at 127.0.0.1, as named.
    expect(await discoverNat(socket, { host: 'localhost', port: primary.port })).toEqual({ mapping, nat: 'independent', alternate: mapping });
  });

  it('says unknown when the alternate port never answers, within the time given in all', async () => {
    const silent = await fakeServer(() => undefined);
    const primary = await fakeServer((transaction, from) => bindingSuccess(transaction, from.address, from.port, otherAddress('0.0.0.0', silent.port)));
    const socket = await udp();
    const started = performance.now();
    expect(await discoverNat(socket, { host: '127.0.0.1', port: primary.port }, { timeoutMs: 1000 })).toEqual({
      mapping: `127.0.0.1:${socket.address().port}`,
      nat: 'unknown',
    });
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(990);
    expect(elapsed).toBeLessThan(1700);
    // Sent at 0, 250 and 750 ms: the retransmissions of RFC 8489, doubling.
    expect(silent.requests).toBe(3);
    expect(socket.listenerCount('message')).toBe(0);
  });
});

describe('stunMapping', () => {
  it('sends the request again until one is answered (UDP loses datagrams)', async () => {
    const lossy = await fakeServer((transaction, from, count) => (count < 3 ? undefined : bindingSuccess(transaction, from.address, from.port)));
    const socket = await udp();
    expect(await stunMapping(socket, '127.0.0.1', lossy.port)).toBe(`127.0.0.1:${socket.address().port}`);
    expect(lossy.requests).toBe(3);
  });

  it('names an IPv6 server in brackets when it does not answer', async () => {
    const silent = await udp('udp6');
    const socket = await udp('udp6');
    await expect(stunMapping(socket, '::1', silent.address().port, { timeoutMs: 300 })).rejects.toThrow(
      new StunError(`no STUN answer from [::1]:${silent.address().port} within 300 ms`),
    );
  });

  it('takes only the answer to its own transaction: another transaction’s and a datagram that is not STUN are ignored', async () => {
    const noisy = await fakeServer((transaction, from) => bindingSuccess(transaction.map((byte) => byte ^ 0xff), from.address, 1));
    const stray = await udp();
    const socket = await udp();
    const asked = stunMapping(socket, '127.0.0.1', noisy.port, { timeoutMs: 300 });
    stray.send('not STUN', socket.address().port, '127.0.0.1');
    await expect(asked).rejects.toThrow(
      new StunError(`no STUN answer from 127.0.0.1:${noisy.port} within 300 ms`),
    );
    expect(noisy.requests).toBe(2);
  });

  it('rejects with the error an error answer carries', async () => {
    const refusing = await fakeServer((transaction) => bindingError(transaction, 420, 'Unknown Attribute', [0x0003]));
    const socket = await udp();
    await expect(stunMapping(socket, '127.0.0.1', refusing.port)).rejects.toThrow(
      new StunError(`127.0.0.1:${refusing.port} answered the STUN Binding request with error 420`),
    );
  });

  it('rejects with the signal’s reason when aborted, its listeners removed', async () => {
    const silent = await fakeServer(() => undefined);
    const socket = await udp();
    const controller = new AbortController();
    const asked = stunMapping(socket, '127.0.0.1', silent.port, { signal: controller.signal });
    controller.abort(new Error('no longer needed'));
    await expect(asked).rejects.toThrow('no longer needed');
    expect([socket.listenerCount('message'), socket.listenerCount('close')]).toEqual([0, 0]);
  });

  it('rejects when the socket is closed before the answer', async () => {
    const silent = await fakeServer(() => undefined);
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const asked = stunMapping(socket, '127.0.0.1', silent.port);
    socket.close();
    await expect(asked).rejects.toThrow(new StunError(`the socket was closed before 127.0.0.1:${silent.port} answered`));
  });
});
