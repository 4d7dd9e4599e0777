/**
 * Counts per name and per fixed window of time (an app's pairings per minute), shared by the
 * processes of a shared backend. A window is named by its start (ms since the epoch, a multiple of
 * its length), so every process agrees which window a moment falls in without talking.
 */
export interface WindowCounter {
  /** The count of `name` in the window starting at `windowStart`. */
  get(name: string, windowStart: number): number | Promise<number>;
  /** Adds one to it; the count is forgotten some time after the window ends (`windowMs`). */
  add(name: string, windowStart: number, windowMs: number): void | Promise<void>;
}
