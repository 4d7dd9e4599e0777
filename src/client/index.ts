/**
 * The pairup client: `findPeer()` asks a pairup server for a partner and resolves to the match.
 * It waits as long as its own deadline allows, asking again when a wait ends in 408, and honours
 * Retry-After on 429 and 503. HTTP/2 when the server offers it, HTTP/1.1 otherwise.
 *
 *   import { findPeer } from 'pairup/client';
 *   const match = await findPeer({ url: 'https://pairup.example:3030', code: 'amber-lynx-17' });
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Compile } from 'typebox/compile';
import { request } from 'undici';
import { GroupMatch, MatchWithMeta, type Match } from '../protocol/index.js';
import { httpsHint, keyHeader, reachFailure, retryFloorMs, startCall, type FindGroupOptions, type FindPeerOptions } from './call.js';
import { NoPeerError, PairupError } from './errors.js';

export { DEFAULT_TIMEOUT_MS, type FindGroupOptions, type FindPeerOptions } from './call.js';
export { NoPeerError, PairupError } from './errors.js';
export { connectPeer, type ChannelEnd, type ConnectPeerOptions, type PeerChannel } from './signal.js';
export { punch, type PunchedPath, type PunchOptions } from './punch.js';
export { reportOutcome, type LinkOutcome, type Outcome } from './outcome.js';
export { DEFAULT_STUN_TIMEOUT_MS, discoverNat, StunError, stunMapping, type NatMapping, type NatOptions, type NatReport } from './nat.js';
/** The server's answer: where the partner is, and what the two now share (src/protocol). */
export type { Match, NatKind, PunchMessage, PunchRequest, PunchStrategy } from '../protocol/index.js';
/** The answer for a group of more than two: every other member by index, and whom this one offers to. */
export type { GroupMatch, GroupMember } from '../protocol/index.js';

/** Retry-After assumed when a 429 or 503 does not say. */
const DEFAULT_RETRY_S = 1;
/** How long past its deadline an answer may still arrive (network time for the server's own 408). */
const ANSWER_GRACE_MS = 1000;
/** The most of an answer that is read: a match with the largest meta is under 16 KiB. */
const MAX_ANSWER_BYTES = 64 * 1024;
/** The most of a server's error message that is kept. */
const MAX_MESSAGE_CHARS = 500;

const isMatch = Compile(MatchWithMeta);
const isGroupMatch = Compile(GroupMatch);

interface ErrorBody {
  readonly error?: unknown;
  readonly message?: unknown;
  /** With invalid_timeout: the longest wait the server allows. */
  readonly maxTimeoutS?: unknown;
}

/**
 * Finds a partner through the pairup server at `options.url`; with `size` above 2, the other members
 * of a group (a {@link GroupMatch}).
 */
export async function findPeer(options: FindPeerOptions & { readonly size?: 2; readonly min?: 2 }): Promise<Match>;
export async function findPeer(options: FindGroupOptions): Promise<Match | GroupMatch>;
export async function findPeer(options: FindGroupOptions): Promise<Match | GroupMatch> {
  const { timeoutMs, deadline, dispatcher, own } = startCall(options, true);
  const grouped = options.size !== undefined && options.size > 2;
  const endpoint = new URL('/', options.url);
  const origin = endpoint.origin;
  // The most the server lets one request wait, once it has said (its 400 invalid_timeout carries it).
  let serverMaxS: number | undefined;
  let startedAt = -Infinity;
  /** Waits before the next request: Retry-After, and never sooner than the retry interval allows. */
  const pause = async (retryAfterMs: number): Promise<boolean> => {
    const floorMs = retryFloorMs(startedAt);
    const waitMs = Math.max(retryAfterMs * (1 + Math.random() / 5), floorMs, 0);
    if (performance.now() + waitMs >= deadline) return false;
    await sleep(waitMs, undefined, { signal: options.signal }).catch((error: unknown) => {
      options.signal?.throwIfAborted(); // the signal's own reason, not the timer's AbortError
      throw error;
    });
    return true;
  };
  try {
    for (;;) {
      const remainingMs = deadline - performance.now();
      if (remainingMs <= 0) throw new NoPeerError(timeoutMs);
      // Each request asks to wait just what is left, so the server ends it with a clean 408.
      const waitS = Math.min(Math.max(Math.floor(remainingMs) / 1000, 0.001), serverMaxS ?? Infinity);
      const body = JSON.stringify({ pool: options.pool, code: options.code, timeout: waitS, meta: options.meta, size: options.size, min: options.min });
      // The answer must come (whole) within the wait asked for, plus network time.
      const local = AbortSignal.timeout(Math.ceil(waitS * 1000) + ANSWER_GRACE_MS);
      const signal = options.signal === undefined ? local : AbortSignal.any([options.signal, local]);
      startedAt = performance.now();
      let status = 0;
      let headers: Record<string, string | string[] | undefined> = {};
      let text: string;
      try {
        const answer = await request(endpoint, {
          dispatcher,
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json', ...keyHeader(options) },
          body,
          signal,
        });
        ({ statusCode: status, headers } = answer);
        text = await readBounded(answer.body, origin, status);
      } catch (error) {
        options.signal?.throwIfAborted();
        if (error instanceof PairupError) throw error;
        if (local.aborted) throw new PairupError(status, 'no_answer', `${origin} did not answer in time`, { cause: error });
        const what = status === 0 ? `cannot reach ${origin}` : `lost ${origin} while reading its answer`;
        throw new PairupError(status, 'unreachable', `${what}: ${reachFailure(error)}${httpsHint(endpoint)}`, { cause: error });
      }
      const parsed = parseJson(text);
      if (status === 200) {
        if (grouped ? isGroupMatch.Check(parsed) : isMatch.Check(parsed)) return parsed as Match | GroupMatch;
        throw new PairupError(status, 'invalid_answer', `${origin} answered 200 with something that is not a match`);
      }
      const { error: code, message, maxTimeoutS } = (parsed ?? {}) as ErrorBody;
      const errorCode = typeof code === 'string' && /^[a-z0-9_]{1,64}$/.test(code) ? code : `http_${status}`;
      const errorMessage = typeof message === 'string' ? message.slice(0, MAX_MESSAGE_CHARS) : `${origin} answered ${status}`;
      if (status === 408 && errorCode === 'timeout') {
        if (await pause(0)) continue;
        throw new NoPeerError(timeoutMs);
      }
      if (status === 400 && errorCode === 'invalid_timeout' && serverMaxS === undefined && typeof maxTimeoutS === 'number') {
        serverMaxS = maxTimeoutS;
        if (serverMaxS > 0) continue;
      }
      if ((status === 429 || status === 503) && (await pause(retryAfterS(headers['retry-after']) * 1000))) continue;
      throw new PairupError(status, errorCode, errorMessage);
    }
  } finally {
    await own?.destroy();
  }
}

/** The answer's body as text, refusing (and discarding) more than {@link MAX_ANSWER_BYTES}. */
async function readBounded(body: AsyncIterable<Buffer> & { destroy(): unknown }, origin: string, status: number): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of body) {
    bytes += chunk.length;
    if (bytes > MAX_ANSWER_BYTES) {
      body.destroy();
      throw new PairupError(status, 'answer_too_large', `${origin} answered with more than ${MAX_ANSWER_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function retryAfterS(header: string | string[] | undefined): number {
  const value = Number(Array.isArray(header) ? header[0] : header);
  return Number.isFinite(value) && value >= 0 ? Math.min(value, 3600) : DEFAULT_RETRY_S;
}
