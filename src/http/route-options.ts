/**
 * What the route plugins are given: the match routes' options, and the WebSocket's, which are those
 * and its own. A leaf: the routes and the WebSocket session import it, it imports nothing of theirs.
 */
import type { Lobby } from '../core/lobby.js';
import type { RelayHub } from '../core/relay.js';
import type { ProxyTrust } from '../net/address.js';
import type { IceServer } from '../protocol/schemas.js';
import type { Access } from './access.js';
import type { OutcomeRecorder } from './outcomes.js';

export interface MatchRouteOptions {
  readonly lobby: Lobby;
  /** Proxies whose X-Forwarded-For is believed (TRUST_PROXY). */
  readonly trustProxy: ProxyTrust;
  /** With PROXY protocol the connection's address is already the client's: X-Forwarded-For is never read. */
  readonly proxyProtocol: boolean;
  /** IPv6 clients are counted for MAX_WAITING_PER_IP by their network of this many bits. */
  readonly ipv6PrefixBits: number;
  readonly matchTimeoutMs: number;
  /** The most members a request may ask its group to have (MAX_GROUP_SIZE). */
  readonly maxGroupSize: number;
  readonly maxWaiting: number;
  readonly maxWaitingPerIp: number;
  /** What a match's `iceServers` are, for the host a request was sent to; `turn` false: without TURN. */
  readonly iceServers: (requestHost: string | undefined, matchId: string, turn?: boolean) => IceServer[];
  /** App keys (APP_KEYS_FILE); undefined: none configured, every request is served as before. */
  readonly access: Access | undefined;
  /** Pages of these origins may use the server (besides pairup's own, the demo); `*`: any. */
  readonly corsOrigins: '*' | 'off' | readonly string[];
}

/** What the match routes need (the lobby, addresses, limits), and the WebSocket's own. */
export interface WsRouteOptions extends MatchRouteOptions {
  readonly relay: RelayHub;
  /** How long the relay stays open after the match. */
  readonly relayTtlMs: number;
  /** A relay with no signal either way for this long is closed. */
  readonly relayIdleMs: number;
  /** Sockets one address may have joined at once here (waiting or relaying); 0: no limit. */
  readonly maxRelaysPerIp: number;
  /** Counts a side's report of how it connected. */
  readonly recordOutcome: OutcomeRecorder;
  readonly wsMaxMessageBytes: number;
  readonly wsMaxMessagesPerS: number;
  readonly wsMaxBufferedBytes: number;
  /** Ping interval; a socket whose previous ping is unanswered is dropped. 0: no pings. */
  readonly keepaliveMs: number;
  /** Time to send `join` after the upgrade. */
  readonly headersTimeoutMs: number;
}
