import { connect, type ClientHttp2Session } from 'node:http2';
import { closedLoop, h2Get } from '../client.js';
import type { WorkloadResult } from './types.js';

export interface H2Options {
  readonly durationS: number;
  readonly sessions: number;
  /** Streams in flight at once on each session. */
  readonly streams: number;
  readonly ca: string;
}

/** The storm over HTTP/2: a few sessions, many concurrent streams each. */
export async function h2(origin: string, options: H2Options): Promise<WorkloadResult> {
  const sessions = await Promise.all(
    Array.from(
      { length: options.sessions },
      () =>
        new Promise<ClientHttp2Session>((resolve, reject) => {
          const session = connect(origin, { ca: options.ca });
          session.once('connect', () => resolve(session));
          session.once('error', reject);
        }),
    ),
  );
  // Loop i runs stream j = i % streams of session i / streams, in pool h2-j: no pool ever holds two
  // streams of one session (pairup never pairs those, the baseline would; both must do the same work).
  const run = await closedLoop(
    options.sessions * options.streams,
    options.durationS,
    (i) =>
      h2Get(sessions[Math.floor(i / options.streams)] as ClientHttp2Session, `/?pool=h2-${i % options.streams}`),
    () => {
      for (const session of sessions) session.destroy();
    },
  );
  return {
    metrics: {
      'pairs/s': run.verifier.answers / 2 / run.seconds,
      'p50 ms': run.latency.p50,
      'p99 ms': run.latency.p99,
      'max ms': run.latency.max,
      'non-200': run.failures,
    },
    problems: [
      ...run.verifier.verdict(options.sessions * options.streams),
      ...(run.failures > 0 ? [`${run.failures} failed: ${run.firstFailure}`] : []),
    ],
  };
}
