/**
 * The `iceServers` of a match answer, in the shape a browser's RTCPeerConnection takes as it is:
 * pairup's own STUN responder (when it runs), then the TURN servers with a credential for this match.
 *
 * TURN credentials follow coturn's REST-API scheme (`use-auth-secret`): the username is
 * `<expiry, unix seconds>:<matchId>`, the password base64(HMAC-SHA1(secret, username)). The TURN server
 * checks it with the same secret, and its expiry only when a relay is started: it bounds when a
 * relay can begin, not how long it runs. The secret never leaves this module.
 */
import { createHmac } from 'node:crypto';
import type { IceServer } from '../protocol/schemas.js';

export interface IceSettings {
  /** The host clients reach the server at; undefined: each request's own. */
  readonly publicHost: string | undefined;
  /** The STUN responder's UDP port while it runs; undefined: no STUN entry. */
  readonly stunPort: () => number | undefined;
  readonly turn: { readonly urls: readonly string[]; readonly secret: string; readonly ttlS: number } | undefined;
}

/** A host as a STUN URI may carry it: a name, an IPv4 address, or a bracketed IPv6 address. */
const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})$/;

/** A TURN credential for `matchId`, valid for starting a relay until `ttlS` seconds from `nowMs`. */
export function turnCredential(secret: string, matchId: string, ttlS: number, nowMs = Date.now()): { username: string; credential: string } {
  const username = `${Math.floor(nowMs / 1000) + ttlS}:${matchId}`;
  return { username, credential: createHmac('sha1', secret).update(username).digest('base64') };
}

/**
 * What to put in the answers of one server: `requestHost` is the host the request was sent to
 * (without its port; an IPv6 address in brackets), used when no public host is configured.
 */
export function iceServersOf(settings: IceSettings): (requestHost: string | undefined, matchId: string, turn?: boolean) => IceServer[] {
  const { publicHost, stunPort, turn } = settings;
  // Nearly every answer of a server names the same host: its STUN URI is made once, not per answer.
  let lastHost: string | undefined;
  let lastPort: number | undefined;
  let lastUri: string | undefined;
  const stunUri = (host: string, port: number): string | undefined => {
    if (host !== lastHost || port !== lastPort) {
      lastHost = host;
      lastPort = port;
      lastUri = HOST.test(host) ? `stun:${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}` : undefined;
    }
    return lastUri;
  };
  // `withTurn` false: an app key whose matches get no relay (APP_KEYS_FILE's `turn`).
  return (requestHost, matchId, withTurn = true) => {
    const servers: IceServer[] = [];
    const port = stunPort();
    const host = publicHost ?? requestHost;
    const uri = port === undefined || host === undefined ? undefined : stunUri(host, port);
    if (uri !== undefined) servers.push({ urls: uri });
    if (turn !== undefined && withTurn) servers.push({ urls: [...turn.urls], ...turnCredential(turn.secret, matchId, turn.ttlS) });
    return servers;
  };
}
