/** The window counter of one process: only the current window of each name is kept. */
import type { WindowCounter } from './counter-seam.js';

export class MemoryCounter implements WindowCounter {
  /** name → its latest window and count; names come from APP_KEYS_FILE, so the map is bounded. */
  readonly #counts = new Map<string, { windowStart: number; count: number }>();

  get(name: string, windowStart: number): number {
    const entry = this.#counts.get(name);
    return entry?.windowStart === windowStart ? entry.count : 0;
  }

  add(name: string, windowStart: number): void {
    const entry = this.#counts.get(name);
    if (entry?.windowStart === windowStart) entry.count++;
    else this.#counts.set(name, { windowStart, count: 1 });
  }
}
