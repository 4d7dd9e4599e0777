/**
 * A TURN client written from RFC 8656 and RFC 8489 alone (long-term credentials): one Allocate,
 * answered 401 with a realm and nonce, then the same with USERNAME, REALM, NONCE and
 * MESSAGE-INTEGRITY. What the tests check pairup's TURN credentials against a real TURN server with.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';

const COOKIE = 0x2112a442;
const ALLOCATE = 0x0003;
const ATTR = { USERNAME: 0x0006, MESSAGE_INTEGRITY: 0x0008, ERROR_CODE: 0x0009, REALM: 0x0014, NONCE: 0x0015, XOR_RELAYED_ADDRESS: 0x0016, REQUESTED_TRANSPORT: 0x0019 };

function attribute(type: number, value: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt16BE(type, 0);
  header.writeUInt16BE(value.length, 2);
  return Buffer.concat([header, value, Buffer.alloc((4 - (value.length % 4)) % 4)]);
}

function message(type: number, transaction: Buffer, attributes: Buffer[], integrityKey?: Buffer): Buffer {
  let body = Buffer.concat(attributes);
  const header = Buffer.alloc(20);
  header.writeUInt16BE(type, 0);
  header.writeUInt32BE(COOKIE, 4);
  transaction.copy(header, 8);
  if (integrityKey !== undefined) {
    // The length counts MESSAGE-INTEGRITY itself (24 bytes), as if it were already there.
    header.writeUInt16BE(body.length + 24, 2);
    const mac = createHmac('sha1', integrityKey).update(Buffer.concat([header, body])).digest();
    body = Buffer.concat([body, attribute(ATTR.MESSAGE_INTEGRITY, mac)]);
  }
  header.writeUInt16BE(body.length, 2);
  return Buffer.concat([header, body]);
}

function attributesOf(response: Buffer): Map<number, Buffer> {
  const found = new Map<number, Buffer>();
  for (let at = 20; at + 4 <= response.length; at += 4 + Math.ceil(response.readUInt16BE(at + 2) / 4) * 4) {
    found.set(response.readUInt16BE(at), response.subarray(at + 4, at + 4 + response.readUInt16BE(at + 2)));
  }
  return found;
}

export type AllocateResult = { readonly ok: true; readonly relayed: string } | { readonly ok: false; readonly code: number; readonly reason: string };

/** Asks the TURN server at host:port for a UDP relay with the credential; resolves with what it said. */
export async function allocate(host: string, port: number, username: string, password: string, timeoutMs = 3000): Promise<AllocateResult> {
  const socket = createSocket('udp4');
  const exchange = (request: Buffer, transaction: Buffer): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer from the TURN server at ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
      const onMessage = (response: Buffer): void => {
        if (response.length < 20 || !response.subarray(8, 20).equals(transaction)) return;
        clearTimeout(timer);
        socket.off('message', onMessage);
        resolve(response);
      };
      socket.on('message', onMessage);
      socket.send(request, port, host);
    });
  try {
    const transport = attribute(ATTR.REQUESTED_TRANSPORT, Buffer.from([17, 0, 0, 0])); // UDP
    const first = randomBytes(12);
    const challenge = attributesOf(await exchange(message(ALLOCATE, first, [transport]), first));
    const realm = challenge.get(ATTR.REALM);
    const nonce = challenge.get(ATTR.NONCE);
    if (realm === undefined || nonce === undefined) throw new Error('the TURN server did not ask for credentials (no REALM and NONCE)');
    const key = createHash('md5').update(`${username}:${realm.toString('utf8')}:${password}`).digest();
    const second = randomBytes(12);
    const request = message(ALLOCATE, second, [transport, attribute(ATTR.USERNAME, Buffer.from(username)), attribute(ATTR.REALM, realm), attribute(ATTR.NONCE, nonce)], key);
    const response = await exchange(request, second);
    const found = attributesOf(response);
    if (response.readUInt16BE(0) === 0x0103) {
      const relayed = found.get(ATTR.XOR_RELAYED_ADDRESS);
      if (relayed === undefined) throw new Error('an Allocate success without XOR-RELAYED-ADDRESS');
      const relayedPort = relayed.readUInt16BE(2) ^ (COOKIE >>> 16);
      const ip = [0, 1, 2, 3].map((i) => (relayed[4 + i] ?? 0) ^ ((COOKIE >>> (24 - 8 * i)) & 0xff)).join('.');
      return { ok: true, relayed: `${ip}:${relayedPort}` };
    }
    const error = found.get(ATTR.ERROR_CODE);
    if (error === undefined) throw new Error(`an Allocate answer of type 0x${response.readUInt16BE(0).toString(16)} without ERROR-CODE`);
    return { ok: false, code: (error[2] ?? 0) * 100 + (error[3] ?? 0), reason: error.subarray(4).toString('utf8') };
  } finally {
    socket.close();
  }
}
