/**
 * A STUN responder (RFC 8489, and RFC 5389 clients): answers Binding requests on a UDP port with the
 * client's public address as the server sees it (XOR-MAPPED-ADDRESS), so a peer learns its UDP mapping
 * from the same server that pairs it. Anything else that arrives is ignored: indications, responses,
 * other methods, RFC 3489 requests without the magic cookie, and malformed datagrams.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv4 } from 'node:net';
import { canonicalIp, ipv6Groups, normalizeIp } from './address.js';
import type { FastifyBaseLogger } from 'fastify';

const MAGIC_COOKIE = 0x2112a442;
const HEADER_BYTES = 20;
const BINDING_REQUEST = 0x0001;
const BINDING_SUCCESS = 0x0101;
const XOR_MAPPED_ADDRESS = 0x0020;
const FAMILY_IPV4 = 0x01;
const FAMILY_IPV6 = 0x02;

/**
 * The transaction ID of a well-formed Binding request, or undefined for anything else. Well-formed:
 * a 20-byte header with the magic cookie, a length that is a multiple of 4 and matches the datagram,
 * and attributes that exactly fill it (their contents are not needed to answer).
 */
function bindingTransaction(message: Buffer): Buffer | undefined {
  if (message.length < HEADER_BYTES) return undefined;
  if (message.readUInt16BE(0) !== BINDING_REQUEST) return undefined; // also checks the two zero bits
  const length = message.readUInt16BE(2);
  if (length % 4 !== 0 || HEADER_BYTES + length !== message.length) return undefined;
  if (message.readUInt32BE(4) !== MAGIC_COOKIE) return undefined;
  let offset = HEADER_BYTES;
  while (offset < message.length) {
    if (offset + 4 > message.length) return undefined;
    const valueLength = message.readUInt16BE(offset + 2);
    offset += 4 + Math.ceil(valueLength / 4) * 4;
  }
  if (offset !== message.length) return undefined;
  return message.subarray(8, HEADER_BYTES);
}

/** A Binding success response carrying `address`:`port` as XOR-MAPPED-ADDRESS. */
export function bindingSuccess(transaction: Buffer, address: string, port: number): Buffer {
  // An IPv4 client of a dual-stack socket (`::ffff:1.2.3.4`) is told its IPv4 address.
  const plain = normalizeIp(address);
  const ipv4 = isIPv4(plain) ? plain : undefined;
  const addressBytes = ipv4 !== undefined ? ipv4Bytes(ipv4) : ipv6Bytes(address);
  const valueLength = 4 + addressBytes.length;
  const response = Buffer.alloc(HEADER_BYTES + 4 + valueLength);
  response.writeUInt16BE(BINDING_SUCCESS, 0);
  response.writeUInt16BE(4 + valueLength, 2);
  response.writeUInt32BE(MAGIC_COOKIE, 4);
  transaction.copy(response, 8);
  response.writeUInt16BE(XOR_MAPPED_ADDRESS, 20);
  response.writeUInt16BE(valueLength, 22);
  response.writeUInt8(0, 24);
  response.writeUInt8(ipv4 !== undefined ? FAMILY_IPV4 : FAMILY_IPV6, 25);
  response.writeUInt16BE(port ^ (MAGIC_COOKIE >>> 16), 26);
  // The address is XORed with the cookie, then (IPv6) the transaction ID: bytes 4.. of the header.
  for (let i = 0; i < addressBytes.length; i++) {
    response[28 + i] = (addressBytes[i] ?? 0) ^ (response[4 + i] ?? 0);
  }
  return response;
}

function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number));
}

/** The 16 bytes of an IPv6 address (a zone after `%` dropped). */
function ipv6Bytes(address: string): Buffer {
  const bytes = Buffer.alloc(16);
  ipv6Groups(canonicalIp(address.split('%', 1)[0] ?? '')).forEach((group, i) => bytes.writeUInt16BE(group, i * 2));
  return bytes;
}

/**
 * A STUN answer is larger than the request that asked for it (32 or 44 bytes against 20 or more:
 * up to 2.2 times), and UDP sources can be forged: each source address gets at most
 * `answersPerSecond` answers a second (a bucket that refills at that rate and holds as many), so the
 * responder cannot be used to flood somebody else's address. A few a second are plenty for a real
 * client; the rest are dropped without a word.
 */
export const STUN_ANSWERS_PER_SECOND = 20;
/** Most source addresses tracked at once; past it, new sources are not answered until some are idle. */
const MAX_TRACKED_SOURCES = 100_000;
/** How often buckets that have refilled (their sources idle) are forgotten. */
const SWEEP_MS = 10_000;

class RateLimit {
  readonly #perSecond: number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(perSecond: number) {
    this.#perSecond = perSecond;
  }

  /** Takes one answer from `source`'s bucket: false when it is empty. */
  take(source: string, now: number): boolean {
    const bucket = this.#buckets.get(source);
    if (bucket === undefined) {
      if (this.#buckets.size >= MAX_TRACKED_SOURCES) return false;
      this.#buckets.set(source, { tokens: this.#perSecond - 1, at: now });
      return true;
    }
    bucket.tokens = Math.min(this.#perSecond, bucket.tokens + ((now - bucket.at) / 1000) * this.#perSecond);
    bucket.at = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens--;
    return true;
  }

  sweep(now: number): void {
    for (const [source, bucket] of this.#buckets) {
      if (bucket.tokens + ((now - bucket.at) / 1000) * this.#perSecond >= this.#perSecond) this.#buckets.delete(source);
    }
  }
}

export interface StunOptions {
  /** Answers per second (and burst) for one source address; default {@link STUN_ANSWERS_PER_SECOND}. */
  readonly answersPerSecond?: number;
}

export interface StunResponder {
  /** The UDP port it answers on. */
  readonly port: number;
  /** Binding requests answered so far. */
  readonly answered: number;
  /** Binding requests not answered because their source asked too often. */
  readonly limited: number;
  close(): Promise<void>;
}

/** Binds `host`:`port` (UDP; 0 picks a free port) and answers Binding requests until closed. */
export function startStunResponder(
  host: string,
  port: number,
  log: FastifyBaseLogger,
  options: StunOptions = {},
): Promise<StunResponder> {
  const socket: Socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
  const limit = new RateLimit(options.answersPerSecond ?? STUN_ANSWERS_PER_SECOND);
  const sweep = setInterval(() => limit.sweep(performance.now()), SWEEP_MS);
  sweep.unref();
  let answered = 0;
  let limited = 0;
  socket.on('message', (message: Buffer, peer: RemoteInfo) => {
    const transaction = bindingTransaction(message);
    if (transaction === undefined) return;
    if (!limit.take(peer.address, performance.now())) {
      limited++;
      return;
    }
    answered++;
    socket.send(bindingSuccess(transaction, peer.address, peer.port), peer.port, peer.address, (error) => {
      if (error !== null) log.debug({ err: error, to: peer.address }, 'STUN response not sent');
    });
  });
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address: host, port }, () => {
      socket.off('error', reject);
      // A failing send is a client's problem, not the server's: never let it crash the process.
      socket.on('error', (error) => log.warn({ err: error }, 'STUN socket error'));
      resolve({
        port: socket.address().port,
        get answered() {
          return answered;
        },
        get limited() {
          return limited;
        },
        close: () =>
          new Promise<void>((done) => {
            clearInterval(sweep);
            socket.close(() => done());
          }),
      });
    });
  });
}
