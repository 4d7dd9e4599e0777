import autocannon from 'autocannon';
import { Verifier } from '../verify.js';
import type { WorkloadResult } from './types.js';

export interface StormOptions {
  readonly durationS: number;
  readonly connections: number;
  /** Requests each connection sends ahead (HTTP/1.1 pipelining); 1: none. */
  readonly pipelining?: number;
}

/** One pool, keep-alive HTTP/1.1 connections over TLS, every request pairs with another. */
export async function storm(origin: string, options: StormOptions): Promise<WorkloadResult> {
  const verifier = new Verifier();
  let non200 = 0;
  const result = await autocannon({
    url: origin,
    connections: options.connections,
    pipelining: options.pipelining ?? 1,
    duration: options.durationS,
    requests: [
      {
        method: 'GET',
        path: '/?pool=storm',
        headers: { accept: 'application/json' },
        onResponse: (status: number, body: string) => {
          if (status === 200) verifier.record(body);
          else non200++;
        },
      },
    ],
  });
  const seconds = result.duration;
  const ok = result['2xx'];
  return {
    metrics: {
      'answers/s': ok / seconds,
      answers: ok,
      'p50 ms': result.latency.p50,
      'p99 ms': result.latency.p99,
      'non-200': result.non2xx + result.errors + result.timeouts + non200,
    },
    problems: [
      ...verifier.verdict(options.connections * (options.pipelining ?? 1)),
      ...(result.non2xx + result.errors + result.timeouts + non200 > 0
        ? [`${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts`]
        : []),
    ],
  };
}
