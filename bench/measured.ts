/**
 * One measured run against a fresh pairup process on the server's core, for the workloads that
 * compare setups of pairup itself (groups against pairs, this build against another): the wrk storm
 * with the server's CPU time per answer, or the rendezvous's memory per held waiter. Either way the
 * server must hold no waiter afterwards (`GET /healthz`).
 */
import { leftWaiting } from './client.js';
import { startServer } from './servers.js';
import { cpuTimeMs, type Placement } from './tools.js';
import { wrk } from './workloads/native.js';
import { rendezvous } from './workloads/rendezvous.js';
import type { WorkloadResult } from './workloads/types.js';

export interface Pinned {
  readonly tls: { certFile: string; keyFile: string };
  readonly ca: string;
  readonly dir: string;
  readonly where: Placement;
  /** pairup's entry module (another build's `dist/main.js`); default this checkout's. */
  readonly main?: string;
}

/** Load before the measured run, so that the server is measured with its code compiled. */
const WARMUP_S = 1;

async function onFreshPairup(pinned: Pinned, run: (origin: string, pid: number | undefined) => Promise<WorkloadResult>): Promise<WorkloadResult> {
  const server = await startServer('pairup', pinned.tls, pinned.dir, pinned.where.server, [], {}, pinned.main);
  try {
    // A run that fails (a rendezvous not all queued in time) is a problem of this round, not the end of the benchmark.
    const result = await run(server.origin, server.pid).catch((error: unknown): WorkloadResult => ({
      metrics: {},
      problems: [error instanceof Error ? error.message : String(error)],
    }));
    const left = await leftWaiting(server.origin, pinned.ca);
    return left === 0 ? result : { ...result, problems: [...result.problems, `${left} waiters left behind`] };
  } finally {
    await server.stop();
  }
}

/**
 * wrk (keep-alive HTTP/1.1, one pool, text answers, each checked) for 1 s of warm-up, then for
 * `durationS` measured: answers/s, latency, and the server's CPU µs per answer (/proc/PID/stat).
 */
export function stormOnce(
  pinned: Pinned,
  load: { readonly durationS: number; readonly connections: number; readonly pool: string; readonly size?: number },
): Promise<WorkloadResult> {
  return onFreshPairup(pinned, async (origin, pid) => {
    await wrk(origin, { ...load, durationS: WARMUP_S, close: false });
    const before = cpuTimeMs(pid);
    const measured = await wrk(origin, { ...load, close: false });
    const cpuMs = cpuTimeMs(pid) - before;
    const answers = measured.metrics.answers ?? Number.NaN;
    return { ...measured, metrics: { ...measured.metrics, 'cpu µs/answer': (cpuMs * 1000) / answers } };
  });
}

/** The rendezvous (bench/workloads/rendezvous.ts): resident memory per held waiter, on a fresh server. */
export function rendezvousOnce(pinned: Pinned, options: { readonly waiters: number; readonly via: 'h1' | 'h2' }): Promise<WorkloadResult> {
  return onFreshPairup(pinned, (origin, pid) =>
    rendezvous(origin, { waiters: options.waiters, via: options.via, ca: pinned.ca, pid, partnerConcurrency: 50 }),
  );
}
