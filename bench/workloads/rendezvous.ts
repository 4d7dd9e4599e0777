import { connect, type ClientHttp2Session } from 'node:http2';
import { Agent } from 'node:https';
import { h1Get, h2Get, type Answer } from '../client.js';
import { memoryOf } from '../servers.js';
import { percentiles, Verifier } from '../verify.js';
import type { WorkloadResult } from './types.js';

export interface RendezvousOptions {
  readonly waiters: number;
  /** h1: each waiter on a TLS connection of its own; h2: 100 waiters per HTTP/2 session. */
  readonly via: 'h1' | 'h2';
  readonly ca: string;
  readonly pid: number | undefined;
  /** Partner requests in flight at once (keep-alive HTTP/1.1 connections). */
  readonly partnerConcurrency: number;
}

const STREAMS_PER_SESSION = 100;
const OPEN_BATCH = 200;

async function waitingNow(origin: URL, ca: string): Promise<number> {
  const { body } = await h1Get(origin, '/healthz', { ca, agent: false });
  return (JSON.parse(body) as { waiting: number }).waiting;
}

/** N clients wait, each in a pool of its own; then N partners arrive, one for each. */
export async function rendezvous(origin: string, options: RendezvousOptions): Promise<WorkloadResult> {
  const url = new URL(origin);
  const n = options.waiters;
  await new Promise((resolve) => setTimeout(resolve, 300));
  const idle = memoryOf(options.pid).rss;

  // Waiters, opened in batches so that the listen backlog never overflows.
  const waiterAnswers: Promise<Answer>[] = [];
  const sessions: ClientHttp2Session[] = [];
  const holdStarted = performance.now();
  for (let first = 0; first < n; first += OPEN_BATCH) {
    const batch: Promise<void>[] = [];
    const last = Math.min(n, first + OPEN_BATCH);
    for (let i = first; i < last; i++) {
      if (options.via === 'h1') {
        batch.push(
          new Promise<void>((connected) => {
            waiterAnswers.push(h1Get(url, `/?pool=r-${i}`, { ca: options.ca, agent: false, onConnected: connected }));
          }),
        );
      } else {
        if (i % STREAMS_PER_SESSION === 0) {
          const session = connect(origin, { ca: options.ca });
          sessions.push(session);
          batch.push(new Promise<void>((connected) => session.once('connect', () => connected())));
        }
        waiterAnswers.push(h2Get(sessions[sessions.length - 1] as ClientHttp2Session, `/?pool=r-${i}`));
      }
    }
    await Promise.all(batch);
  }
  const settle = performance.now() + 60_000;
  while ((await waitingNow(url, options.ca)) < n) {
    if (performance.now() > settle) throw new Error('waiters were not all queued within 60 s');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const holdMs = performance.now() - holdStarted;
  const held = memoryOf(options.pid).rss;

  // Partners: one request per pool, over a few keep-alive connections.
  const agent = new Agent({ keepAlive: true, maxSockets: options.partnerConcurrency });
  const partnerAnswers: Answer[] = new Array<Answer>(n);
  const latencies: number[] = [];
  const pairStarted = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: options.partnerConcurrency }, async () => {
      while (next < n) {
        const i = next++;
        const sent = performance.now();
        partnerAnswers[i] = await h1Get(url, `/?pool=r-${i}`, { ca: options.ca, agent });
        latencies.push(performance.now() - sent);
      }
    }),
  );
  const waiterResults = await Promise.all(waiterAnswers);
  const pairMs = performance.now() - pairStarted;
  const peak = memoryOf(options.pid).peak;
  agent.destroy();
  for (const session of sessions) session.close();

  // Waiter i and partner i must have been told of each other, and nobody else.
  const verifier = new Verifier();
  let wrong = 0;
  // Statuses other than 200, by status: 408 says a waiter outwaited MATCH_TIMEOUT_MS (a machine too busy), not a wrong pairing.
  const failed = new Map<number, { count: number; first: string }>();
  for (let i = 0; i < n; i++) {
    const waiter = waiterResults[i];
    const partner = partnerAnswers[i];
    if (waiter?.status !== 200 || partner?.status !== 200) {
      for (const answer of [waiter, partner]) {
        const status = answer?.status ?? 0;
        if (status === 200) continue;
        const seen = failed.get(status);
        if (seen === undefined) failed.set(status, { count: 1, first: answer?.body.slice(0, 100) ?? '' });
        else seen.count++;
      }
      continue;
    }
    const a = verifier.record(waiter.body);
    const b = verifier.record(partner.body);
    if (a === undefined || b === undefined || a.peer !== b.self || b.peer !== a.self) wrong++;
  }
  const { p99 } = percentiles(latencies);
  return {
    metrics: {
      waiters: n,
      'hold s': holdMs / 1000,
      'RSS idle MiB': idle / 1048576,
      'RSS held MiB': held / 1048576,
      'peak RSS MiB': peak / 1048576,
      'KiB/waiter': (held - idle) / n / 1024,
      'pair all s': pairMs / 1000,
      'partner p99 ms': p99,
    },
    problems: [
      ...verifier.verdict(0),
      ...(wrong > 0 ? [`${wrong} of ${n} rendezvous told of the wrong partner`] : []),
      ...(failed.size > 0
        ? [`answers not 200 (status: count, first body): ${[...failed].map(([status, { count, first }]) => `${status}: ${count}, ${first}`).join('; ')}`]
        : []),
    ],
  };
}
