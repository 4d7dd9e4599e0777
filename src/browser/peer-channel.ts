/** A WebSocket match kept open as a relay to the partner: what `connectPeer` resolves to. */
import type { Match } from '../protocol/index.js';

export interface PeerChannel {
  readonly match: Match;
  /** When the match came (performance.now()): what a connection's time is measured from. */
  readonly matchedAt: number;
  /** Tells the server how this side's connection to its partner went (counted once per side). */
  report(outcome: { readonly via: 'direct' | 'relay'; readonly ms: number } | { readonly via: 'failed' }): void;
  /** Relays `data` (any JSON value) to the partner. */
  send(data: unknown): void;
  /** Called with each signal from the partner (set it before awaiting anything). */
  onSignal: ((data: unknown) => void) | undefined;
  /** Called once when the relay ends: the partner left (`peer_left`) or the socket closed (its code). */
  onEnd: ((reason: 'peer_left' | 'closed', code: number) => void) | undefined;
  /** Leaves: the partner is told. */
  close(): void;
}
