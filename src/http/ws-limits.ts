/**
 * What bounds one WebSocket client: its message rate, how many sockets its address holds, and how
 * long it may take to answer a close frame.
 */
import type * as Ws from 'ws';

/** After a close frame, how long the client has to answer it before its connection is cut. */
const CLOSE_GRACE_MS = 1000;

/** Closes `socket` with `code`, or cuts it (`code` undefined, or it was not open): a client that does not answer the close frame is cut. */
export function closeOrCut(socket: Pick<Ws.WebSocket, 'readyState' | 'OPEN' | 'CLOSED' | 'close' | 'terminate' | 'once'>, code: number | undefined): void {
  if (code === undefined) {
    if (socket.readyState !== socket.CLOSED) socket.terminate();
    return;
  }
  if (socket.readyState !== socket.OPEN) return;
  socket.close(code);
  const late = setTimeout(() => socket.terminate(), CLOSE_GRACE_MS);
  late.unref();
  socket.once('close', () => clearTimeout(late));
}

/**
 * Messages a socket may still send now: refilled at `rate` a second, up to twice that. Messages are
 * counted as the server gets to them, which after a busy moment is many at once: a burst passes.
 */
export class MessageAllowance {
  readonly #rate: number;
  #left: number;
  #at = performance.now();

  constructor(rate: number) {
    this.#rate = rate;
    this.#left = 2 * rate;
  }

  /** Takes one message's allowance; false when there is none left. */
  take(): boolean {
    const now = performance.now();
    this.#left = Math.min(2 * this.#rate, this.#left + ((now - this.#at) * this.#rate) / 1000);
    this.#at = now;
    if (this.#left < 1) return false;
    this.#left--;
    return true;
  }
}

/** Sockets held per limit key (an address, or its IPv6 network), in this process. */
export class KeyCounts {
  readonly #counts = new Map<string, number>();

  /** Counts one more under `key` unless it already holds `most` (0: no limit); the function gives it back, once. */
  enter(key: string, most: number): (() => void) | undefined {
    const held = this.#counts.get(key) ?? 0;
    if (most > 0 && held >= most) return undefined;
    this.#counts.set(key, held + 1);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const now = (this.#counts.get(key) ?? 1) - 1;
      if (now === 0) this.#counts.delete(key);
      else this.#counts.set(key, now);
    };
  }
}
