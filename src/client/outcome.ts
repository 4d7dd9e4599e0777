/**
 * `reportOutcome()`: tells the server how this side's connection to its partner went (a group's
 * member: to the member `to`), proving the match with an HMAC of its id under the match secret (the
 * secret itself is never sent).
 *
 *   await reportOutcome({ url, ca }, match, { via: 'direct', ms: Date.now() - matchedAt });
 *   await reportOutcome({ url, ca }, group, { via: 'failed', to: 2 });
 */
import { createHmac } from 'node:crypto';
import { Agent, request } from 'undici';
import { OUTCOME_PATH, type ConnectionVia } from '../protocol/outcome.js';
import type { GroupMatch, Match } from '../protocol/index.js';
import { httpsHint, reachFailure, type FindPeerOptions } from './call.js';
import { PairupError } from './errors.js';

/** How it went: connected (directly or through a relay) after `ms` from the match, or not at all. */
export type Outcome = { readonly via: Exclude<ConnectionVia, 'failed'>; readonly ms: number } | { readonly via: 'failed' };

/** A group's link: which other member it is to (its `index` in the answer's `members`). */
export type LinkOutcome = Outcome & { readonly to: number };

export async function reportOutcome(
  options: Pick<FindPeerOptions, 'url' | 'ca' | 'dispatcher' | 'signal'>,
  match: Pick<GroupMatch, 'matchId' | 'secret' | 'size' | 'self'>,
  outcome: LinkOutcome,
): Promise<void>;
export async function reportOutcome(
  options: Pick<FindPeerOptions, 'url' | 'ca' | 'dispatcher' | 'signal'>,
  match: Pick<Match, 'matchId' | 'secret' | 'initiator'>,
  outcome: Outcome,
): Promise<void>;
export async function reportOutcome(
  options: Pick<FindPeerOptions, 'url' | 'ca' | 'dispatcher' | 'signal'>,
  match: Pick<Match, 'matchId' | 'secret' | 'initiator'> | Pick<GroupMatch, 'matchId' | 'secret' | 'size' | 'self'>,
  outcome: Outcome | LinkOutcome,
): Promise<void> {
  const url = new URL(OUTCOME_PATH, options.url);
  const ca = options.ca as string | Buffer | (string | Buffer)[] | undefined;
  const own = options.dispatcher === undefined ? new Agent({ connect: ca === undefined ? {} : { ca } }) : undefined;
  // A pair's answer has `initiator` (its `self` is an address); a group's has `self.index` instead.
  const side = 'initiator' in match ? { initiator: match.initiator } : { size: match.size, member: match.self.index, peer: (outcome as LinkOutcome).to };
  const body = {
    matchId: match.matchId,
    proof: createHmac('sha256', match.secret).update(match.matchId).digest('base64url'),
    ...side,
    ...(outcome.via === 'failed' ? { via: outcome.via } : { via: outcome.via, ms: Math.max(0, Math.round(outcome.ms)) }),
  };
  try {
    let response;
    try {
      response = await request(url, {
        method: 'POST',
        dispatcher: options.dispatcher ?? (own as Agent),
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
    } catch (error) {
      throw new PairupError(0, 'unreachable', `cannot reach ${url.origin}: ${reachFailure(error)}${httpsHint(url)}`, { cause: error });
    }
    const text = await response.body.text();
    if (response.statusCode === 204) return;
    let parsed: { error?: unknown; message?: unknown } = {};
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      // not JSON: reported by status alone
    }
    const code = typeof parsed.error === 'string' ? parsed.error : 'http_error';
    const message = typeof parsed.message === 'string' ? parsed.message : `HTTP ${response.statusCode}`;
    throw new PairupError(response.statusCode, code, message.slice(0, 500));
  } finally {
    await own?.close();
  }
}
