import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bindingSuccess, startStunResponder, type StunResponder } from '../../src/net/stun.js';
import { bindingRequest, exchange, readResponse } from '../helpers/stun-client.js';

const warnings: unknown[] = [];
const log = pino({ level: 'debug' }, { write: (line: string) => warnings.push(line) });

describe.each([
  { host: '127.0.0.1', type: 'udp4' as const, family: 1, expected: (port: number) => ['127.0.0.1', port] },
  { host: '::1', type: 'udp6' as const, family: 2, expected: (port: number) => ['0:0:0:0:0:0:0:1', port] },
])('STUN responder on $host', ({ host, type, family, expected }) => {
  let responder: StunResponder;
  let client: Socket;

  beforeAll(async () => {
    responder = await startStunResponder(host, 0, log);
    client = createSocket(type);
    await new Promise<void>((resolve) => client.bind(0, host, resolve));
  });
  afterAll(async () => {
    client.close();
    await responder.close();
  });

  it('answers a Binding request with the client’s own address and port', async () => {
    const transaction = randomBytes(12);
    const mapped = readResponse(await exchange(client, responder.port, host, bindingRequest(transaction)));
    expect(mapped).toEqual({
      type: 0x0101,
      transaction: transaction.toString('hex'),
      family,
      address: expected(client.address().port)[0],
      port: expected(client.address().port)[1],
    });
  });

  it('answers a request that carries attributes (SOFTWARE with padding, FINGERPRINT)', async () => {
    const transaction = randomBytes(12);
    const request = bindingRequest(transaction, [
      [0x8022, Buffer.from('probe 1.0')],
      [0x8028, Buffer.from([1, 2, 3, 4])],
    ]);
    const mapped = readResponse(await exchange(client, responder.port, host, request));
    expect([mapped.transaction, mapped.port]).toEqual([transaction.toString('hex'), client.address().port]);
  });

  it('ignores malformed and non-request datagrams, and keeps answering', async () => {
    const good = bindingRequest(randomBytes(12));
    const wrongCookie = Buffer.from(good);
    wrongCookie.writeUInt32BE(0xdeadbeef, 4);
    const wrongLength = Buffer.from(good);
    wrongLength.writeUInt16BE(4, 2);
    const overrun = bindingRequest(randomBytes(12), [[0x8022, Buffer.from('abcd')]]);
    overrun.writeUInt16BE(40, 22); // the attribute claims more than the datagram holds
    const indication = Buffer.from(good);
    indication.writeUInt16BE(0x0011, 0);
    const response = Buffer.from(good);
    response.writeUInt16BE(0x0101, 0);
    const bad = [Buffer.alloc(0), good.subarray(0, 19), wrongCookie, wrongLength, overrun, indication, response];
    const random = fc.sample(fc.uint8Array({ minLength: 0, maxLength: 600 }), { numRuns: 200, seed: 7 });
    const before = responder.answered;
    for (const datagram of [...bad, ...random.map((bytes) => Buffer.from(bytes))]) {
      client.send(datagram, responder.port, host);
    }
    const transaction = randomBytes(12);
    const mapped = readResponse(await exchange(client, responder.port, host, bindingRequest(transaction)));
    // The first answer to arrive is the one to the good request: nothing before it was answered.
    expect(mapped.transaction).toBe(transaction.toString('hex'));
    expect(responder.answered).toBe(before + 1);
    expect(warnings.filter((line) => String(line).includes('"level":40'))).toEqual([]);
  });
});

describe('STUN rate limit per source address', () => {
  it('answers at most answersPerSecond requests a second from one address, others unaffected, then again', async () => {
    const responder = await startStunResponder('::', 0, log, { answersPerSecond: 5 });
    const flooder = createSocket('udp4');
    const other = createSocket('udp6');
    await new Promise<void>((resolve) => flooder.bind(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => other.bind(0, '::1', resolve));
    try {
      const answers: Buffer[] = [];
      flooder.on('message', (message: Buffer) => answers.push(message));
      for (let i = 0; i < 50; i++) flooder.send(bindingRequest(randomBytes(12)), responder.port, '127.0.0.1');
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect([answers.length, responder.answered, responder.limited]).toEqual([5, 5, 45]);
      // Another source is answered meanwhile.
      const mapped = readResponse(await exchange(other, responder.port, '::1', bindingRequest(randomBytes(12))));
      expect(mapped.port).toBe(other.address().port);
      // A second later the bucket has refilled.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      flooder.removeAllListeners('message');
      const again = readResponse(await exchange(flooder, responder.port, '127.0.0.1', bindingRequest(randomBytes(12))));
      expect(again.port).toBe(flooder.address().port);
    } finally {
      flooder.close();
      other.close();
      await responder.close();
    }
  });
});

describe('XOR-MAPPED-ADDRESS encoding', () => {
  const transaction = Buffer.from('00112233445566778899aabb', 'hex');

  it('encodes an IPv6 address against the cookie and the transaction ID', () => {
    const mapped = readResponse(bindingSuccess(transaction, '2001:db8::8:1', 54321));
    expect(mapped).toEqual({
      type: 0x0101,
      transaction: '00112233445566778899aabb',
      family: 2,
      address: '2001:db8:0:0:0:0:8:1',
      port: 54321,
    });
  });

  it('reports an IPv4-mapped address of a dual-stack socket as IPv4', () => {
    const mapped = readResponse(bindingSuccess(transaction, '::ffff:198.51.100.7', 3478));
    expect([mapped.family, mapped.address, mapped.port]).toEqual([1, '198.51.100.7', 3478]);
  });

  it('writes the documented bytes for 192.0.2.1:32853 (RFC 5769 test vector values)', () => {
    const response = bindingSuccess(Buffer.from('b7e7a701bc34d686fa87dfae', 'hex'), '192.0.2.1', 32853);
    // RFC 5769 2.2: XOR-MAPPED-ADDRESS 00 20 00 08, 00 01 a1 47, e1 12 a6 43.
    expect(response.subarray(20).toString('hex')).toBe('002000080001a147e112a643');
    expect(response.subarray(0, 8).toString('hex')).toBe('0101000c2112a442');
  });
});
