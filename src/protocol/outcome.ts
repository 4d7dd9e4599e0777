/**
 * How a client says how its connection to its partner went, after the match: over HTTP
 * (`POST /outcome`, proving the match with an HMAC of its id under the match secret) or over the
 * WebSocket it was matched on (`connected` / `failed`). Shared by the server and every client.
 */
import { GROUP_SIZE_LIMIT, SECRET_PATTERN } from './schemas.js';

export const OUTCOME_PATH = '/outcome';
/** How a side got connected, or that it gave up. */
export const CONNECTION_VIAS = ['direct', 'relay', 'failed'] as const;
export type ConnectionVia = (typeof CONNECTION_VIAS)[number];
/** The longest time to connect a report may give, in milliseconds: ten minutes. */
export const CONNECT_MAX_MS = 600_000;
export const OUTCOME_BODY_LIMIT_BYTES = 1024;

/** `POST /outcome`'s body. `proof` is base64url(HMAC-SHA256(secret, matchId)); the secret itself is never sent. */
export interface OutcomeReport {
  readonly matchId: string;
  readonly proof: string;
  /** In a pair, which side reports: the match's `initiator` field. Each side is counted once. */
  readonly initiator?: boolean;
  /**
   * In a group, which link: `size` is the answer's (how many members it has), `member` the reporting
   * member's own index (the answer's `self.index`), `peer` the other member's. Each member's report
   * of each link is counted once.
   */
  readonly size?: number;
  readonly member?: number;
  readonly peer?: number;
  readonly via: ConnectionVia;
  /** From the answer to the connection, when connected. */
  readonly ms?: number;
}

/** What is wrong with a report (`invalid_outcome`), and the field it is about. */
export interface BadReport {
  readonly why: string;
  readonly field: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const PROOF = new RegExp(SECRET_PATTERN);
const FIELDS = ['matchId', 'proof', 'initiator', 'size', 'member', 'peer', 'via', 'ms'];

function bad(why: string, field: string): BadReport {
  return { why, field };
}

/** Whether `ms` is a time to connect a report may give: whole milliseconds, 0 to ten minutes. */
export function isConnectMs(ms: unknown): ms is number {
  return typeof ms === 'number' && Number.isInteger(ms) && ms >= 0 && ms <= CONNECT_MAX_MS;
}

/** Reads `POST /outcome`'s parsed body: the report, or what is wrong with it (the first thing). */
export function parseOutcomeReport(body: unknown): OutcomeReport | BadReport {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return bad('the body must be a JSON object, sent with Content-Type: application/json', 'body');
  const value = body as Record<string, unknown>;
  const unknown = Object.keys(value).find((key) => !FIELDS.includes(key));
  if (unknown !== undefined) return bad(`unknown field ${JSON.stringify(unknown)}; allowed: ${FIELDS.join(', ')}`, unknown);
  const { matchId, proof, initiator, size, member, peer, via, ms } = value;
  if (typeof matchId !== 'string' || !UUID.test(matchId)) return bad('matchId must be the matchId of the answer', 'matchId');
  if (typeof proof !== 'string' || !PROOF.test(proof)) return bad('proof must be base64url(HMAC-SHA256(secret, matchId)), 43 characters', 'proof');
  const side = sideOf(initiator, size, member, peer);
  if ('why' in side) return side;
  if (!CONNECTION_VIAS.includes(via as ConnectionVia)) return bad(`via must be one of ${CONNECTION_VIAS.join(', ')}`, 'via');
  if (via === 'failed') {
    if (ms !== undefined) return bad('ms is for a connection made; a failed one has none', 'ms');
    return { matchId, proof, ...side, via };
  }
  if (!isConnectMs(ms)) return bad(`ms must be whole milliseconds from the answer to the connection, 0 to ${CONNECT_MAX_MS}`, 'ms');
  return { matchId, proof, ...side, via: via as ConnectionVia, ms };
}

/** Whether `index` is a whole number from 0 to below `size`. */
function isIndexBelow(index: unknown, size: number): index is number {
  return typeof index === 'number' && Number.isInteger(index) && index >= 0 && index < size;
}

/** Which side a report is from: a pair's (`initiator`), or a group's link (`member` to `peer` of `size`), never both. */
function sideOf(initiator: unknown, size: unknown, member: unknown, peer: unknown): { initiator: boolean } | { size: number; member: number; peer: number } | BadReport {
  if (size === undefined && member === undefined && peer === undefined) {
    if (initiator === undefined) return bad('initiator must be the initiator field of the answer (true or false); in a group, give size, member and peer instead', 'initiator');
    if (typeof initiator !== 'boolean') return bad('initiator must be the initiator field of the answer (true or false)', 'initiator');
    return { initiator };
  }
  if (initiator !== undefined) return bad('a report is from a pair (initiator) or from a group (size, member and peer), not both', 'initiator');
  if (!(isIndexBelow(size, GROUP_SIZE_LIMIT + 1) && size >= 2)) return bad(`size must be the size field of the group's answer, a whole number from 2 to ${GROUP_SIZE_LIMIT}`, 'size');
  const below = `a whole number from 0 to ${size - 1} (size - 1)`;
  if (!isIndexBelow(member, size)) return bad(`member must be this member's index (the answer's self.index), ${below}`, 'member');
  if (!isIndexBelow(peer, size)) return bad(`peer must be the index of the member this link is to, ${below}`, 'peer');
  if (peer === member) return bad('peer must be another member than member', 'peer');
  return { size, member, peer };
}

export function isBadReport(parsed: OutcomeReport | BadReport): parsed is BadReport {
  return 'why' in parsed;
}
