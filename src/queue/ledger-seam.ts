/** The outcome ledger's seam: counting each side's report of how it connected once, across processes. */
import type { ValueOrPromise } from './seam.js';

/**
 * Which sides of which matches have reported how they connected: each side is counted once, whichever
 * process it reports to. Entries last a while (a report comes seconds after its match), then go.
 */
export interface OutcomeLedger {
  /** True the first time `side` of `matchId` reports; false after. */
  first(matchId: string, side: string): ValueOrPromise<boolean>;
}
