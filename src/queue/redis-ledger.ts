/**
 * The outcome ledger in Redis, shared by every process: one key per reported side
 * (`P{outcome:MATCH}:SIDE`), set if absent, gone after {@link LEDGER_TTL_MS}.
 */
import { LEDGER_TTL_MS } from './memory-ledger.js';
import type { OutcomeLedger } from './ledger-seam.js';
import { BackendUnavailableError } from './seam.js';

export interface LedgerCommands {
  set(key: string, value: string, options: { NX: true; PX?: number }): Promise<string | null>;
}

export class RedisLedger implements OutcomeLedger {
  readonly #client: LedgerCommands;
  readonly #prefix: string;

  constructor(client: LedgerCommands, prefix: string) {
    this.#client = client;
    this.#prefix = prefix;
  }

  async first(matchId: string, side: string): Promise<boolean> {
    try {
      return (await this.#client.set(`${this.#prefix}{outcome:${matchId}}:${side}`, '1', { NX: true, PX: LEDGER_TTL_MS })) === 'OK';
    } catch (error) {
      throw new BackendUnavailableError({ cause: error });
    }
  }
}
