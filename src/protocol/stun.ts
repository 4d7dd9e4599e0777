/**
 * The STUN wire format (RFC 8489) and the RFC 5780 attributes pairup uses: reading a message into its
 * attributes, writing one, and the address attributes. The STUN responder (net/stun.ts) and the Node
 * client (client/nat.ts) both speak through it. Plain Uint8Array and DataView, no imports: like the
 * rest of the protocol, whatever speaks to pairup can use it.
 */

export const MAGIC_COOKIE = 0x2112a442;
export const HEADER_BYTES = 20;
export const BINDING_REQUEST = 0x0001;
export const BINDING_SUCCESS = 0x0101;
export const BINDING_ERROR = 0x0111;

/** Attribute types (RFC 8489 section 18.3, RFC 5780 section 9.1). */
export const MAPPED_ADDRESS = 0x0001;
export const CHANGE_REQUEST = 0x0003;
export const ERROR_CODE = 0x0009;
export const UNKNOWN_ATTRIBUTES = 0x000a;
export const XOR_MAPPED_ADDRESS = 0x0020;
export const RESPONSE_PORT = 0x0027;
export const RESPONSE_ORIGIN = 0x802b;
export const OTHER_ADDRESS = 0x802c;

/** CHANGE-REQUEST flags (RFC 5780 section 7.2). */
export const CHANGE_IP = 0x04;
export const CHANGE_PORT = 0x02;

const FAMILY_IPV4 = 0x01;
const FAMILY_IPV6 = 0x02;
const IPV4 = /^(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}$/;

export interface Attribute {
  readonly type: number;
  readonly value: Uint8Array;
}

export interface StunMessage {
  readonly type: number;
  /** The 12 bytes after the cookie. */
  readonly transaction: Uint8Array;
  readonly attributes: readonly Attribute[];
}

const view = (bytes: Uint8Array): DataView => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/**
 * A well-formed STUN message, or undefined: a 20-byte header with the magic cookie and the two zero
 * bits, a length that is a multiple of 4 and matches the datagram, and attributes (each padded to 4
 * bytes) that exactly fill it. Attribute values are not interpreted here.
 */
export function parseMessage(message: Uint8Array): StunMessage | undefined {
  if (message.length < HEADER_BYTES) return undefined;
  const data = view(message);
  const type = data.getUint16(0);
  if (type & 0xc000) return undefined;
  const length = data.getUint16(2);
  if (length % 4 !== 0 || HEADER_BYTES + length !== message.length) return undefined;
  if (data.getUint32(4) !== MAGIC_COOKIE) return undefined;
  const attributes: Attribute[] = [];
  let offset = HEADER_BYTES;
  while (offset + 4 <= message.length) {
    const end = offset + 4 + data.getUint16(offset + 2);
    if (end > message.length) return undefined;
    attributes.push({ type: data.getUint16(offset), value: message.subarray(offset + 4, end) });
    offset += 4 + Math.ceil((end - offset - 4) / 4) * 4;
  }
  if (offset !== message.length) return undefined;
  return { type, transaction: message.subarray(8, HEADER_BYTES), attributes };
}

/** The first attribute of `type`, as RFC 8489 says (later duplicates are ignored). */
export function attribute(message: StunMessage, type: number): Uint8Array | undefined {
  return message.attributes.find((a) => a.type === type)?.value;
}

/** A message of `type` with these attributes, each padded with zeros to 4 bytes. */
export function encodeMessage(type: number, transaction: Uint8Array, attributes: readonly Attribute[]): Uint8Array {
  const length = attributes.reduce((sum, a) => sum + 4 + Math.ceil(a.value.length / 4) * 4, 0);
  const message = new Uint8Array(HEADER_BYTES + length);
  const data = view(message);
  data.setUint16(0, type);
  data.setUint16(2, length);
  data.setUint32(4, MAGIC_COOKIE);
  message.set(transaction.subarray(0, 12), 8);
  let offset = HEADER_BYTES;
  for (const { type: attributeType, value } of attributes) {
    data.setUint16(offset, attributeType);
    data.setUint16(offset + 2, value.length);
    message.set(value, offset + 4);
    offset += 4 + Math.ceil(value.length / 4) * 4;
  }
  return message;
}

/**
 * The value of an address attribute (MAPPED-ADDRESS layout: reserved, family, port, address) for a
 * plain IPv4 address or an IPv6 address (a zone after `%` dropped). With `transaction`, XORed as
 * XOR-MAPPED-ADDRESS is: the port and address with the cookie, then (IPv6) the transaction ID.
 */
export function addressValue(ip: string, port: number, transaction?: Uint8Array): Uint8Array {
  const ipv4 = IPV4.test(ip);
  const bytes = ipv4 ? Uint8Array.from(ip.split('.').map(Number)) : ipv6Bytes(ip);
  const value = new Uint8Array(4 + bytes.length);
  const mask = transaction === undefined ? undefined : xorMask(transaction);
  value[1] = ipv4 ? FAMILY_IPV4 : FAMILY_IPV6;
  view(value).setUint16(2, port ^ (mask === undefined ? 0 : MAGIC_COOKIE >>> 16));
  for (let i = 0; i < bytes.length; i++) value[4 + i] = (bytes[i] ?? 0) ^ (mask?.[i] ?? 0);
  return value;
}

/**
 * The address an address attribute's value names (XORed when `transaction` is given), IPv6 in its
 * canonical spelling; undefined when the value is not a well-formed IPv4 or IPv6 address.
 */
export function readAddress(value: Uint8Array, transaction?: Uint8Array): { readonly ip: string; readonly port: number } | undefined {
  const family = value.length >= 4 ? value[1] : undefined;
  const size = family === FAMILY_IPV4 ? 4 : family === FAMILY_IPV6 ? 16 : undefined;
  if (size === undefined || value.length !== 4 + size) return undefined;
  const mask = transaction === undefined ? undefined : xorMask(transaction);
  const port = view(value).getUint16(2) ^ (mask === undefined ? 0 : MAGIC_COOKIE >>> 16);
  const bytes = value.subarray(4).map((byte, i) => byte ^ (mask?.[i] ?? 0));
  if (size === 4) return { ip: [...bytes].join('.'), port };
  const groups = Array.from({ length: 8 }, (_, i) => view(bytes).getUint16(i * 2).toString(16)).join(':');
  // The URL parser writes IPv6 hosts canonically (RFC 5952).
  return { ip: new URL(`http://[${groups}]/`).hostname.slice(1, -1), port };
}

/** `ip:port`, IPv6 in brackets (`[2001:db8::1]:3478`): how pairup writes addresses. */
export function formatMapping(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** An ERROR-CODE value (RFC 8489 section 14.8): class and number, then the reason phrase. */
export function errorCodeValue(code: number, reason: string): Uint8Array {
  const phrase = new TextEncoder().encode(reason);
  const value = new Uint8Array(4 + phrase.length);
  value[2] = Math.floor(code / 100);
  value[3] = code % 100;
  value.set(phrase, 4);
  return value;
}

/** The error code an ERROR-CODE value carries (class times 100 plus number); 0 when it is too short. */
export function errorCodeOf(value: Uint8Array): number {
  return value.length >= 4 ? ((value[2] ?? 0) & 0x07) * 100 + (value[3] ?? 0) : 0;
}

/** Whether two byte strings are equal (transaction IDs). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** The cookie then the transaction ID: what XOR-MAPPED-ADDRESS's address is XORed with. */
function xorMask(transaction: Uint8Array): Uint8Array {
  const mask = new Uint8Array(16);
  view(mask).setUint32(0, MAGIC_COOKIE);
  mask.set(transaction.subarray(0, 12), 4);
  return mask;
}

/** The 16 bytes of an IPv6 address. */
function ipv6Bytes(ip: string): Uint8Array {
  const canonical = new URL(`http://[${ip.split('%', 1)[0] ?? ''}]/`).hostname.slice(1, -1);
  const [head = '', tail] = canonical.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((group) => parseInt(group, 16)));
  const [before, after] = [parse(head), parse(tail ?? '')];
  const groups = tail === undefined ? before : [...before, ...Array<number>(8 - before.length - after.length).fill(0), ...after];
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => view(bytes).setUint16(i * 2, group));
  return bytes;
}
