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
/** Room for pool, timeout and a full meta object with JSON's escaping. */
export const BODY_LIMIT_BYTES = 8192;
/** The most request headers may take, over HTTP/1.1 and HTTP/2 alike (431 beyond). */
export const MAX_HEADER_BYTES = 16_384;
/** An address as the server shows it: `203.0.113.7:57753`, `[2001:db8::1]:57753`. */
export const ADDRESS_PATTERN = '^([0-9]{1,3}(\\.[0-9]{1,3}){3}|\\[[0-9A-Fa-f:.]+(%[A-Za-z0-9._-]+)?\\]):[0-9]{1,5}$';
/** A match secret: 32 bytes, base64url. */
export const SECRET_PATTERN = '^[A-Za-z0-9_-]{43}$';

export const Meta = Type.Record(Type.String(), Type.Unknown());

export const Match = Type.Object({
  matchId: Type.String({ maxLength: 64 }),
  /** Exactly one of pool and code: where the two met. */
  pool: Type.Optional(Type.String({ pattern: POOL_PATTERN })),
  code: Type.Optional(Type.String({ pattern: CODE_PATTERN })),
  /** 32 random bytes, base64url, the same for both partners, sent to nobody else. */
  secret: Type.String({ pattern: SECRET_PATTERN }),
  /** This client's address as the server saw it. */
  self: Type.String({ pattern: ADDRESS_PATTERN }),
  /** The partner's address. */
  peer: Type.String({ pattern: ADDRESS_PATTERN }),
  /** Where `peer` came from: the partner's connection, or X-Forwarded-For from a trusted proxy. */
  via: Type.Union([Type.Literal('socket'), Type.Literal('x-forwarded-for')]),
  /** Whether `peer`'s port is the partner's own source port (not a proxy's). */
  portIsSource: Type.Boolean(),
  /** True for exactly one of the two: the one that was waiting. */
  initiator: Type.Boolean(),
  waitedMs: Type.Integer({ minimum: 0 }),
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
