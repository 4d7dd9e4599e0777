/**
 * Counting how matched sides connected: each side of a match once, and each member's report of each
 * link of a group once (the ledger decides, across the processes sharing a backend), over HTTP and
 * WebSocket alike.
 */
import { timingSafeEqual } from 'node:crypto';
import { matchProof } from '../core/secrets.js';
import type { Metrics } from '../ops/metrics.js';
import type { ConnectionVia } from '../protocol/outcome.js';
import type { OutcomeLedger } from '../queue/ledger-seam.js';

export interface Connected {
  readonly matchId: string;
  /** Which side reports ({@link pairSide}, {@link linkSide}): each is counted once. */
  readonly side: string;
  readonly via: ConnectionVia;
  readonly ms?: number;
  /** The app whose clients were matched (app keys): what its metrics are counted under. */
  readonly app?: string | undefined;
}

/** Records a side's report; a second report of the same side is ignored. */
export type OutcomeRecorder = (report: Connected) => Promise<void>;

export function outcomeRecorder(ledger: OutcomeLedger, metrics: Metrics | undefined): OutcomeRecorder {
  return async (report) => {
    if (await ledger.first(report.matchId, report.side)) metrics?.connection(report.via, report.ms, report.app);
  };
}

/** A pair's side: its initiator, or the other. */
export function pairSide(initiator: boolean): string {
  return initiator ? 'initiator' : 'other';
}

/** A group's link, as member `member` reports it: to member `peer`. */
export function linkSide(member: number, peer: number): string {
  return `${member}>${peer}`;
}

/** Whether `proof` is the match's: base64url(HMAC-SHA256(secret, matchId)), compared in constant time. */
export function provesMatch(proof: string, secret: string, matchId: string): boolean {
  const expected = Buffer.from(matchProof(secret, matchId));
  const given = Buffer.from(proof);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
