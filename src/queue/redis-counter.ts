/**
 * The window counter in Redis, shared by every process: one key per name and window
 * (`P{count:NAME}:WINDOW`), INCR then PEXPIRE, so that a window's key lapses after the window ends.
 */
import type { WindowCounter } from './counter-seam.js';
import { BackendUnavailableError } from './seam.js';

export interface CounterCommands {
  get(key: string): Promise<string | null>;
  incr(key: string): Promise<number>;
  pExpire(key: string, ms: number): Promise<number>;
}

export class RedisCounter implements WindowCounter {
  readonly #client: CounterCommands;
  readonly #prefix: string;

  constructor(client: CounterCommands, prefix: string) {
    this.#client = client;
    this.#prefix = prefix;
  }

  #key(name: string, windowStart: number): string {
    return `${this.#prefix}{count:${name}}:${windowStart}`;
  }

  async get(name: string, windowStart: number): Promise<number> {
    try {
      return Number((await this.#client.get(this.#key(name, windowStart))) ?? 0);
    } catch (error) {
      throw new BackendUnavailableError({ cause: error });
    }
  }

  async add(name: string, windowStart: number, windowMs: number): Promise<void> {
    const key = this.#key(name, windowStart);
    try {
      // The key outlives its window by one more: a late reader still sees the window's count.
      if ((await this.#client.incr(key)) === 1) await this.#client.pExpire(key, 2 * windowMs);
    } catch (error) {
      throw new BackendUnavailableError({ cause: error });
    }
  }
}
