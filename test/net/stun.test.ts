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

/** The next datagram `socket` receives, with where it came from; undefined after `ms`. */
function next(socket: Socket, ms = 300): Promise<{ message: Buffer; from: number } | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.off('message', onMessage);
      resolve(undefined);
    }, ms);
    const onMessage = (message: Buffer, from: { port: number }): void => {
      clearTimeout(timer);
      socket.off('message', onMessage);
      resolve({ message, from: from.port });
    };
    socket.on('message', onMessage);
  });
}

const hex16 = (n: number): string => n.toString(16).padStart(4, '0');
/** XOR-MAPPED-ADDRESS of 127.0.0.1:port, written out: the port XOR 0x2112, 7f000001 XOR 2112a442. */
const xorLoopback = (port: number): string => `00200008 0001${hex16(port ^ 0x2112)} 5e12a443`;
const plainAddress = (type: number, bytes: string, port: number): string =>
  `${hex16(type)}${hex16(4 + bytes.length / 2)} ${bytes.length === 8 ? '0001' : '0002'}${hex16(port)} ${bytes}`;
const spaced = (text: string): string => text.replaceAll(' ', '');

describe('STUN responder with an alternate port (RFC 5780)', () => {
  let responder: StunResponder;
  let client: Socket;
  let other: Socket;

  beforeAll(async () => {
    responder = await startStunResponder('127.0.0.1', 0, log, { altPort: 0 });
    client = createSocket('udp4');
    other = createSocket('udp4');
    await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => other.bind(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    client.close();
    other.close();
    await responder.close();
  });

  it('answers on both ports, each naming the other in OTHER-ADDRESS and itself in RESPONSE-ORIGIN (exact bytes)', async () => {
    const { port, altPort = 0 } = responder;
    expect(altPort).not.toBe(port);
    expect(altPort).toBeGreaterThan(0);
    const me = client.address().port;
    for (const [to, otherPort] of [[port, altPort], [altPort, port]] as const) {
      const transaction = randomBytes(12);
      const reply = await exchange(client, to, '127.0.0.1', bindingRequest(transaction));
      expect(reply.toString('hex')).toBe(
        spaced(
          `0101 0024 2112a442 ${transaction.toString('hex')} ${xorLoopback(me)} ` +
            `${plainAddress(0x802c, '7f000001', otherPort)} ${plainAddress(0x802b, '7f000001', to)}`,
        ),
      );
    }
  });

  it('sends the answer to RESPONSE-PORT at the request’s own IP, and nothing to the port it came from', async () => {
    const transaction = randomBytes(12);
    const port = Buffer.alloc(4);
    port.writeUInt16BE(other.address().port, 0);
    const toOther = next(other);
    const toClient = next(client);
    client.send(bindingRequest(transaction, [[0x0027, port]]), responder.port, '127.0.0.1');
    const delivered = await toOther;
    expect(delivered?.from).toBe(responder.port);
    // XOR-MAPPED-ADDRESS names where the request came from, not where the answer went.
    expect(readResponse(delivered?.message ?? Buffer.alloc(0))).toEqual({
      type: 0x0101,
      transaction: transaction.toString('hex'),
      family: 1,
      address: '127.0.0.1',
      port: client.address().port,
    });
    expect(await toClient).toBeUndefined();
  });

  it.each([
    ['RESPONSE-PORT of 2 bytes', 0x0027, Buffer.from([0x12, 0x34]), 'Bad RESPONSE-PORT'],
    ['RESPONSE-PORT 0', 0x0027, Buffer.from([0, 0, 0, 0]), 'Bad RESPONSE-PORT'],
    ['CHANGE-REQUEST of 8 bytes', 0x0003, Buffer.alloc(8), 'Bad CHANGE-REQUEST'],
  ])('answers a %s with 400 Bad Request, to the port it came from', async (_, type, value, reason) => {
    const transaction = randomBytes(12);
    const reply = await exchange(client, responder.port, '127.0.0.1', bindingRequest(transaction, [[type, value]]));
    const phrase = Buffer.from(reason);
    const padded = Buffer.concat([phrase, Buffer.alloc((4 - (phrase.length % 4)) % 4)]).toString('hex');
    expect(reply.toString('hex')).toBe(
      spaced(`0111 ${hex16(4 + 4 + padded.length / 2)} 2112a442 ${transaction.toString('hex')} 0009${hex16(4 + phrase.length)} 00000400 ${padded}`),
    );
  });

  it('answers CHANGE-REQUEST change-IP with 420 naming CHANGE-REQUEST: one IP cannot serve it', async () => {
    const transaction = randomBytes(12);
    const reply = await exchange(client, responder.port, '127.0.0.1', bindingRequest(transaction, [[0x0003, Buffer.from([0, 0, 0, 0x06])]]));
    const phrase = Buffer.from('Unknown Attribute').toString('hex'); // 17 bytes, padded to 20
    expect(reply.toString('hex')).toBe(
      spaced(`0111 0024 2112a442 ${transaction.toString('hex')} 00090015 00000414 ${phrase}000000 000a0002 00030000`),
    );
  });

  it('answers CHANGE-REQUEST change-port from the other port, RESPONSE-ORIGIN saying so', async () => {
    const { port, altPort = 0 } = responder;
    const transaction = randomBytes(12);
    const reply = next(client);
    client.send(bindingRequest(transaction, [[0x0003, Buffer.from([0, 0, 0, 0x02])]]), port, '127.0.0.1');
    const answer = await reply;
    expect(answer?.from).toBe(altPort);
    expect(answer?.message.toString('hex')).toBe(
      spaced(
        `0101 0024 2112a442 ${transaction.toString('hex')} ${xorLoopback(client.address().port)} ` +
          `${plainAddress(0x802c, '7f000001', altPort)} ${plainAddress(0x802b, '7f000001', altPort)}`,
      ),
    );
  });

  it('ignores malformed datagrams on either port, RESPONSE-PORT in them never followed, and keeps answering', async () => {
    const port = Buffer.alloc(4);
    port.writeUInt16BE(other.address().port, 0);
    const truncated = bindingRequest(randomBytes(12), [[0x0027, port]]).subarray(0, 26);
    const overrun = bindingRequest(randomBytes(12), [[0x0027, port]]);
    overrun.writeUInt16BE(8, 22); // RESPONSE-PORT claims 8 bytes where the datagram holds 4
    const misaligned = bindingRequest(randomBytes(12), [[0x0027, port]]);
    misaligned.writeUInt16BE(6, 2);
    const random = fc.sample(fc.uint8Array({ minLength: 0, maxLength: 200 }), { numRuns: 100, seed: 11 });
    const before = responder.answered;
    const stray = next(other, 300);
    for (const to of [responder.port, responder.altPort ?? 0]) {
      for (const datagram of [truncated, overrun, misaligned, ...random.map((bytes) => Buffer.from(bytes))]) client.send(datagram, to, '127.0.0.1');
    }
    const transaction = randomBytes(12);
    const mapped = readResponse(await exchange(client, responder.altPort ?? 0, '127.0.0.1', bindingRequest(transaction)));
    expect(mapped.transaction).toBe(transaction.toString('hex'));
    expect(responder.answered).toBe(before + 1);
    expect(await stray).toBeUndefined();
    expect(warnings.filter((line) => String(line).includes('"level":40'))).toEqual([]);
  });
});

describe('STUN responder with an alternate port, bound to every address', () => {
  it('names the unspecified address of the request’s family in OTHER-ADDRESS: the client uses the address it sent to', async () => {
    const responder = await startStunResponder('::', 0, log, { altPort: 0 });
    const v4 = createSocket('udp4');
    const v6 = createSocket('udp6');
    await new Promise<void>((resolve) => v4.bind(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => v6.bind(0, '::1', resolve));
    try {
      const { port, altPort = 0 } = responder;
      const t4 = randomBytes(12);
      const r4 = await exchange(v4, port, '127.0.0.1', bindingRequest(t4));
      expect(r4.subarray(32).toString('hex')).toBe(spaced(`${plainAddress(0x802c, '00000000', altPort)} ${plainAddress(0x802b, '00000000', port)}`));
      const t6 = randomBytes(12);
      const r6 = await exchange(v6, altPort, '::1', bindingRequest(t6));
      const zeros = '0'.repeat(32);
      expect(r6.subarray(44).toString('hex')).toBe(spaced(`${plainAddress(0x802c, zeros, port)} ${plainAddress(0x802b, zeros, altPort)}`));
      expect([r4.length, r6.length]).toEqual([56, 92]);
    } finally {
      v4.close();
      v6.close();
      await responder.close();
    }
  });
});

describe('STUN responder without an alternate port', () => {
  it('adds no RFC 5780 attribute, and answers CHANGE-REQUEST change-port with 420', async () => {
    const responder = await startStunResponder('127.0.0.1', 0, log);
    const client = createSocket('udp4');
    await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', resolve));
    try {
      expect(responder.altPort).toBeUndefined();
      const transaction = randomBytes(12);
      const reply = await exchange(client, responder.port, '127.0.0.1', bindingRequest(transaction));
      expect(reply.toString('hex')).toBe(spaced(`0101 000c 2112a442 ${transaction.toString('hex')} ${xorLoopback(client.address().port)}`));
      const change = await exchange(client, responder.port, '127.0.0.1', bindingRequest(randomBytes(12), [[0x0003, Buffer.from([0, 0, 0, 0x02])]]));
      expect([change.readUInt16BE(0), change.subarray(24, 28).toString('hex')]).toEqual([0x0111, '00000414']);
    } finally {
      client.close();
      await responder.close();
    }
  });
});

describe('STUN rate limit across the two ports', () => {
  it('counts one source’s requests to both ports in one bucket', async () => {
    const responder = await startStunResponder('127.0.0.1', 0, log, { answersPerSecond: 5, altPort: 0 });
    const flooder = createSocket('udp4');
    await new Promise<void>((resolve) => flooder.bind(0, '127.0.0.1', resolve));
    try {
      const from: number[] = [];
      flooder.on('message', (_: Buffer, info: { port: number }) => from.push(info.port));
      for (let i = 0; i < 3; i++) flooder.send(bindingRequest(randomBytes(12)), responder.port, '127.0.0.1');
      await new Promise((resolve) => setTimeout(resolve, 100));
      for (let i = 0; i < 10; i++) flooder.send(bindingRequest(randomBytes(12)), responder.altPort ?? 0, '127.0.0.1');
      await new Promise((resolve) => setTimeout(resolve, 300));
      const { port, altPort } = responder;
      expect([from.filter((p) => p === port).length, from.filter((p) => p === altPort).length]).toEqual([3, 2]);
      expect([responder.answered, responder.limited]).toEqual([5, 8]);
    } finally {
      flooder.close();
      await responder.close();
    }
  });
});
