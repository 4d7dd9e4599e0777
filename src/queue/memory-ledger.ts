/**
 * The outcome ledger of one process: which sides of recent matches have reported, each remembered for
 * {@link LEDGER_TTL_MS} and at most {@link LEDGER_MAX} at once (the oldest forgotten first).
 */
import type { OutcomeLedger } from './ledger-seam.js';

/** How long a side's report is remembered: far longer than any connection attempt takes. */
export const LEDGER_TTL_MS = 600_000;
export const LEDGER_MAX = 200_000;

export class MemoryLedger implements OutcomeLedger {
  /** `matchId side` → when it may be forgotten; oldest first (one TTL for all). */
  readonly #seen = new Map<string, number>();
  readonly #max: number;
  readonly #now: () => number;

  constructor(options: { readonly max?: number; readonly now?: () => number } = {}) {
    this.#max = options.max ?? LEDGER_MAX;
    this.#now = options.now ?? Date.now;
  }

  first(matchId: string, side: string): boolean {
    const now = this.#now();
    for (const [key, until] of this.#seen) {
      if (until > now) break;
      this.#seen.delete(key);
    }
    const key = `${matchId} ${side}`;
    if (this.#seen.has(key)) return false;
    this.#seen.set(key, now + LEDGER_TTL_MS);
    if (this.#seen.size > this.#max) {
      const oldest = this.#seen.keys().next();
      if (oldest.done !== true) this.#seen.delete(oldest.value);
    }
    return true;
  }
}
