/**
 * A matched WebSocket client's relaying, for its session (routes/ws-session.ts): with its partner
 * (ws-pair.ts) or with the other members of its group (ws-group.ts). The session owns the socket,
 * its timers and its one ending; a relaying only asks it, through {@link RelayingHost}, to send or
 * to end, and is stopped by that ending.
 */
import type { ErrorCode } from '../protocol/errors.js';
import type { CloseName, ConnectedMessage, FailedMessage, ServerMessage } from '../protocol/ws.js';
import type { RelayMessage } from '../queue/relay-seam.js';

/** What a relaying may ask of its session. */
export interface RelayingHost {
  send(message: ServerMessage): void;
  /** A frame written already: a pair's signal as it came, a group's with its `from`. */
  sendText(text: string): void;
  /** Sends the error, then ends the session. */
  fail(code: ErrorCode, args: readonly unknown[], close: CloseName, field?: string): void;
  end(close: CloseName): void;
  /** Whether the server is shutting down: every socket is closed with 1001, nobody is told who left. */
  closing(): boolean;
}

export interface Relaying {
  /** The client's `signal`: its `to` and `data`, and the frame as it came. */
  signal(to: number | undefined, data: unknown, text: string): void;
  /** The client's `punch_again`. */
  punchAgain(): void;
  /** The client's `connected` or `failed`. */
  report(message: ConnectedMessage | FailedMessage): void;
  /** What the relay hub delivers: a signal, a punch part, or word that someone left. */
  readonly receive: (message: RelayMessage) => void;
  /** From the session's ending, once: the others are told it left, and the hub forgets it. */
  stop(): void;
}
