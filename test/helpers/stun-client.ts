/**
 * A STUN client written from RFC 8489 alone, byte by byte, independent of src/stun.ts: what the
 * tests check the responder against.
 */
import type { Socket } from 'node:dgram';
import { once } from 'node:events';

const COOKIE = Buffer.from([0x21, 0x12, 0xa4, 0x42]);

/** A Binding request with the given attributes (type, value), padded as the RFC says. */
export function bindingRequest(transaction: Buffer, attributes: [number, Buffer][] = []): Buffer {
  const body = attributes.map(([type, value]) => {
    const header = Buffer.alloc(4);
    header.writeUInt16BE(type, 0);
    header.writeUInt16BE(value.length, 2);
    return Buffer.concat([header, value, Buffer.alloc((4 - (value.length % 4)) % 4)]);
  });
  const bodyBytes = Buffer.concat(body);
  const header = Buffer.alloc(20);
  header.writeUInt16BE(0x0001, 0);
  header.writeUInt16BE(bodyBytes.length, 2);
  COOKIE.copy(header, 4);
  transaction.copy(header, 8);
  return Buffer.concat([header, bodyBytes]);
}

export interface Mapped {
  readonly type: number;
  readonly transaction: string;
  readonly family: number;
  readonly address: string;
  readonly port: number;
}

/** Reads a Binding success response and its XOR-MAPPED-ADDRESS; throws on a bad length or cookie. */
export function readResponse(response: Buffer): Mapped {
  if (response.readUInt16BE(2) !== response.length - 20) throw new Error('STUN length does not match the datagram');
  if (!response.subarray(4, 8).equals(COOKIE)) throw new Error('STUN magic cookie missing');
  let offset = 20;
  while (offset < response.length) {
    const type = response.readUInt16BE(offset);
    const length = response.readUInt16BE(offset + 2);
    if (type === 0x0020) {
      const family = response[offset + 5] ?? -1;
      const port = response.readUInt16BE(offset + 6) ^ 0x2112;
      const xored = response.subarray(offset + 8, offset + 4 + length);
      const mask = response.subarray(4, 20);
      const raw = Buffer.from(xored.map((byte, i) => byte ^ (mask[i] ?? 0)));
      const address =
        family === 1
          ? [...raw].join('.')
          : Array.from({ length: 8 }, (_, i) => raw.readUInt16BE(i * 2).toString(16)).join(':');
      return {
        type: response.readUInt16BE(0),
        transaction: response.subarray(8, 20).toString('hex'),
        family,
        address,
        port,
      };
    }
    offset += 4 + Math.ceil(length / 4) * 4;
  }
  throw new Error('no XOR-MAPPED-ADDRESS');
}


/** Sends `request` and resolves with the next datagram the socket receives. */
export async function exchange(socket: Socket, port: number, host: string, request: Buffer): Promise<Buffer> {
  const reply = once(socket, 'message') as Promise<[Buffer]>;
  socket.send(request, port, host);
  const [message] = await reply;
  return message;
}
