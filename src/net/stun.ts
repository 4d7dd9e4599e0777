/**
 * A STUN responder (RFC 8489, and RFC 5389 clients): answers Binding requests on a UDP port with the
 * client's public address as the server sees it (XOR-MAPPED-ADDRESS), so a peer learns its UDP mapping
 * from the same server that pairs it. Anything else that arrives is ignored: indications, responses,
 * other methods, RFC 3489 requests without the magic cookie, and malformed datagrams.
 *
 * With an alternate port (STUN_ALT_PORT) it also serves RFC 5780's NAT behaviour discovery on one IP:
 * both ports answer, every success names the other port (OTHER-ADDRESS) and the port it left from
 * (RESPONSE-ORIGIN), RESPONSE-PORT sends the answer to another port of the request's own source IP,
 * and CHANGE-REQUEST's change-port answers from the other port. Change-IP needs a second IP: 420.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv4 } from 'node:net';
import { normalizeIp } from './address.js';
import {
  addressValue,
  attribute,
  BINDING_ERROR,
  BINDING_REQUEST,
  BINDING_SUCCESS,
  CHANGE_IP,
  CHANGE_PORT,
  CHANGE_REQUEST,
  encodeMessage,
  ERROR_CODE,
  errorCodeValue,
  OTHER_ADDRESS,
  parseMessage,
  RESPONSE_ORIGIN,
  RESPONSE_PORT,
  UNKNOWN_ATTRIBUTES,
  XOR_MAPPED_ADDRESS,
  type Attribute,
} from '../protocol/stun.js';
import type { FastifyBaseLogger } from 'fastify';

/** A Binding success response carrying `address`:`port` as XOR-MAPPED-ADDRESS, then `extra`. */
export function bindingSuccess(transaction: Uint8Array, address: string, port: number, extra: readonly Attribute[] = []): Buffer {
  // An IPv4 client of a dual-stack socket (`::ffff:1.2.3.4`) is told its IPv4 address.
  const mapped = { type: XOR_MAPPED_ADDRESS, value: addressValue(normalizeIp(address), port, transaction) };
  return asBuffer(encodeMessage(BINDING_SUCCESS, transaction, [mapped, ...extra]));
}

/** A Binding error response: ERROR-CODE, and UNKNOWN-ATTRIBUTES when there are some (420). */
export function bindingError(transaction: Uint8Array, code: number, reason: string, unknown: readonly number[] = []): Buffer {
  const attributes: Attribute[] = [{ type: ERROR_CODE, value: errorCodeValue(code, reason) }];
  if (unknown.length > 0) {
    const value = Buffer.alloc(unknown.length * 2);
    unknown.forEach((type, i) => value.writeUInt16BE(type, i * 2));
    attributes.push({ type: UNKNOWN_ATTRIBUTES, value });
  }
  return asBuffer(encodeMessage(BINDING_ERROR, transaction, attributes));
}

const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/**
 * A STUN answer is larger than the request that asked for it (32 or 44 bytes against 20 or more: up
 * to 2.2 times; 56 or 92 with the RFC 5780 attributes: up to 4.6 times), and UDP sources can be
 * forged: each source address gets at most
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
  /** Answers per second (and burst) for one source address, both ports together; default {@link STUN_ANSWERS_PER_SECOND}. */
  readonly answersPerSecond?: number;
  /** A second UDP port for RFC 5780 NAT behaviour discovery; undefined: one port, no RFC 5780 attributes. */
  readonly altPort?: number;
}

export interface StunResponder {
  /** The UDP port it answers on. */
  readonly port: number;
  /** The alternate port, when there is one. */
  readonly altPort: number | undefined;
  /** Binding requests answered so far (success or error), on both ports. */
  readonly answered: number;
  /** Binding requests not answered because their source asked too often. */
  readonly limited: number;
  close(): Promise<void>;
}

/** A port that could not be bound: which one, and why (the bind error's message). */
export class StunBindError extends Error {
  constructor(
    readonly port: number,
    cause: Error,
  ) {
    super(cause.message, { cause });
    this.name = 'StunBindError';
  }
}

const WILDCARDS = new Set(['0.0.0.0', '::']);

/**
 * The IP to name in OTHER-ADDRESS and RESPONSE-ORIGIN for a request from `peer`: the address the
 * socket is bound to, when it is one address. A socket bound to every address (`::`, `0.0.0.0`) cannot
 * tell which one a datagram was sent to (Node gives no destination address), so it names the
 * unspecified address of the request's family: "the address you sent to", which the client knows.
 */
function localIp(bound: string, peer: string): string {
  if (!WILDCARDS.has(bound)) return normalizeIp(bound);
  return isIPv4(normalizeIp(peer)) ? '0.0.0.0' : '::';
}

/** Binds `host`:`port` (UDP; 0 picks a free port), and `options.altPort` too, and answers Binding requests until closed. */
export async function startStunResponder(
  host: string,
  port: number,
  log: FastifyBaseLogger,
  options: StunOptions = {},
): Promise<StunResponder> {
  const type = host.includes(':') ? 'udp6' : 'udp4';
  const sockets: Socket[] = [createSocket({ type })];
  if (options.altPort !== undefined) sockets.push(createSocket({ type }));
  const limit = new RateLimit(options.answersPerSecond ?? STUN_ANSWERS_PER_SECOND);
  let answered = 0;
  let limited = 0;
  const ports = [port, options.altPort ?? 0];
  try {
    for (const [i, socket] of sockets.entries()) await bind(socket, host, ports[i] ?? 0, log);
  } catch (error) {
    await Promise.all(sockets.map((socket) => new Promise<void>((done) => socket.close(() => done())).catch(() => undefined)));
    throw error;
  }
  const bound = sockets.map((socket) => socket.address());
  const alternate = sockets.length > 1;
  const sweep = setInterval(() => limit.sweep(performance.now()), SWEEP_MS);
  sweep.unref();

  /** Answers `datagram`, which arrived on socket `on` (0: the port, 1: the alternate), if it is a Binding request. */
  const respond = (datagram: Buffer, peer: RemoteInfo, on: number): void => {
    const request = parseMessage(datagram);
    if (request?.type !== BINDING_REQUEST) return;
    if (!limit.take(peer.address, performance.now())) {
      limited++;
      return;
    }
    answered++;
    const send = (reply: Buffer, from: number, toPort: number): void => {
      sockets[from]?.send(reply, toPort, peer.address, (error) => {
        if (error !== null) log.debug({ err: error, to: peer.address }, 'STUN response not sent');
      });
    };
    const { transaction } = request;
    const [responsePort, change] = [attribute(request, RESPONSE_PORT), attribute(request, CHANGE_REQUEST)].map((v) => v && asBuffer(v));
    // RESPONSE-PORT is a port then two bytes of padding (RFC 5780 section 7.5); port 0 cannot be sent to.
    if (responsePort !== undefined && (responsePort.length !== 4 || responsePort.readUInt16BE(0) === 0)) {
      return send(bindingError(transaction, 400, 'Bad RESPONSE-PORT'), on, peer.port);
    }
    if (change !== undefined && change.length !== 4) return send(bindingError(transaction, 400, 'Bad CHANGE-REQUEST'), on, peer.port);
    const flags = change?.readUInt32BE(0) ?? 0;
    // One IP: a change of address cannot be served, nor a change of port without the other port.
    if (flags & CHANGE_IP || (flags & CHANGE_PORT && !alternate)) {
      return send(bindingError(transaction, 420, 'Unknown Attribute', [CHANGE_REQUEST]), on, peer.port);
    }
    const from = flags & CHANGE_PORT ? 1 - on : on;
    const extra: Attribute[] = [];
    if (alternate) {
      const ip = localIp(bound[on]?.address ?? host, peer.address);
      extra.push({ type: OTHER_ADDRESS, value: addressValue(ip, bound[1 - on]?.port ?? 0) });
      extra.push({ type: RESPONSE_ORIGIN, value: addressValue(ip, bound[from]?.port ?? 0) });
    }
    // Only ever to the request's own source IP: RESPONSE-PORT picks the port, never the address.
    send(bindingSuccess(transaction, peer.address, peer.port, extra), from, responsePort?.readUInt16BE(0) ?? peer.port);
  };
  for (const [i, socket] of sockets.entries()) {
    socket.on('message', (datagram: Buffer, peer: RemoteInfo) => respond(datagram, peer, i));
  }
  return {
    port: bound[0]?.port ?? port,
    altPort: bound[1]?.port,
    get answered() {
      return answered;
    },
    get limited() {
      return limited;
    },
    close: async () => {
      clearInterval(sweep);
      await Promise.all(sockets.map((socket) => new Promise<void>((done) => socket.close(() => done()))));
    },
  };
}

function bind(socket: Socket, host: string, port: number, log: FastifyBaseLogger): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (error: Error): void => reject(new StunBindError(port, error));
    socket.once('error', fail);
    socket.bind({ address: host, port }, () => {
      socket.off('error', fail);
      // A failing send is a client's problem, not the server's: never let it crash the process.
      socket.on('error', (error) => log.warn({ err: error }, 'STUN socket error'));
      resolve();
    });
  });
}
