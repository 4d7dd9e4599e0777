import { connect, type ClientHttp2Session } from 'node:http2';
import { percentiles, Verifier } from '../verify.js';
import type { WorkloadResult } from './types.js';

export interface H2Options {
  readonly durationS: number;
  readonly sessions: number;
  /** Streams in flight at once on each session. */
  readonly streams: number;
  readonly ca: string;
}

function get(session: ClientHttp2Session, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path, accept: 'application/json' });
    let status = 0;
    const chunks: Buffer[] = [];
    stream.on('response', (headers) => {
      status = Number(headers[':status']);
    });
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString('utf8') }));
    stream.on('error', reject);
  });
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
  const verifier = new Verifier();
  const latencies: number[] = [];
  let failures = 0;
  let firstFailure = '';
  let stopping = false;
  const started = performance.now();
  const deadline = started + options.durationS * 1000;
  // Stream j of every session asks in pool h2-j, so that no pool ever holds two streams of one
  // session: pairup never pairs those, the baseline would, and the two must do the same work.
  const loop = async (session: ClientHttp2Session, j: number): Promise<void> => {
    while (performance.now() < deadline) {
      const sent = performance.now();
      try {
        const { status, body } = await get(session, `/?pool=h2-${j}`);
        if (stopping) return;
        latencies.push(performance.now() - sent);
        if (status === 200) verifier.record(body);
        else {
          failures++;
          firstFailure ||= `status ${status}`;
        }
      } catch (error) {
        if (stopping) return;
        failures++;
        firstFailure ||= String(error);
      }
    }
  };
  const loops = Promise.all(sessions.flatMap((session) => Array.from({ length: options.streams }, (_, j) => loop(session, j))));
  await Promise.race([loops, new Promise((resolve) => setTimeout(resolve, options.durationS * 1000 + 2000))]);
  const seconds = (performance.now() - started) / 1000;
  // Streams left waiting at the end (their partners stopped asking) are closed, not counted.
  stopping = true;
  for (const session of sessions) session.destroy();
  await loops;
  const { p50, p99, max } = percentiles(latencies);
  return {
    metrics: {
      'pairs/s': verifier.answers / 2 / seconds,
      'p50 ms': p50,
      'p99 ms': p99,
      'max ms': max,
      'non-200': failures,
    },
    problems: [
      ...verifier.verdict(options.sessions * options.streams),
      ...(failures > 0 ? [`${failures} failed: ${firstFailure}`] : []),
    ],
  };
}
