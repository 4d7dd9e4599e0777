/**
 * Prometheus metrics. The request path only bumps plain numbers (a counter per status, a record per
 * pool label); prom-client reads them when /metrics is scraped, so measuring costs the pairing path
 * no label hashing or validation. Label cardinality is bounded: the first METRICS_MAX_POOLS pools
 * seen get a label of their own, later ones are counted as `other`, and rendezvous codes, which are
 * secrets, are all counted as `(code)`.
 */
import type { Server as NetServer, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { LobbyObserver, Outcome, Room } from '../core/types.js';

const OTHER_POOLS = 'other';
const CODE_LABEL = '(code)';

/** How each ending is counted in pairup_outcomes_total. */
const OUTCOME_LABELS = ['matched', 'timeout', 'aborted', 'rejected', 'shutdown'] as const;
type OutcomeLabel = (typeof OUTCOME_LABELS)[number];
const LABEL_OF: Readonly<Record<Exclude<Outcome['kind'], 'refused' | 'failed'>, OutcomeLabel>> = {
  matched: 'matched',
  timeout: 'timeout',
  gone: 'aborted',
  shutdown: 'shutdown',
};

/** Seconds a waiter waited for its partner: from a blink to the longest MATCH_TIMEOUT_MS. */
const WAIT_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

interface PoolStats {
  waiting: number;
  matches: number;
  readonly outcomes: Record<OutcomeLabel, number>;
  readonly wait: { observe(seconds: number): void };
}

export interface MetricsSources {
  /** STUN Binding requests answered so far, when the responder runs. */
  stunAnswered?: () => number;
  /** STUN Binding requests left unanswered because their source asked too often. */
  stunLimited?: () => number;
  /** When the certificate being served expires, in seconds since the epoch. */
  certificateExpiry?: () => number;
}

export class Metrics implements LobbyObserver {
  readonly registry = new Registry();
  readonly #maxPools: number;
  readonly #pools = new Map<string, PoolStats>();
  /** Pools that have a label of their own so far (at most maxPools). */
  #labelledPools = 0;
  readonly #byStatus = new Map<number, number>();
  readonly #connections = { h1: 0, h2: 0 };
  readonly #waitSeconds: Histogram<'pool'>;
  #sources: MetricsSources = {};

  constructor(maxPools: number) {
    this.#maxPools = maxPools;
    const registers = [this.registry];
    const pools = this.#pools;
    new Gauge({
      name: 'pairup_waiting',
      help: 'Clients waiting for a partner now.',
      labelNames: ['pool'],
      registers,
      collect() {
        this.reset();
        for (const [pool, stats] of pools) this.set({ pool }, stats.waiting);
      },
    });
    new Counter({
      name: 'pairup_matches_total',
      help: 'Pairs made.',
      labelNames: ['pool'],
      registers,
      collect() {
        this.reset();
        for (const [pool, stats] of pools) this.inc({ pool }, stats.matches);
      },
    });
    new Counter({
      name: 'pairup_outcomes_total',
      help: 'How requests for a partner ended: matched, timeout, aborted (the client left), rejected (MAX_WAITING, MAX_WAITING_PER_IP), shutdown.',
      labelNames: ['pool', 'outcome'],
      registers,
      collect() {
        this.reset();
        for (const [pool, stats] of pools) {
          for (const outcome of OUTCOME_LABELS) this.inc({ pool, outcome }, stats.outcomes[outcome]);
        }
      },
    });
    this.#waitSeconds = new Histogram({
      name: 'pairup_match_wait_seconds',
      help: 'Time from a waiter’s arrival to its match (one observation per pair).',
      labelNames: ['pool'],
      buckets: WAIT_BUCKETS,
      registers,
    });
    const byStatus = this.#byStatus;
    new Counter({
      name: 'pairup_requests_total',
      help: 'Answers by HTTP status.',
      labelNames: ['status'],
      registers,
      collect() {
        this.reset();
        for (const [status, count] of byStatus) this.inc({ status: String(status) }, count);
      },
    });
    const connections = this.#connections;
    new Gauge({
      name: 'pairup_open_connections',
      help: 'Open TLS connections by protocol (h1: HTTP/1.1, h2: HTTP/2), after the handshake.',
      labelNames: ['protocol'],
      registers,
      collect() {
        this.set({ protocol: 'h1' }, connections.h1);
        this.set({ protocol: 'h2' }, connections.h2);
      },
    });
    const sources = (): MetricsSources => this.#sources;
    new Counter({
      name: 'pairup_stun_requests_total',
      help: 'STUN Binding requests answered.',
      registers,
      collect() {
        this.reset();
        this.inc(sources().stunAnswered?.() ?? 0);
      },
    });
    new Counter({
      name: 'pairup_stun_limited_total',
      help: 'STUN Binding requests not answered because their source address asked too often.',
      registers,
      collect() {
        this.reset();
        this.inc(sources().stunLimited?.() ?? 0);
      },
    });
    new Gauge({
      name: 'pairup_certificate_expiry_timestamp_seconds',
      help: 'When the TLS certificate being served expires (its notAfter), in seconds since the epoch.',
      registers,
      // With WORKERS, every worker serves the same certificate: the soonest, not the sum.
      aggregator: 'min',
      collect() {
        const expiry = sources().certificateExpiry?.();
        if (expiry !== undefined) this.set(expiry);
      },
    });
    collectDefaultMetrics({ register: this.registry });
  }

  /** Where figures kept by other parts of the server come from. */
  setSources(sources: MetricsSources): void {
    this.#sources = sources;
  }

  /** Counts one answer written. */
  response(status: number): void {
    this.#byStatus.set(status, (this.#byStatus.get(status) ?? 0) + 1);
  }

  /** Counts the server's open TLS connections by the protocol each negotiated. */
  watchConnections(server: NetServer): void {
    server.on('secureConnection', (socket: TLSSocket) => {
      const protocol = socket.alpnProtocol === 'h2' ? 'h2' : 'h1';
      this.#connections[protocol]++;
      (socket as Socket).once('close', () => this.#connections[protocol]--);
    });
  }

  queued(room: Room): void {
    this.#stats(room).waiting++;
  }

  settled(room: Room, outcome: Outcome, wasQueued: boolean): void {
    if (outcome.kind === 'refused') {
      // Turned away by a limit; refusals of codes and at shutdown are not outcomes of a wait.
      if (outcome.refusal === 'full' || outcome.refusal === 'ip_limit') this.#stats(room).outcomes.rejected++;
      return;
    }
    const stats = this.#stats(room);
    if (wasQueued) stats.waiting--;
    if (outcome.kind === 'failed') return; // a server error: counted by pairup_requests_total{status="500"}
    stats.outcomes[LABEL_OF[outcome.kind]]++;
    // One match, and one wait, per pair: counted on the waiter's side.
    if (outcome.kind === 'matched' && outcome.initiator) {
      stats.matches++;
      stats.wait.observe(outcome.waitedMs / 1000);
    }
  }

  #stats(room: Room): PoolStats {
    const label = room.kind === 'code' ? CODE_LABEL : room.name;
    const known = this.#pools.get(label);
    if (known !== undefined) return known;
    const ownLabel = label === CODE_LABEL || this.#labelledPools < this.#maxPools;
    const name = ownLabel ? label : OTHER_POOLS;
    const existing = this.#pools.get(name);
    if (existing !== undefined) return existing;
    if (ownLabel && label !== CODE_LABEL) this.#labelledPools++;
    const stats: PoolStats = {
      waiting: 0,
      matches: 0,
      outcomes: { matched: 0, timeout: 0, aborted: 0, rejected: 0, shutdown: 0 },
      wait: this.#waitSeconds.labels({ pool: name }),
    };
    this.#pools.set(name, stats);
    return stats;
  }
}
