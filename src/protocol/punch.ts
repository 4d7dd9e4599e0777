/**
 * Hole punching timed by the server, over the WebSocket. A client that will punch a UDP path says so
 * in its join (`punch`: its UDP mapping as STUN told it, and whether that mapping depends on the
 * destination). Once matched, the server measures each side's round trip and sends each a `punch`
 * message timed so that both receive it at the same instant; each side then sends at once. A client
 * may ask for another attempt (`punch_again`), {@link MAX_PUNCH_ATTEMPTS} in all.
 *
 * The strategy depends on the two mappings:
 *   both endpoint-independent (or unknown)   `timed`: each sends to the other's mapping
 *   one endpoint-dependent, one not          `spray` for the dependent side (it sends from many ports
 *                                            to the other's mapping), `probe` for the other (it sends
 *                                            to random ports of the dependent side's address)
 *   both endpoint-dependent                  `relay`: no direct attempt
 * Datagrams only ever go to the partner's own address: each side's mapping must be at the address
 * the server sees its WebSocket come from, else the pair is given `relay` (no direct attempt).
 *
 * Shared by the server and every client; no Node imports.
 */
import type { ErrorCode } from './errors.js';

export const NAT_KINDS = ['independent', 'dependent', 'unknown'] as const;
/** Whether a client's UDP mapping depends on the destination (RFC 5780's mapping behaviour). */
export type NatKind = (typeof NAT_KINDS)[number];

export const PUNCH_STRATEGIES = ['timed', 'spray', 'probe', 'relay'] as const;
export type PunchStrategy = (typeof PUNCH_STRATEGIES)[number];

/** Attempts per match, the first included. */
export const MAX_PUNCH_ATTEMPTS = 3;
/** How long each side sends for, from the instant it was told. */
export const PUNCH_MS = 10_000;
/** Ports a `spray` side sends from. */
export const SPRAY_PORTS = 256;
/** Datagrams a `probe` side sends at most in one attempt, and how many a second. */
export const PROBE_COUNT = 2048;
export const PROBE_PER_S = 250;
/** Round-trip samples the server takes on each socket before an attempt. */
export const RTT_SAMPLES = 3;

/** A join's `punch` field. */
export interface PunchRequest {
  /** This client's UDP mapping ("ip:port", "[ipv6]:port"), as the server's STUN responder told it. */
  readonly mapping: string;
  readonly nat: NatKind;
}

/** What the server tells each side of an attempt. */
export interface PunchMessage {
  readonly type: 'punch';
  /** 1, 2 or 3. */
  readonly attempt: number;
  readonly strategy: PunchStrategy;
  /** The partner's UDP mapping as it reported it (absent when it reported none) and its observed address. */
  readonly peer: { readonly mapping?: string; readonly observed: string };
  /** This side's round trip to the server, as measured (ms). */
  readonly rttMs: number;
  /** How long to send for (ms). */
  readonly ms: number;
  /** `spray`: ports to send from. */
  readonly ports?: number;
  /** `probe`: most datagrams, and their rate. */
  readonly probes?: number;
  readonly probesPerS?: number;
}

/** One side of a pair as the strategy sees it. */
export interface PunchSide {
  readonly mapping?: string;
  readonly nat: NatKind;
  /** The address the server sees its WebSocket come from ("ip:port"). */
  readonly observed: string;
}

const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** The eight groups of an IPv6 address (RFC 4291 text, a trailing dotted IPv4 allowed), or undefined. */
function ipv6Groups(host: string): number[] | undefined {
  const halves = host.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string): number[] | undefined => {
    if (part === '') return [];
    const groups: number[] = [];
    const texts = part.split(':');
    for (const [i, text] of texts.entries()) {
      if (i === texts.length - 1 && IPV4.test(text)) {
        const [a = 0, b = 0, c = 0, d = 0] = text.split('.').map(Number);
        groups.push((a << 8) | b, (c << 8) | d);
      } else if (HEX_GROUP.test(text)) groups.push(parseInt(text, 16));
      else return undefined;
    }
    return groups;
  };
  const head = parse(halves[0] ?? '');
  const tail = halves.length === 2 ? parse(halves[1] ?? '') : [];
  if (head === undefined || tail === undefined) return undefined;
  if (halves.length === 1) return head.length === 8 ? head : undefined;
  const fill = 8 - head.length - tail.length;
  return fill >= 1 ? [...head, ...Array<number>(fill).fill(0), ...tail] : undefined;
}

/**
 * One spelling of a unicast address a datagram can be sent to (IPv4-mapped IPv6 as IPv4, IPv6 as
 * its eight groups), or undefined for anything else: unspecified, broadcast, multicast, reserved.
 */
function unicastHost(host: string): string | undefined {
  if (IPV4.test(host)) {
    const first = Number(host.split('.', 1)[0]);
    return first === 0 || first >= 224 ? undefined : host;
  }
  const groups = ipv6Groups(host);
  if (groups === undefined || groups.every((group) => group === 0) || (groups[0] ?? 0) >> 8 === 0xff) return undefined;
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    return unicastHost([groups[6] ?? 0, groups[7] ?? 0].flatMap((group) => [group >> 8, group & 0xff]).join('.'));
  }
  return groups.map((group) => group.toString(16)).join(':');
}

/** The host and port of "ip:port" or "[ipv6]:port" naming a unicast address and a port from 1, or undefined. */
export function splitAddress(address: string): { readonly host: string; readonly port: number } | undefined {
  const colon = address.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const portText = address.slice(colon + 1);
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65_535) return undefined;
  const hostText = address.slice(0, colon);
  const bracketed = hostText.startsWith('[') && hostText.endsWith(']');
  const host = bracketed ? hostText.slice(1, -1) : hostText;
  if (bracketed !== host.includes(':') || unicastHost(host) === undefined) return undefined;
  return { host, port };
}

/** The host of an observed address ("ip:port", "[ipv6]:port"; its port may be 0 behind a proxy). */
function observedHost(observed: string): string {
  return observed.startsWith('[') ? observed.slice(1, observed.indexOf(']')) : observed.slice(0, observed.lastIndexOf(':'));
}

/** Whether `mapping` ("ip:port") is at the host of `observed` (the address a WebSocket comes from). */
export function mappedWhereSeen(mapping: string | undefined, observed: string): boolean {
  const split = mapping === undefined ? undefined : splitAddress(mapping);
  const host = split === undefined ? undefined : unicastHost(split.host);
  return host !== undefined && host === unicastHost(observedHost(observed));
}

/** What is wrong with a join's `punch` field, or undefined. */
export function punchProblem(value: unknown): { readonly error: ErrorCode; readonly args: readonly unknown[]; readonly field: string } | undefined {
  const wrong = (why: string) => ({ error: 'invalid_message' as const, args: [why], field: 'punch' });
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return wrong('punch must be an object {mapping, nat}');
  const fields = value as Record<string, unknown>;
  const unknown = Object.keys(fields).find((key) => key !== 'mapping' && key !== 'nat');
  if (unknown !== undefined) return wrong(`punch has unknown field ${JSON.stringify(unknown)}; allowed: mapping, nat`);
  if (typeof fields.mapping !== 'string' || splitAddress(fields.mapping) === undefined) {
    return wrong('punch.mapping must be the UDP mapping STUN gave, "ip:port" or "[ipv6]:port"');
  }
  if (fields.nat !== undefined && !(NAT_KINDS as readonly unknown[]).includes(fields.nat)) {
    return wrong(`punch.nat must be one of ${NAT_KINDS.join(', ')}`);
  }
  return undefined;
}

/** The strategy of `self` for a pair (the partner's is the same function with the sides swapped). */
export function punchStrategy(self: PunchSide, partner: PunchSide): PunchStrategy {
  // Datagrams go only to where the partner is: a mapping at another address than its WebSocket's
  // (or none) gets no direct attempt, so that no client can aim its partner's traffic elsewhere.
  if (!mappedWhereSeen(self.mapping, self.observed) || !mappedWhereSeen(partner.mapping, partner.observed)) return 'relay';
  const selfHard = self.nat === 'dependent';
  const partnerHard = partner.nat === 'dependent';
  if (selfHard && partnerHard) return 'relay';
  if (!selfHard && !partnerHard) return 'timed';
  return selfHard ? 'spray' : 'probe';
}

/** The `punch` message for `self`'s attempt: its strategy and the bounds of what it may send. */
export function punchMessage(attempt: number, self: PunchSide, partner: PunchSide, rttMs: number): PunchMessage {
  const strategy = punchStrategy(self, partner);
  return {
    type: 'punch',
    attempt,
    strategy,
    peer: { ...(partner.mapping === undefined ? {} : { mapping: partner.mapping }), observed: partner.observed },
    rttMs,
    ms: PUNCH_MS,
    ...(strategy === 'spray' ? { ports: SPRAY_PORTS } : {}),
    ...(strategy === 'probe' ? { probes: PROBE_COUNT, probesPerS: PROBE_PER_S } : {}),
  };
}
