/**
 * How a client says how its connection to its partner went, after the match: over HTTP
 * (`POST /outcome`, proving the match with an HMAC of its id under the match secret) or over the
 * WebSocket it was matched on (`connected` / `failed`). Shared by the server and every client.
 */
import { SECRET_PATTERN } from './schemas.js';

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
  /** Which side reports: the match's `initiator` field. Each side is counted once. */
  readonly initiator: boolean;
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
const FIELDS = ['matchId', 'proof', 'initiator', 'via', 'ms'];

function bad(why: string, field: string): BadReport {
  return { why, field };
}

/** Whether `ms` is a time to connect a report may give: whole milliseconds, 0 to ten minutes. */
export function isConnectMs(ms: unknown): ms is number {
  return typeof ms === 'number' && Number.isInteger(ms) && ms >= 0 && ms <= CONNECT_MAX_MS;
}

/** Reads `POST /outcome`'s parsed body: the report, or what is wrong with it (the first thing). */
export function parseOutcomeReport(body: unknown): OutcomeReport | BadReport {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return bad('the body must be a JSON object', 'body');
  const value = body as Record<string, unknown>;
  const unknown = Object.keys(value).find((key) => !FIELDS.includes(key));
  if (unknown !== undefined) return bad(`unknown field ${JSON.stringify(unknown)}; allowed: ${FIELDS.join(', ')}`, unknown);
  const { matchId, proof, initiator, via, ms } = value;
  if (typeof matchId !== 'string' || !UUID.test(matchId)) return bad('matchId must be the matchId of the answer', 'matchId');
  if (typeof proof !== 'string' || !PROOF.test(proof)) return bad('proof must be base64url(HMAC-SHA256(secret, matchId)), 43 characters', 'proof');
  if (typeof initiator !== 'boolean') return bad('initiator must be the initiator field of the answer (true or false)', 'initiator');
  if (!CONNECTION_VIAS.includes(via as ConnectionVia)) return bad(`via must be one of ${CONNECTION_VIAS.join(', ')}`, 'via');
  if (via === 'failed') {
    if (ms !== undefined) return bad('ms is for a connection made; a failed one has none', 'ms');
    return { matchId, proof, initiator, via };
  }
  if (!isConnectMs(ms)) return bad(`ms must be whole milliseconds from the answer to the connection, 0 to ${CONNECT_MAX_MS}`, 'ms');
  return { matchId, proof, initiator, via: via as ConnectionVia, ms };
}

export function isBadReport(parsed: OutcomeReport | BadReport): parsed is BadReport {
  return 'why' in parsed;
}
