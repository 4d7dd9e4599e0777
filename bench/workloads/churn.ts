import { setMaxListeners } from 'node:events';
import { closedLoop, h1Get } from '../client.js';
import type { WorkloadResult } from './types.js';

export interface ChurnOptions {
  readonly durationS: number;
  /** Requests in flight at once, each on a TLS connection of its own. */
  readonly concurrency: number;
  readonly ca: string;
}

/** Every request on a brand-new TLS connection, closed afterwards (a curl loop), all in one pool. */
export async function churn(origin: string, options: ChurnOptions): Promise<WorkloadResult> {
  const url = new URL(origin);
  const abort = new AbortController();
  setMaxListeners(options.concurrency * 2, abort.signal);
  const run = await closedLoop(
    options.concurrency,
    options.durationS,
    () => h1Get(url, '/?pool=churn', { ca: options.ca, agent: false, signal: abort.signal }),
    () => abort.abort(),
  );
  return {
    metrics: {
      'pairs/s': run.verifier.answers / 2 / run.seconds,
      'handshakes/s': run.requests / run.seconds,
      'p50 ms': run.latency.p50,
      'p99 ms': run.latency.p99,
      'max ms': run.latency.max,
      'non-200': run.failures,
    },
    problems: [
      ...run.verifier.verdict(options.concurrency),
      ...(run.failures > 0 ? [`${run.failures} failed: ${run.firstFailure}`] : []),
    ],
  };
}
