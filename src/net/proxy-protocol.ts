/**
 * The PROXY protocol (v1 text and v2 binary, as HAProxy, AWS NLB and others send it): a TCP load
 * balancer prefixes each connection with the client's real source address and port. With
 * PROXY_PROTOCOL=on the server reads that header before the TLS handshake and reports the client's
 * own address and port, exactly as if it had connected directly. A connection without a valid
 * header, or from an address outside TRUST_PROXY, is closed.
 */
import { isIPv4, isIPv6, SocketAddress, type Server as NetServer, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { FastifyBaseLogger } from 'fastify';

export interface SourceAddress {
  readonly address: string;
  readonly port: number;
  readonly family: 'IPv4' | 'IPv6';
}

export type ProxyHeader =
  /** The client's source address, as the balancer saw it. */
  | { readonly kind: 'proxy'; readonly source: SourceAddress; readonly length: number }
  /** The balancer speaking for itself (health checks), or a source it cannot name: use the connection's. */
  | { readonly kind: 'local'; readonly length: number };

export type ParseResult = ProxyHeader | { readonly kind: 'incomplete' } | { readonly kind: 'invalid'; readonly reason: string };

const V1_PREFIX = Buffer.from('PROXY ');
const V1_MAX_BYTES = 107;
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_HEADER_BYTES = 16;
const PORT = /^(0|[1-9][0-9]{0,4})$/;

/** Reads a PROXY protocol header at the start of `data`: the header, or that more bytes are needed, or why not. */
export function parseProxyHeader(data: Buffer): ParseResult {
  if (startsWith(data, V2_SIGNATURE)) return data.length < V2_SIGNATURE.length ? incomplete : parseV2(data);
  if (startsWith(data, V1_PREFIX)) return data.length < V1_PREFIX.length ? incomplete : parseV1(data);
  return { kind: 'invalid', reason: 'no PROXY protocol header' };
}

const incomplete = { kind: 'incomplete' } as const;

/** Whether `data` and `prefix` agree on their common length. */
function startsWith(data: Buffer, prefix: Buffer): boolean {
  const n = Math.min(data.length, prefix.length);
  return data.subarray(0, n).equals(prefix.subarray(0, n));
}

function parseV1(data: Buffer): ParseResult {
  const end = data.subarray(0, V1_MAX_BYTES).indexOf('\r\n');
  if (end < 0) return data.length < V1_MAX_BYTES ? incomplete : { kind: 'invalid', reason: 'PROXY v1 line too long' };
  const line = data.subarray(0, end).toString('latin1');
  const length = end + 2;
  const [, protocol, source, destination, sourcePort, destinationPort, ...rest] = line.split(' ');
  if (protocol === 'UNKNOWN') return { kind: 'local', length };
  const family = protocol === 'TCP4' ? 'IPv4' : protocol === 'TCP6' ? 'IPv6' : undefined;
  const valid = family === 'IPv4' ? isIPv4 : isIPv6;
  if (
    family === undefined ||
    rest.length > 0 ||
    source === undefined ||
    destination === undefined ||
    !valid(source) ||
    !valid(destination) ||
    !validPort(sourcePort) ||
    !validPort(destinationPort)
  ) {
    return { kind: 'invalid', reason: `malformed PROXY v1 line ${JSON.stringify(line.slice(0, 120))}` };
  }
  return { kind: 'proxy', source: { address: canonical(source, family), port: Number(sourcePort), family }, length };
}

/** An address as Node writes it (`2001:db8::9`, not `2001:DB8:0:0:0:0:0:9`). */
function canonical(address: string, family: 'IPv4' | 'IPv6'): string {
  return new SocketAddress({ address, family: family === 'IPv4' ? 'ipv4' : 'ipv6' }).address;
}

function validPort(text: string | undefined): boolean {
  return text !== undefined && PORT.test(text) && Number(text) <= 65_535;
}

function parseV2(data: Buffer): ParseResult {
  if (data.length < V2_HEADER_BYTES) return incomplete;
  const versionCommand = data.readUInt8(12);
  const familyTransport = data.readUInt8(13);
  const length = V2_HEADER_BYTES + data.readUInt16BE(14);
  if (versionCommand >> 4 !== 2) return { kind: 'invalid', reason: `PROXY v2 version ${versionCommand >> 4}` };
  const command = versionCommand & 0x0f;
  if (command > 1) return { kind: 'invalid', reason: `PROXY v2 command ${command}` };
  if (data.length < length) return incomplete;
  // LOCAL: the balancer's own connection (a health check); UNSPEC: nothing to report.
  if (command === 0 || familyTransport === 0x00) return { kind: 'local', length };
  const body = data.subarray(V2_HEADER_BYTES, length);
  if (familyTransport === 0x11 && body.length >= 12) {
    const address = [...body.subarray(0, 4)].join('.');
    return { kind: 'proxy', source: { address, port: body.readUInt16BE(8), family: 'IPv4' }, length };
  }
  if (familyTransport === 0x21 && body.length >= 36) {
    const groups = Array.from({ length: 8 }, (_, i) => body.readUInt16BE(i * 2).toString(16));
    const address = canonical(groups.join(':'), 'IPv6');
    return { kind: 'proxy', source: { address, port: body.readUInt16BE(32), family: 'IPv6' }, length };
  }
  return { kind: 'invalid', reason: `PROXY v2 address family/transport 0x${familyTransport.toString(16).padStart(2, '0')} not supported` };
}

/** A socket's bytes after the PROXY header, as a stream the TLS layer can read (what was read already, then the rest). */
class AfterHeader extends Duplex {
  readonly #socket: Socket;

  /**
   * @param address the client's address from the header, or (LOCAL) the balancer's connection's
   */
  constructor(
    socket: Socket,
    rest: Buffer,
    readonly address: SourceAddress,
  ) {
    super();
    this.#socket = socket;
    if (rest.length > 0) this.push(rest);
    socket.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('close', () => this.destroy());
    socket.on('error', (error) => this.destroy(error));
  }

  override _read(): void {
    this.#socket.resume();
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#socket.write(chunk, encoding, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#socket.end(callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#socket.destroy();
    callback(error);
  }
}

export interface ProxyProtocolOptions {
  /** Whether a balancer at this address may speak for clients (TRUST_PROXY). */
  readonly trusted: (address: string) => boolean;
  /** Time a connection has to send its header. */
  readonly timeoutMs: number;
  readonly log: FastifyBaseLogger;
}

/**
 * Makes a TLS server read a PROXY protocol header before each TLS handshake. The header's source
 * becomes the connection's remote address and port, for HTTP/1.1 and HTTP/2 alike.
 */
export function acceptProxyProtocol(server: NetServer, options: ProxyProtocolOptions): void {
  // The TLS server's own listener starts the handshake on each new TCP connection; it now runs
  // after the header has been read. Other 'connection' listeners (keep-alive) still see the socket.
  const startTls = server.listeners('connection').find((listener) => listener.name === 'tlsConnectionListener');
  if (startTls === undefined) throw new Error('PROXY_PROTOCOL: this Node.js TLS server has no tlsConnectionListener');
  server.removeListener('connection', startTls as (socket: Socket) => void);

  server.on('connection', (socket: Socket) => {
    const balancer = socket.remoteAddress ?? '';
    const refuse = (reason: string): void => {
      options.log.debug({ remote: balancer, reason }, 'PROXY protocol: connection refused');
      socket.destroy();
    };
    if (!options.trusted(balancer)) return refuse('not a trusted proxy (TRUST_PROXY)');
    let received: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => refuse('no PROXY header in time'), options.timeoutMs);
    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const header = parseProxyHeader(received);
      if (header.kind === 'incomplete') return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      if (header.kind === 'invalid') return refuse(header.reason);
      socket.off('error', onError);
      socket.pause();
      const address: SourceAddress =
        header.kind === 'proxy'
          ? header.source
          : { address: balancer, port: socket.remotePort ?? 0, family: socket.remoteFamily === 'IPv6' ? 'IPv6' : 'IPv4' };
      (startTls as (socket: Duplex) => void).call(server, new AfterHeader(socket, received.subarray(header.length), address));
    };
    const onClose = (): void => clearTimeout(timer);
    // A client that resets the connection mid-header is its own problem; unheard, the error would
    // be thrown. (Once the header is read, the stream after it listens for errors.)
    const onError = (error: Error): void => refuse(error.message);
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.on('error', onError);
  });

  // The TLS socket over a header-stripped stream has no address of its own: give it the client's
  // (the balancer's, for LOCAL headers). Runs before the HTTP layer sees the connection. This relies
  // on two Node.js internals, verified on Node 20 by test/proxy-protocol.test.ts: the TLS socket's
  // handle leads to the stream it wraps, and a socket's address is read from its cached _peername.
  server.prependListener('secureConnection', (tlsSocket: TLSSocket) => {
    const stream = (tlsSocket as unknown as { _handle?: { _parentWrap?: { stream?: unknown } } })._handle?._parentWrap?.stream;
    if (!(stream instanceof AfterHeader)) return;
    (tlsSocket as unknown as { _peername: SourceAddress })._peername = stream.address;
  });
}
