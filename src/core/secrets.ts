import { createHmac } from 'node:crypto';

/**
 * A match's secret, derived from its id under a key only the servers hold: any process with the key
 * can check a partner's proof of the match (an outcome report) without having kept anything of it.
 * The key is random (32 bytes, made once, shared through the backend when processes share one), so
 * secrets are as unpredictable as random ones to anyone without it. A match of an app's clients (app
 * keys) has its app in the derivation: a proof of the match also proves which app made it. A
 * group's has its size too (`size`, its members' count): a proof of a group proves how many members
 * it has (so which links it has), and is never a pair's.
 */
export function matchSecret(key: Buffer, matchId: string, app?: string, size?: number): string {
  // App names cannot hold '/' (APP_PATTERN), match ids cannot hold '#' (UUIDs): `app/matchId#size`
  // is never another app's, a bare id, or a pair's.
  const id = size === undefined ? matchId : `${matchId}#${size}`;
  return createHmac('sha256', key).update(app === undefined ? id : `${app}/${id}`).digest('base64url');
}

/** What a partner sends to prove it was in match `matchId`: an HMAC of the id under its secret, never the secret. */
export function matchProof(secret: string, matchId: string): string {
  return createHmac('sha256', secret).update(matchId).digest('base64url');
}
