/**
 * WORKERS=N: the primary process of a node:cluster. It serves no client itself: N workers (each a
 * whole pairup, sharing pools through Redis) accept connections on the one port, and STUN datagrams
 * on the one UDP socket (each datagram is read by one worker). The primary restarts a worker that
 * dies, passes SIGTERM, SIGINT and SIGHUP on, and serves the admin listener for all workers together.
 *
 * Messages between them (plain objects on the cluster's IPC channel, `pairup` names the kind):
 *   primary → worker  { pairup: 'close' }               close gracefully (as on SIGTERM), then exit
 *   primary → worker  { pairup: 'state?', r }           asks for the worker's state
 *   worker → primary  { pairup: 'state', r, ready, waiting }
 * Metrics travel on prom-client's own messages (AggregatorRegistry).
 */
import cluster, { type Worker } from 'node:cluster';
import pino from 'pino';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import type { Config } from './config.js';
import { buildAdmin } from './ops/admin.js';
import { LOG_DRAIN_MS, openLog } from './ops/log-destination.js';

/** How long the primary waits for a worker's state before counting it not ready. */
const STATE_TIMEOUT_MS = 1000;
/** A worker that dies sooner than this after starting is restarted only after this delay (no fork loop). */
const RESTART_DELAY_MS = 1000;

export interface WorkerState {
  readonly ready: boolean;
  readonly waiting: number;
}

type ToWorker = { readonly pairup: 'close' } | { readonly pairup: 'state?'; readonly r: number };
type ToPrimary = { readonly pairup: 'state'; readonly r: number } & WorkerState;

/** In a worker: answers the primary's questions, and closes when told to. */
export function serveWorker(state: () => WorkerState, close: () => void): void {
  process.on('message', (received: unknown) => {
    const message = received as Partial<ToWorker> | null;
    if (message?.pairup === 'close') close();
    else if (message?.pairup === 'state?' && message.r !== undefined) process.send?.({ pairup: 'state', r: message.r, ...state() } satisfies ToPrimary);
  });
}

export async function runPrimary(config: Config): Promise<void> {
  // The workers' log and the primary's share standard output, each through its own destination.
  const destination = await openLog(config.logFormat, process.stdout, () => log);
  process.once('exit', destination.flush);
  const log = pino({ level: config.logLevel }, destination);
  const registry = new Registry();
  const workersGauge = new Gauge({ name: 'pairup_workers', help: 'Worker processes running (WORKERS).', registers: [registry] });
  const restarts = new Counter({ name: 'pairup_worker_restarts_total', help: 'Workers that died and were started again.', registers: [registry] });
  const aggregator = new AggregatorRegistry();
  let closing = false;
  let starting = true;
  const startedAt = new Map<Worker, number>();

  const fork = (): void => {
    const worker = cluster.fork();
    startedAt.set(worker, Date.now());
    workersGauge.set(Object.keys(cluster.workers ?? {}).length);
  };
  cluster.on('exit', (worker, code, signal) => {
    const started = startedAt.get(worker) ?? 0;
    startedAt.delete(worker);
    workersGauge.set(Object.keys(cluster.workers ?? {}).length);
    if (closing) return;
    if (starting) {
      // It could not start (it said why on stderr): so would the next one.
      log.error({ workerPid: worker.process.pid, code, signal }, 'a worker exited while starting: stopping');
      void stop(1);
      return;
    }
    restarts.inc();
    const lived = Date.now() - started;
    // `pid` is the primary's own (every line has it): the worker's is named apart.
    log.warn({ workerPid: worker.process.pid, code, signal }, 'a worker died: starting another');
    if (lived < RESTART_DELAY_MS) setTimeout(() => closing || fork(), RESTART_DELAY_MS);
    else fork();
  });

  let requests = 0;
  const pending = new Map<number, { answers: WorkerState[]; left: number; done: (states: WorkerState[] | undefined) => void }>();
  cluster.on('message', (_worker, received: unknown) => {
    const message = received as Partial<ToPrimary> | null;
    if (message?.pairup !== 'state' || message.r === undefined) return;
    const asked = pending.get(message.r);
    if (asked === undefined) return;
    asked.answers.push({ ready: message.ready === true, waiting: message.waiting ?? 0 });
    if (--asked.left === 0) asked.done(asked.answers);
  });
  /** Every worker's state, or undefined when one does not answer in time. */
  const states = (): Promise<WorkerState[] | undefined> =>
    new Promise((resolve) => {
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w?.isConnected() === true);
      if (workers.length < config.workers) return resolve(undefined);
      const r = ++requests;
      const timer = setTimeout(() => finish(undefined), STATE_TIMEOUT_MS);
      const finish = (answers: WorkerState[] | undefined): void => {
        pending.delete(r);
        clearTimeout(timer);
        resolve(answers);
      };
      pending.set(r, { answers: [], left: workers.length, done: finish });
      for (const worker of workers) worker.send({ pairup: 'state?', r } satisfies ToWorker);
    });

  const admin =
    config.adminPort === 0
      ? undefined
      : buildAdmin(
          {
            contentType: aggregator.contentType,
            metrics: async () => `${await aggregator.clusterMetrics()}\n${await registry.metrics()}`,
            ready: async () => !closing && (await states())?.every((s) => s.ready) === true,
            waiting: async () => (await states())?.reduce((sum, s) => sum + s.waiting, 0) ?? 0,
          },
          log,
        );

  let stopping: Promise<void> | undefined;
  const stop = (code: number): Promise<void> =>
    (stopping ??= (async () => {
      closing = true;
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
      const exited = Promise.all(workers.map((w) => new Promise((resolve) => (w.isDead() ? resolve(w) : w.once('exit', resolve)))));
      for (const worker of workers) if (worker.isConnected()) worker.send({ pairup: 'close' } satisfies ToWorker);
      // Each worker closes within the grace; one that does not is killed a second later.
      const late = setTimeout(() => {
        for (const worker of workers) if (!worker.isDead()) worker.process.kill('SIGKILL');
      }, config.shutdownGraceMs + 1000);
      await exited;
      clearTimeout(late);
      await admin?.close();
      log.info('closed');
      await destination.drained(Math.min(LOG_DRAIN_MS, config.shutdownGraceMs / 2));
      process.exit(code);
    })());
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (stopping !== undefined) return; // a terminal's Ctrl-C reaches the workers by itself too
      log.info({ signal }, 'shutting down: closing every worker');
      void stop(0);
    });
  }
  process.on('SIGHUP', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGHUP');
  });

  log.info({ workers: config.workers }, `starting ${config.workers} workers`);
  for (let i = 0; i < config.workers; i++) fork();
  await new Promise<void>((resolve) => {
    const listening = new Set<number>();
    const onListening = (worker: Worker): void => {
      listening.add(worker.id);
      if (listening.size < config.workers) return;
      cluster.off('listening', onListening);
      resolve();
    };
    cluster.on('listening', onListening);
  });
  starting = false;
  if (admin !== undefined) {
    try {
      await admin.listen({ host: config.adminHost, port: config.adminPort });
    } catch (error) {
      log.error(`cannot listen for admin on ${config.adminHost}:${config.adminPort}: ${(error as Error).message}`);
      await stop(1);
    }
  }
  log.info({ workers: config.workers }, `${config.workers} workers listening`);
}
