import { setMaxListeners } from 'node:events';
import { request } from 'node:https';
import { percentiles, Verifier } from '../verify.js';
import type { WorkloadResult } from './types.js';

export interface ChurnOptions {
  readonly durationS: number;
  /** Requests in flight at once, each on a TLS connection of its own. */
  readonly concurrency: number;
  readonly ca: string;
}

/** One request over one brand-new TLS connection, closed afterwards: a curl loop. */
function once(origin: URL, ca: string, signal: AbortSignal): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: origin.hostname,
        port: origin.port,
        path: '/?pool=churn',
        ca,
        // No agent: no keep-alive and no TLS session reuse, a full handshake every time.
        agent: false,
        signal,
        headers: { accept: 'application/json', connection: 'close' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Every request on a fresh TLS connection, all in one pool. */
export async function churn(origin: string, options: ChurnOptions): Promise<WorkloadResult> {
  const url = new URL(origin);
  const verifier = new Verifier();
  const latencies: number[] = [];
  let failures = 0;
  let firstFailure = '';
  const started = performance.now();
  const deadline = started + options.durationS * 1000;
  const stop = new AbortController();
  setMaxListeners(options.concurrency * 2, stop.signal);
  // Each loop stops starting requests at the deadline; the last ones find partners among each other.
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const sent = performance.now();
      try {
        const { status, body } = await once(url, options.ca, stop.signal);
        if (stop.signal.aborted) return;
        latencies.push(performance.now() - sent);
        if (status === 200) verifier.record(body);
        else {
          failures++;
          firstFailure ||= `status ${status}`;
        }
      } catch (error) {
        if (stop.signal.aborted) return;
        failures++;
        firstFailure ||= String(error);
      }
    }
  };
  const loops = Promise.all(Array.from({ length: options.concurrency }, loop));
  // A request left alone at the very end waits for a partner that never comes: abort it.
  await Promise.race([loops, new Promise((resolve) => setTimeout(resolve, options.durationS * 1000 + 2000))]);
  const seconds = (performance.now() - started) / 1000;
  stop.abort();
  await loops;
  const { p50, p99, max } = percentiles(latencies);
  return {
    metrics: {
      'pairs/s': verifier.answers / 2 / seconds,
      'handshakes/s': latencies.length / seconds,
      'p50 ms': p50,
      'p99 ms': p99,
      'max ms': max,
      'non-200': failures,
    },
    problems: [...verifier.verdict(options.concurrency), ...(failures > 0 ? [`${failures} failed: ${firstFailure}`] : [])],
  };
}
