/**
 * What a queue backend is, whichever one backs it: the words backends.ts, each backend's opener and
 * main.ts share (a leaf, so the openers and the table that picks one do not import each other).
 */
import type { LinkHandlers } from './redis-link.js';
import type { WindowCounter } from './counter-seam.js';
import type { OutcomeLedger } from './ledger-seam.js';
import type { RelayLink, RelayMessage } from './relay-seam.js';
import type { MatchQueue, PeerLink } from './seam.js';

/** What this process does with what other processes send it: offers of a match, relayed messages. */
export interface BackendHandlers extends LinkHandlers {
  /** A relayed message for this process's waiter `to`. */
  relayed(to: string, message: RelayMessage): void;
}

export interface Backend {
  readonly queue: MatchQueue;
  /** False while the backend cannot be reached (/readyz then says not ready). */
  readonly healthy: boolean;
  /** How to reach the other processes (shared backends only): to pair, and to relay. */
  readonly peers?: PeerLink;
  readonly relay?: RelayLink;
  /** Which sides of which matches reported their connection, across the processes sharing it. */
  readonly ledger: OutcomeLedger;
  /** Counts per window of time (app keys' pairings per minute), across the processes sharing it. */
  readonly counter: WindowCounter;
  /** The key match secrets are derived under: the same for every process sharing the backend. */
  readonly secretKey: Buffer;
  /** Starts answering other processes' offers for this process's waiters, and taking their relayed messages. */
  start(handlers: BackendHandlers): Promise<void>;
  close(): Promise<void>;
}

export interface BackendLog {
  error(fields: object, message: string): void;
  info(message: string): void;
}
