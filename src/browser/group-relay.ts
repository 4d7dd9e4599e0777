/**
 * `joinGroup()`: waits over `/ws` for a group (`size` members), then keeps the socket as the relay
 * to every other member: signals addressed by index (`to`, `from`) and the server's word when a
 * member leaves (`peer_left`). A pair (`size` 2, answered as a pair) is told apart and relayed
 * without indexes, as the protocol has it.
 */
import type { GroupMatch, GroupMember, Match } from '../protocol/index.js';
import { PairupError } from './errors.js';
import { joinUntil, socketAttempt, wsUrl, type Attempt } from './ws-join.js';

/** A group's answer, or a pair's put the same way (`pair: true`: its signals carry no indexes). */
export interface GroupAnswer extends Omit<GroupMatch, 'members'> {
  readonly members: readonly (GroupMember & { readonly meta: Record<string, unknown> | null })[];
  readonly pair: boolean;
}

export interface GroupJoin {
  readonly url: string | URL;
  readonly pool?: string;
  readonly code?: string;
  readonly size: number;
  readonly min?: number;
  readonly meta?: Record<string, unknown>;
  readonly key?: string;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

/** The socket after the match: what `joinGroup` resolves to. */
export interface GroupRelay {
  readonly match: GroupAnswer;
  /** When the match came (performance.now()). */
  readonly matchedAt: number;
  /** Relays `data` (any JSON value) to member `to`; nothing once the socket ended. */
  send(to: number, data: unknown): void;
  /** Tells the server how the connection to member `to` went (counted once per link); nothing once the socket ended. */
  report(to: number, outcome: { readonly via: 'direct' | 'relay'; readonly ms: number } | { readonly via: 'failed' }): void;
  /** Each signal from a member (set it before awaiting anything). */
  onSignal: ((from: number, data: unknown) => void) | undefined;
  /** The server said that a member left. */
  onLeft: ((member: number) => void) | undefined;
  /** The socket closed (its close code), for whatever reason; once. */
  onEnd: ((code: number) => void) | undefined;
  /** Leaves the group (`leave`) and closes the socket. */
  close(): void;
}

const isIndex = (value: unknown): value is number => typeof value === 'number' && Number.isInteger(value) && value >= 0;

/** A group's `matched` frame as a GroupAnswer, or undefined when it is not one. */
function groupAnswer(message: Record<string, unknown>): GroupAnswer | undefined {
  const m = message as Partial<GroupMatch>;
  if (typeof m.matchId !== 'string' || typeof m.secret !== 'string' || !isIndex(m.size)) return undefined;
  const self = m.self as Partial<GroupMatch['self']> | null | undefined;
  if (typeof self !== 'object' || self === null || !isIndex(self.index) || typeof self.address !== 'string') return undefined;
  if (!Array.isArray(m.members) || !Array.isArray(m.offerTo)) return undefined;
  if (!m.members.every((member) => isIndex(member.index) && typeof member.address === 'string' && member.index !== self.index)) return undefined;
  return {
    matchId: m.matchId,
    ...(m.pool === undefined ? {} : { pool: m.pool }),
    ...(m.code === undefined ? {} : { code: m.code }),
    secret: m.secret,
    size: m.size,
    self: { index: self.index, address: self.address },
    members: m.members.map((member) => ({ ...member, meta: member.meta ?? null })),
    offerTo: m.offerTo,
    waitedMs: m.waitedMs ?? 0,
    iceServers: m.iceServers ?? [],
    pair: false,
  };
}

/**
 * A pair's `matched` frame as a group of two: the one that waited (`initiator`) is index 0, as in a
 * group, but the newcomer makes the offer, as a pair's `openDataChannel` does (so that either end
 * may use either).
 */
function pairAnswer(message: Record<string, unknown>): GroupAnswer | undefined {
  const m = message as Partial<Match>;
  if (typeof m.matchId !== 'string' || typeof m.secret !== 'string' || typeof m.self !== 'string' || typeof m.peer !== 'string' || typeof m.initiator !== 'boolean') {
    return undefined;
  }
  const [self, other] = m.initiator ? [0, 1] : [1, 0];
  return {
    matchId: m.matchId,
    ...(m.pool === undefined ? {} : { pool: m.pool }),
    ...(m.code === undefined ? {} : { code: m.code }),
    secret: m.secret,
    size: 2,
    self: { index: self, address: m.self },
    members: [{ index: other, address: m.peer, via: m.via ?? 'socket', portIsSource: m.portIsSource ?? false, meta: m.peerMeta ?? null }],
    offerTo: m.initiator ? [] : [other],
    waitedMs: m.waitedMs ?? 0,
    iceServers: m.iceServers ?? [],
    pair: true,
  };
}

/** Waits for a group until one forms, the join is refused, `timeoutMs` passes or `signal` aborts. */
export function joinGroup(options: GroupJoin): Promise<GroupRelay> {
  const url = wsUrl(options.url, options.key);
  const noGroup = (): PairupError => new PairupError(408, 'timeout', `no group of ${options.size} formed within ${options.timeoutMs / 1000} s`);
  return joinUntil(options.timeoutMs, options.signal, noGroup, (deadline) => attempt(url, options, deadline, noGroup));
}

/** One socket, one join (socketAttempt): the group's relay once matched. */
function attempt(url: URL, options: GroupJoin, deadline: number, noGroup: () => PairupError): Promise<Attempt<GroupRelay>> {
  const { pool, code, size, min, meta } = options;
  return socketAttempt<GroupRelay>(url, { type: 'join', pool, code, size, min, meta }, deadline, options.signal, noGroup, (socket) => {
    let relay: GroupRelay | undefined;
    let ended = false;
    return {
      message(message, decide) {
        if (message.type === 'matched') {
          const match = 'members' in message ? groupAnswer(message) : pairAnswer(message);
          if (match === undefined) {
            decide({ kind: 'failed', error: new PairupError(200, 'invalid_answer', 'the server sent a match that is not one') });
            return;
          }
          relay = {
            match,
            matchedAt: performance.now(),
            send(to, data) {
              if (ended || socket.readyState !== WebSocket.OPEN) return;
              // A pair's signal has no `to` (the server refuses one there); a group's must have one.
              socket.send(JSON.stringify(match.pair ? { type: 'signal', data } : { type: 'signal', to, data }));
            },
            report(to, outcome) {
              if (ended || socket.readyState !== WebSocket.OPEN) return;
              const link = match.pair ? {} : { to };
              const report = outcome.via === 'failed' ? { type: 'failed', ...link } : { type: 'connected', ...link, via: outcome.via, ms: Math.max(0, Math.round(outcome.ms)) };
              socket.send(JSON.stringify(report));
            },
            onSignal: undefined,
            onLeft: undefined,
            onEnd: undefined,
            close() {
              if (!ended && socket.readyState === WebSocket.OPEN) socket.send('{"type":"leave"}');
              socket.close();
            },
          };
          decide({ kind: 'matched', value: relay });
        } else if (message.type === 'signal') {
          const from = relay?.match.pair === true ? relay.match.members[0]?.index : message.from;
          if (isIndex(from)) relay?.onSignal?.(from, message.data);
        } else if (message.type === 'peer_left') {
          const member = relay?.match.pair === true ? relay.match.members[0]?.index : message.member;
          if (isIndex(member)) relay?.onLeft?.(member);
        }
      },
      closed(code, decide) {
        if (relay === undefined) {
          decide({ kind: 'failed', error: new PairupError(0, 'closed', `the server closed the WebSocket (${code}) before a group formed`) });
          return;
        }
        if (ended) return;
        ended = true;
        relay.onEnd?.(code);
      },
    };
  });
}
