/**
 * Knowing the NAT: a socket's public UDP mapping (STUN Binding), and whether its NAT maps each
 * destination apart, found by asking the server's two STUN ports (RFC 5780, one IP: the alternate port
 * is named by OTHER-ADDRESS). Equal mappings: endpoint-independent; different: endpoint-dependent.
 *
 *   import { discoverNat } from 'pairup/client';
 *   const report = await discoverNat(socket, { host: 'pairup.example', port: 3030 });
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:dgram';
import {
  attribute,
  BINDING_ERROR,
  BINDING_REQUEST,
  BINDING_SUCCESS,
  encodeMessage,
  ERROR_CODE,
  errorCodeOf,
  formatMapping,
  MAPPED_ADDRESS,
  OTHER_ADDRESS,
  parseMessage,
  readAddress,
  sameBytes,
  XOR_MAPPED_ADDRESS,
} from '../protocol/stun.js';

export type NatMapping = 'independent' | 'dependent';

export interface NatReport {
  /** This socket's mapping towards the server's STUN port, `ip:port` (IPv6 in brackets). */
  readonly mapping: string;
  /** `unknown` when the server names no OTHER-ADDRESS (no STUN_ALT_PORT) or its alternate port never answered. */
  readonly nat: NatMapping | 'unknown';
  /** The mapping the alternate port saw, when it answered. */
  readonly alternate?: string;
}

export interface NatOptions {
  /** How long to keep asking, in all; default {@link DEFAULT_STUN_TIMEOUT_MS}. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** What a STUN exchange gives up after, by default. */
export const DEFAULT_STUN_TIMEOUT_MS = 5000;
/** The first retransmission (RFC 8489's RTO), doubled each time up to {@link MAX_RETRANSMIT_MS}. */
const FIRST_RETRANSMIT_MS = 250;
const MAX_RETRANSMIT_MS = 2000;

/** A STUN server that answered, but not with a mapping. */
export class StunError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StunError';
  }
}

interface Binding {
  readonly mapping: string;
  /** OTHER-ADDRESS, when the server named one. */
  readonly other: { readonly ip: string; readonly port: number } | undefined;
}

/**
 * Asks `host`:`port` for this socket's mapping, sending a Binding request again (at 250 ms, then
 * doubling) until it is answered. Only the answer to its own transaction is taken; the socket's other
 * datagrams still reach its other listeners, and its own listeners are removed when it settles.
 * Rejects with a {@link StunError} after `timeoutMs` or on an error answer, with the signal's reason
 * when aborted.
 */
export async function stunMapping(socket: Socket, host: string, port: number, options: NatOptions = {}): Promise<string> {
  return (await binding(socket, host, port, options.timeoutMs ?? DEFAULT_STUN_TIMEOUT_MS, options.signal)).mapping;
}

/**
 * Whether the NAT in front of `socket` gives it the same mapping towards the server's two STUN ports.
 * The alternate port is the one OTHER-ADDRESS names, at the address it names, or at `server.host`
 * when that is unspecified (`0.0.0.0`, `::`: a server bound to every address names no address). Rejects
 * as {@link stunMapping} when the primary port does not answer; an alternate that does not answer in
 * the time left makes the report `unknown`.
 */
export async function discoverNat(socket: Socket, server: { host: string; port: number }, options: NatOptions = {}): Promise<NatReport> {
  const deadline = performance.now() + (options.timeoutMs ?? DEFAULT_STUN_TIMEOUT_MS);
  const primary = await binding(socket, server.host, server.port, deadline - performance.now(), options.signal);
  if (primary.other === undefined) return { mapping: primary.mapping, nat: 'unknown' };
  const unspecified = /^(0\.0\.0\.0|::)$/.test(primary.other.ip);
  const host = unspecified ? server.host : primary.other.ip;
  let alternate: Binding;
  try {
    alternate = await binding(socket, host, primary.other.port, deadline - performance.now(), options.signal);
  } catch (error) {
    options.signal?.throwIfAborted();
    if (error instanceof StunError) return { mapping: primary.mapping, nat: 'unknown' };
    throw error;
  }
  const nat = alternate.mapping === primary.mapping ? 'independent' : 'dependent';
  return { mapping: primary.mapping, nat, alternate: alternate.mapping };
}

function binding(socket: Socket, host: string, port: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<Binding> {
  signal?.throwIfAborted();
  const transaction = randomBytes(12);
  const request = encodeMessage(BINDING_REQUEST, transaction, []);
  const where = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return new Promise<Binding>((resolve, reject) => {
    let retransmitMs = FIRST_RETRANSMIT_MS;
    let resend: NodeJS.Timeout | undefined;
    const send = (): void => {
      // A send that fails (no route yet, socket closing) is one lost datagram: the next one may pass.
      try {
        socket.send(request, port, host, () => undefined);
      } catch {
        // The socket was closed: its 'close' listener settles.
      }
      resend = setTimeout(send, retransmitMs);
      retransmitMs = Math.min(retransmitMs * 2, MAX_RETRANSMIT_MS);
    };
    const finish = (settle: () => void): void => {
      clearTimeout(resend);
      clearTimeout(timer);
      socket.off('message', onMessage);
      socket.off('close', onClose);
      signal?.removeEventListener('abort', onAbort);
      settle();
    };
    const onMessage = (datagram: Buffer): void => {
      const message = parseMessage(datagram);
      if (message === undefined || !sameBytes(message.transaction, transaction)) return;
      if (message.type === BINDING_ERROR) {
        const code = attribute(message, ERROR_CODE);
        const status = code === undefined ? 0 : errorCodeOf(code);
        finish(() => reject(new StunError(`${where} answered the STUN Binding request with error ${status}`)));
        return;
      }
      if (message.type !== BINDING_SUCCESS) return;
      const xor = attribute(message, XOR_MAPPED_ADDRESS);
      const plain = attribute(message, MAPPED_ADDRESS);
      const mapped = xor !== undefined ? readAddress(xor, transaction) : plain === undefined ? undefined : readAddress(plain);
      if (mapped === undefined) {
        finish(() => reject(new StunError(`${where} answered the STUN Binding request without a mapped address`)));
        return;
      }
      const otherValue = attribute(message, OTHER_ADDRESS);
      const other = otherValue === undefined ? undefined : readAddress(otherValue);
      finish(() => resolve({ mapping: formatMapping(mapped.ip, mapped.port), other }));
    };
    const onClose = (): void => finish(() => reject(new StunError(`the socket was closed before ${where} answered`)));
    const onAbort = (): void => finish(() => reject(signal?.reason as Error));
    const timer = setTimeout(
      () => finish(() => reject(new StunError(`no STUN answer from ${where} within ${Math.round(timeoutMs)} ms`))),
      Math.max(timeoutMs, 0),
    );
    socket.on('message', onMessage);
    socket.once('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
    send();
  });
}
