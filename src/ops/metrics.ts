/**
 * Prometheus metrics. The request path only bumps plain numbers (a counter per status, a record per
 * pool label); prom-client reads them when /metrics is scraped, so measuring costs the pairing path
 * no label hashing or validation. Label cardinality is bounded: the first METRICS_MAX_POOLS pools
 * seen get a label of their own, later ones are counted as `other`, and rendezvous codes, which are
 * secrets, are all counted as `(code)`. With app keys (APP_KEYS_FILE) each figure of a room or a
 * connection also carries its `app` label (apps come from the file: bounded); without them the
 * label is left out, so the series are the ones they always were.
 */
import type { Server as NetServer, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { LobbyObserver, Outcome, Room } from '../core/types.js';
import type { ConnectionVia } from '../protocol/outcome.js';

const OTHER_POOLS = 'other';
const CODE_LABEL = '(code)';

/** How each ending is counted in pairup_outcomes_total. */
const OUTCOME_LABELS = ['matched', 'timeout', 'aborted', 'rejected', 'shutdown'] as const;
type OutcomeLabel = (typeof OUTCOME_LABELS)[number];
const LABEL_OF: Readonly<Record<Exclude<Outcome['kind'], 'refused' | 'failed'>, OutcomeLabel>> = {
  matched: 'matched',
  grouped: 'matched',
  timeout: 'timeout',
  gone: 'aborted',
  shutdown: 'shutdown',
};

/** Seconds from a match to its side's connection, direct or relayed: ICE gives up after about 30 s. */
const CONNECT_BUCKETS = [0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60];

/** Seconds a waiter waited for its partner: from a blink to the longest MATCH_TIMEOUT_MS. */
const WAIT_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

interface PoolStats {
  /** Its labels: the app's only with app keys. */
  readonly labels: { readonly app?: string; readonly pool: string };
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
  /** By app (empty without app keys), then by pool label. */
  readonly #pools = new Map<string, Map<string, PoolStats>>();
  /** Pools that have a label of their own so far, of every app (at most maxPools). */
  #labelledPools = 0;
  readonly #byStatus = new Map<number, number>();
  readonly #connections = { h1: 0, h2: 0 };
  readonly #waitSeconds: Histogram<'app' | 'pool'>;
  /** Reports by app (empty without app keys). */
  readonly #reported = new Map<string, Record<ConnectionVia, number>>([['', { direct: 0, relay: 0, failed: 0 }]]);
  readonly #connectSeconds: Histogram<'app'>;
  /** Groups of more than two formed, by the size asked for; and those formed by `min`, by size and min. */
  readonly #groups = new Map<number, number>();
  readonly #partialGroups = new Map<string, number>();
  #sources: MetricsSources = {};

  constructor(maxPools: number) {
    this.#maxPools = maxPools;
    const registers = [this.registry];
    const pools = this.#pools;
    const eachPool = function* (): Generator<PoolStats> {
      for (const ofApp of pools.values()) yield* ofApp.values();
    };
    new Gauge({
      name: 'pairup_waiting',
      help: 'Clients waiting for a partner now.',
      labelNames: ['app', 'pool'],
      registers,
      collect() {
        this.reset();
        for (const stats of eachPool()) this.set(stats.labels, stats.waiting);
      },
    });
    new Counter({
      name: 'pairup_matches_total',
      help: 'Matches made: pairs, and groups of more than two (one each).',
      labelNames: ['app', 'pool'],
      registers,
      collect() {
        this.reset();
        for (const stats of eachPool()) this.inc(stats.labels, stats.matches);
      },
    });
    new Counter({
      name: 'pairup_outcomes_total',
      help: 'How requests for a partner ended: matched, timeout, aborted (the client left), rejected (MAX_WAITING, MAX_WAITING_PER_IP), shutdown.',
      labelNames: ['app', 'pool', 'outcome'],
      registers,
      collect() {
        this.reset();
        for (const stats of eachPool()) {
          for (const outcome of OUTCOME_LABELS) this.inc({ ...stats.labels, outcome }, stats.outcomes[outcome]);
        }
      },
    });
    this.#waitSeconds = new Histogram({
      name: 'pairup_match_wait_seconds',
      help: 'Time from a waiter’s arrival to its match (one observation per pair).',
      labelNames: ['app', 'pool'],
      buckets: WAIT_BUCKETS,
      registers,
    });
    const reported = this.#reported;
    new Counter({
      name: 'pairup_connections_total',
      help: 'How matched sides said they connected to their partner: direct, relay, or failed (one report per side of a match).',
      labelNames: ['app', 'via'],
      registers,
      collect() {
        this.reset();
        for (const [app, counts] of reported) {
          for (const via of ['direct', 'relay', 'failed'] as const) this.inc(app === '' ? { via } : { app, via }, counts[via]);
        }
      },
    });
    this.#connectSeconds = new Histogram({
      name: 'pairup_connect_seconds',
      help: 'Time from the match to the connection, as each connected side reported it.',
      labelNames: ['app'],
      buckets: CONNECT_BUCKETS,
      registers,
    });
    // The series without an app is shown from the start, as it was before apps had labels.
    this.#connectSeconds.zero({});
    const groups = this.#groups;
    new Counter({
      name: 'pairup_groups_total',
      help: 'Groups of more than two formed, by the size asked for (partial groups included).',
      labelNames: ['size'],
      registers,
      collect() {
        this.reset();
        for (const [size, count] of groups) this.inc({ size: String(size) }, count);
      },
    });
    const partialGroups = this.#partialGroups;
    new Counter({
      name: 'pairup_partial_groups_total',
      help: 'Groups that formed by min with fewer members than their size, once the oldest had waited FILL_WAIT_MS.',
      labelNames: ['size', 'min'],
      registers,
      collect() {
        this.reset();
        for (const [key, count] of partialGroups) {
          const [size = '', min = ''] = key.split('/');
          this.inc({ size, min }, count);
        }
      },
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

  /** Counts one side's report of how it connected (each side of a match once), under its match's app if it has one. */
  connection(via: ConnectionVia, ms?: number, app?: string): void {
    let counts = this.#reported.get(app ?? '');
    if (counts === undefined) {
      counts = { direct: 0, relay: 0, failed: 0 };
      this.#reported.set(app ?? '', counts);
    }
    counts[via]++;
    if (via !== 'failed' && ms !== undefined) this.#connectSeconds.observe(app === undefined ? {} : { app }, ms / 1000);
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
    // One group, and one wait, per group: counted on the side of its first member (it waited longest).
    if (outcome.kind === 'grouped' && outcome.index === 0 && room.size !== undefined) {
      stats.matches++;
      stats.wait.observe(outcome.waitedMs / 1000);
      this.#groups.set(room.size, (this.#groups.get(room.size) ?? 0) + 1);
      if (outcome.members.length < room.size) {
        const key = `${room.size}/${room.min ?? room.size}`;
        this.#partialGroups.set(key, (this.#partialGroups.get(key) ?? 0) + 1);
      }
    }
  }

  #stats(room: Room): PoolStats {
    const app = room.app ?? '';
    let ofApp = this.#pools.get(app);
    if (ofApp === undefined) {
      ofApp = new Map();
      this.#pools.set(app, ofApp);
    }
    const label = room.kind === 'code' ? CODE_LABEL : room.name;
    const known = ofApp.get(label);
    if (known !== undefined) return known;
    const ownLabel = label === CODE_LABEL || this.#labelledPools < this.#maxPools;
    const name = ownLabel ? label : OTHER_POOLS;
    const existing = ofApp.get(name);
    if (existing !== undefined) return existing;
    if (ownLabel && label !== CODE_LABEL) this.#labelledPools++;
    const labels = room.app === undefined ? { pool: name } : { app: room.app, pool: name };
    const stats: PoolStats = {
      labels,
      waiting: 0,
      matches: 0,
      outcomes: { matched: 0, timeout: 0, aborted: 0, rejected: 0, shutdown: 0 },
      wait: this.#waitSeconds.labels(labels),
    };
    ofApp.set(name, stats);
    return stats;
  }
}
