/**
 * The wire contract, shared by the server's routes and the clients: names, patterns, limits, and
 * the answer's schema. No Node or Fastify imports: whatever speaks to pairup can import it.
 */
import { Type, type Static } from 'typebox';

export const DEFAULT_POOL = 'default';
/** Pools and rendezvous codes: letters, digits and `._~-`, 1 to 64 of them. */
export const POOL_PATTERN = '^[A-Za-z0-9._~-]{1,64}$';
export const CODE_PATTERN = POOL_PATTERN;
/** Decimal seconds, as people type them: `30`, `2.5`. */
export const TIMEOUT_PATTERN = '^[0-9]{1,9}(\\.[0-9]{1,9})?$';
export const META_MAX_BYTES = 2048;
/** The most members a group may have (MAX_GROUP_SIZE may lower it, not raise it). */
export const GROUP_SIZE_LIMIT = 64;
/**
 * Levels of objects and arrays `meta` may nest, itself included. Anything deeper is refused on input:
 * a decoder with a depth limit of its own (Redis's, 1000) must never meet a client's data.
 */
export const META_MAX_DEPTH = 16;

/** Whether a parsed JSON value nests objects and arrays more than `most` levels deep. */
export function nestsDeeperThan(value: unknown, most: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (most === 0) return true;
  for (const inner of Array.isArray(value) ? value : Object.values(value)) if (nestsDeeperThan(inner, most - 1)) return true;
  return false;
}
/** Room for pool, timeout and a full meta object with JSON's escaping. */
export const BODY_LIMIT_BYTES = 8192;
/** The most request headers may take, over HTTP/1.1 and HTTP/2 alike (431 beyond). */
export const MAX_HEADER_BYTES = 16_384;
/** An address as the server shows it: `203.0.113.7:57753`, `[2001:db8::1]:57753`. */
export const ADDRESS_PATTERN = '^([0-9]{1,3}(\\.[0-9]{1,3}){3}|\\[[0-9A-Fa-f:.]+(%[A-Za-z0-9._-]+)?\\]):[0-9]{1,5}$';
/** A match secret: 32 bytes, base64url. */
export const SECRET_PATTERN = '^[A-Za-z0-9_-]{43}$';

export const Meta = Type.Record(Type.String(), Type.Unknown());

/** Where a client's address came from: its own connection, or X-Forwarded-For from a trusted proxy. */
export const AddressSource = Type.Union([Type.Literal('socket'), Type.Literal('x-forwarded-for')]);
export type AddressSource = Static<typeof AddressSource>;

/** One entry of `iceServers`: an RTCIceServer as browsers take it (STUN without a credential, TURN with one). */
export const IceServer = Type.Object({
  urls: Type.Union([Type.String(), Type.Array(Type.String())]),
  username: Type.Optional(Type.String()),
  credential: Type.Optional(Type.String()),
});
export type IceServer = Static<typeof IceServer>;

export const Match = Type.Object({
  matchId: Type.String({ maxLength: 64 }),
  /** Exactly one of pool and code: where the two met. */
  pool: Type.Optional(Type.String({ pattern: POOL_PATTERN })),
  code: Type.Optional(Type.String({ pattern: CODE_PATTERN })),
  /** 32 bytes, base64url (HMAC-SHA256 of matchId under the servers' key), the same for both partners, sent to nobody else. */
  secret: Type.String({ pattern: SECRET_PATTERN }),
  /** This client's address as the server saw it. */
  self: Type.String({ pattern: ADDRESS_PATTERN }),
  /** The partner's address. */
  peer: Type.String({ pattern: ADDRESS_PATTERN }),
  /** Where `peer` came from: the partner's connection, or X-Forwarded-For from a trusted proxy. */
  via: AddressSource,
  /** Whether `peer`'s port is the partner's own source port (not a proxy's). */
  portIsSource: Type.Boolean(),
  /** True for exactly one of the two: the one that was waiting. */
  initiator: Type.Boolean(),
  waitedMs: Type.Integer({ minimum: 0 }),
  /**
   * For RTCPeerConnection as it is: pairup's STUN responder (when it runs), then TURN relays with a
   * credential for this match (when configured). Empty when neither.
   */
  iceServers: Type.Array(IceServer),
});

/** The answer to `POST /`: the match plus what the partner chose to share (null: nothing). */
export const MatchWithMeta = Type.Object({
  ...Match.properties,
  peerMeta: Type.Union([Meta, Type.Null()]),
});

export type Match = Static<typeof MatchWithMeta>;

/** Every error answer: the error table's code, its message, the field it is about. */
export const ErrorBody = Type.Object({
  error: Type.String(),
  message: Type.String(),
  field: Type.Optional(Type.String()),
});

/** One other member of a group, as a member is told of it. */
export const GroupMember = Type.Object({
  /** Its place in the group: 0 is the one that waited longest. */
  index: Type.Integer({ minimum: 0 }),
  address: Type.String({ pattern: ADDRESS_PATTERN }),
  via: AddressSource,
  portIsSource: Type.Boolean(),
  /** What it chose to share (POST answers only; null: nothing). */
  meta: Type.Optional(Type.Union([Meta, Type.Null()])),
});
export type GroupMember = Static<typeof GroupMember>;

/**
 * The answer for a group of more than two (`size` > 2). Pairs keep {@link Match}. In a mesh, the
 * lower index offers: this member offers to every index in `offerTo` and waits for offers from the
 * others.
 */
export const GroupMatch = Type.Object({
  matchId: Type.String({ maxLength: 64 }),
  pool: Type.Optional(Type.String({ pattern: POOL_PATTERN })),
  code: Type.Optional(Type.String({ pattern: CODE_PATTERN })),
  /** One secret for the whole group, sent to its members alone. */
  secret: Type.String({ pattern: SECRET_PATTERN }),
  /** Members of this group, this one included: the size asked for, or fewer (at least `min`) when it formed by `min`. */
  size: Type.Integer({ minimum: 2 }),
  self: Type.Object({ index: Type.Integer({ minimum: 0 }), address: Type.String({ pattern: ADDRESS_PATTERN }) }),
  /** Every other member, by index. */
  members: Type.Array(GroupMember),
  /** The members this one sends offers to: those of a higher index. */
  offerTo: Type.Array(Type.Integer({ minimum: 0 })),
  waitedMs: Type.Integer({ minimum: 0 }),
  iceServers: Type.Array(IceServer),
});
export type GroupMatch = Static<typeof GroupMatch>;
