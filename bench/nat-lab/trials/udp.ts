/**
 * One trial of the Node UDP example (examples/udp-handshake.ts): both peers run it at once in their
 * own namespaces with the same code; it learns its mapping and NAT from pairup's STUN responder,
 * matches, and punches a direct UDP path: when and how pairup says (timed), or at once (`untimed`,
 * the example's --untimed). The trial succeeds when both processes verified their partner and exit 0.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startIn, type Running } from '../processes.js';
import type { Peer } from '../topology.js';
import type { TrialResult } from '../report.js';

const EXAMPLE = fileURLToPath(new URL('../../../examples/udp-handshake.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');
/** The example gives up after 5 s of STUN and 3 attempts of 10 s: anything longer is stuck. */
const TRIAL_LIMIT_MS = 45_000;

interface Side {
  readonly run: Running;
  matchedAt?: number;
  connectedAt?: number;
  seenAs?: string;
  attempt?: number;
}

export async function udpTrial(a: Peer, b: Peer, url: string, cacert: string, code: string, untimed: boolean): Promise<TrialResult> {
  const sides: Side[] = [a, b].map((peer) => {
    const args = ['--import', TSX, EXAMPLE, url, '--code', code, '--cacert', cacert, ...(untimed ? ['--untimed'] : [])];
    const run = startIn(`udp-handshake ${peer.ns}`, peer.ns, process.execPath, args, {
      cwd: join(EXAMPLE, '..', '..'),
    });
    const side: Side = { run };
    // Stamped as each line arrives: the time to a verified path is measured here, not by the peers.
    void run.waitFor(/^matched with /, TRIAL_LIMIT_MS).then(
      () => (side.matchedAt = performance.now()),
      () => undefined,
    );
    void run.waitFor(/^connected to /, TRIAL_LIMIT_MS).then(
      (line) => {
        side.connectedAt = performance.now();
        side.seenAs = line.slice('connected to '.length);
      },
      () => undefined,
    );
    void run.waitFor(/^punched on attempt \d+/, TRIAL_LIMIT_MS).then(
      (line) => (side.attempt = Number(/\d+/.exec(line)?.[0])),
      () => undefined,
    );
    return side;
  });
  const limit = setTimeout(() => void Promise.all(sides.map((side) => side.run.stop(1000))), TRIAL_LIMIT_MS);
  const codes = await Promise.all(
    sides.map(
      (side) =>
        new Promise<number | null>((resolve) => {
          if (side.run.child.exitCode !== null) resolve(side.run.child.exitCode);
          else side.run.child.once('exit', (exitCode) => resolve(exitCode));
        }),
    ),
  );
  clearTimeout(limit);
  const ok = codes.every((exitCode) => exitCode === 0);
  const matched = sides.map((side) => side.matchedAt);
  const connected = sides.map((side) => side.connectedAt);
  const detail = sides.map((side, i) => `${i === 0 ? a.ns : b.ns}: exit ${String(codes[i])}; ${side.run.lines.filter((line) => line !== '').join(' | ')}`).join('\n');
  const bothMatched = !matched.includes(undefined);
  // A matched side reports how it went before it exits: direct when it verified its partner (exit 0).
  const reports = sides.flatMap((side, i) => (side.matchedAt === undefined ? [] : [codes[i] === 0 ? ('direct' as const) : ('failed' as const)]));
  if (!ok || !bothMatched || connected.includes(undefined)) return { ok: false, matched: bothMatched, detail, reports };
  // From the moment both were matched to the moment both had verified the other.
  const ms = Math.max(...(connected as number[])) - Math.max(...(matched as number[]));
  // Timed: the later of the two sides' attempts (both punch on each attempt).
  const attempt = untimed ? {} : { attempt: Math.max(...sides.map((side) => side.attempt ?? 0)) };
  return { ok: true, matched: true, via: 'direct', ms: Math.round(ms), ...attempt, path: sides.map((side) => side.seenAs ?? '?').join(' ↔ '), detail, reports };
}
