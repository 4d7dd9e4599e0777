import type { Outcome, Room } from '../core/types.js';
import type { Match } from '../protocol/schemas.js';

/**
 * What a matched client is told, over HTTP (`GET /`, `POST /`) and WebSocket alike: the match, its
 * own and its partner's addresses, and (`withMeta`) what the partner chose to share.
 */
type Matched = Extract<Outcome, { kind: 'matched' }>;

export function matchAnswer(room: Room, self: string, outcome: Matched, withMeta: true): Match;
export function matchAnswer(room: Room, self: string, outcome: Matched, withMeta: boolean): Match | Omit<Match, 'peerMeta'>;
export function matchAnswer(room: Room, self: string, outcome: Matched, withMeta: boolean): Match | Omit<Match, 'peerMeta'> {
  const { peer } = outcome;
  const body = {
    matchId: outcome.matchId,
    [room.kind]: room.name,
    secret: outcome.secret,
    self,
    peer: peer.address,
    via: peer.via,
    portIsSource: peer.via === 'socket',
    initiator: outcome.initiator,
    waitedMs: Math.round(outcome.waitedMs),
  };
  // POST clients hear what the partner chose to share; null when it shared nothing.
  return withMeta ? { ...body, peerMeta: peer.meta ?? null } : body;
}
