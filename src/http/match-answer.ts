import type { Outcome, Room } from '../core/types.js';
import type { GroupMatch, GroupMember, IceServer, Match } from '../protocol/schemas.js';

/**
 * What a matched client is told, over HTTP (`GET /`, `POST /`) and WebSocket alike: the match, its
 * own and its partner's addresses, and (`withMeta`) what the partner chose to share.
 */
type Matched = Extract<Outcome, { kind: 'matched' }>;

export function matchAnswer(room: Room, self: string, outcome: Matched, iceServers: IceServer[], withMeta: true): Match;
export function matchAnswer(room: Room, self: string, outcome: Matched, iceServers: IceServer[], withMeta: boolean): Match | Omit<Match, 'peerMeta'>;
export function matchAnswer(room: Room, self: string, outcome: Matched, iceServers: IceServer[], withMeta: boolean): Match | Omit<Match, 'peerMeta'> {
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
    iceServers,
  };
  // POST clients hear what the partner chose to share; null when it shared nothing.
  return withMeta ? { ...body, peerMeta: peer.meta ?? null } : body;
}

type Grouped = Extract<Outcome, { kind: 'grouped' }>;

/**
 * What a member of a group of more than two is told: the group, its own place, every other member
 * (with what each chose to share, `withMeta`), and whom it offers to in a mesh (the higher indexes).
 */
export function groupAnswer(room: Room, self: string, outcome: Grouped, iceServers: IceServer[], withMeta: boolean): GroupMatch {
  const members: GroupMember[] = [];
  const offerTo: number[] = [];
  outcome.members.forEach((member, index) => {
    if (index === outcome.index) return;
    const entry = { index, address: member.address, via: member.via, portIsSource: member.via === 'socket' };
    members.push(withMeta ? { ...entry, meta: member.meta ?? null } : entry);
    if (index > outcome.index) offerTo.push(index);
  });
  return {
    matchId: outcome.matchId,
    [room.kind]: room.name,
    secret: outcome.secret,
    size: outcome.members.length,
    self: { index: outcome.index, address: self },
    members,
    offerTo,
    waitedMs: Math.round(outcome.waitedMs),
    iceServers,
  };
}

/** The text answer for a group: the other members' addresses, one a line, by index. */
export function groupText(outcome: Grouped): string {
  let text = '';
  outcome.members.forEach((member, index) => {
    if (index !== outcome.index) text += `${member.address}\n`;
  });
  return text;
}
