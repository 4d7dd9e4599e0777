/**
 * A lab run: builds the topology, starts pairup (and coturn with `turn`), runs the trials of each
 * cell and column in turn (one at a time: the timings are honest only on an otherwise idle lab), and
 * takes everything down again, whatever happened.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { checkRelay, PAIRUP_PORT, readMetrics, startCoturn, startPairup, stopAll, TURN_PORT, type TurnSettings } from './processes.js';
import { COLUMNS, summarise, type Cell, type Column, type TrialResult } from './report.js';
import { BEHAVIOURS, buildTopology, destroyTopology, prefixFor, type Behaviour } from './topology.js';
import { browserTrial, launchIn } from './trials/browser.js';
import { udpTrial } from './trials/udp.js';

export interface LabOptions {
  readonly trials: number;
  readonly columns: readonly Column[];
  /** Start coturn on the public segment and hand its address and secret to pairup. */
  readonly turn: boolean;
  /** Default: every unordered pair of behaviours. */
  readonly cells?: readonly (readonly [Behaviour, Behaviour])[];
  readonly log?: (line: string) => void;
}

export interface LabResult {
  readonly date: string;
  readonly machine: string;
  readonly trials: number;
  readonly columns: readonly Column[];
  readonly turn: boolean;
  readonly durationS: number;
  readonly cells: readonly Cell[];
  readonly metrics: MetricsCheck;
}

/** The lab's own counts beside pairup's (read from its admin listener after the trials). */
export interface MetricsCheck {
  /** Trials in which both peers were matched (each is one pair at pairup). */
  readonly labPairs: number;
  /** pairup_matches_total, every pool summed. */
  readonly pairupMatches: number | null;
  /** How the lab saw each matched side end (each side reports once): direct, relay, failed. */
  readonly labConnections: Connections;
  /** pairup_connections_total by via. */
  readonly pairupConnections: Connections;
  /** Browser trials that failed: their pages' reports (failed, once a page gives up) are not known to the lab. */
  readonly unknownReports: number;
}

export interface Connections {
  direct: number;
  relay: number;
  failed: number;
}

/** pairup_connections_total{via=…} from Prometheus text. */
export function connectionCounts(text: string): Connections {
  const counts: Connections = { direct: 0, relay: 0, failed: 0 };
  for (const via of ['direct', 'relay', 'failed'] as const) counts[via] = counterSum(text.split('\n').filter((line) => line.includes(`via="${via}"`)).join('\n'), 'pairup_connections_total') ?? 0;
  return counts;
}

/** The six unordered pairs of none, eim, edm. */
export const ALL_CELLS: readonly (readonly [Behaviour, Behaviour])[] = BEHAVIOURS.flatMap((a, i) => BEHAVIOURS.slice(i).map((b) => [a, b] as const));

/** Sum of every sample of a counter in Prometheus text. */
export function counterSum(text: string, name: string): number | null {
  const samples = text.split('\n').filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
  return samples.length === 0 ? null : samples.reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

export async function runLab(options: LabOptions): Promise<LabResult> {
  const log = options.log ?? (() => undefined);
  const started = performance.now();
  const prefix = prefixFor(process.pid);
  const dir = await mkdtemp(join(tmpdir(), 'pairup-nat-lab-'));
  const browsers = new Set<Browser>();
  const cells: Cell[] = (options.cells ?? ALL_CELLS).map(([a, b]) => ({ a, b }));
  let labPairs = 0;
  let pairupMatches: number | null = null;
  const labConnections: Connections = { direct: 0, relay: 0, failed: 0 };
  let pairupConnections: Connections = { direct: 0, relay: 0, failed: 0 };
  let unknownReports = 0;
  try {
    log(`building the topology (namespaces ${prefix}*)`);
    const topology = await buildTopology(prefix);
    let turn: TurnSettings | undefined;
    if (options.turn) {
      const secret = randomBytes(24).toString('base64url');
      await startCoturn(topology.turn, dir, secret);
      turn = { url: `turn:${topology.turn.address}:${TURN_PORT}?transport=udp`, secret };
      log(`coturn listening on ${topology.turn.address}:${TURN_PORT}`);
      // The relay works for a peer behind the hardest NAT before any trial counts on it.
      await checkRelay(topology.peer('a', 'edm'), topology.turn, secret);
      log('coturn relays for a peer behind an edm NAT (turnutils_uclient)');
    }
    const pairup = await startPairup(topology.server, dir, turn);
    const origin = `https://${topology.server.address}:${PAIRUP_PORT}`;
    log(`pairup listening on ${origin} (STUN on UDP ${PAIRUP_PORT})`);

    for (const cell of cells) {
      const [a, b] = [topology.peer('a', cell.a), topology.peer('b', cell.b)];
      for (const column of options.columns) {
        const results: TrialResult[] = [];
        let launched: Browser[] = [];
        if (column === 'browser') {
          launched = await Promise.all([launchIn(a, dir), launchIn(b, dir)]);
          for (const browser of launched) browsers.add(browser);
        }
        try {
          for (let trial = 0; trial < options.trials; trial++) {
            const code = `lab-${cell.a}-${cell.b}-${column}-${trial}-${randomBytes(3).toString('hex')}`;
            const result =
              column === 'browser'
                ? await browserTrial(launched[0] as Browser, launched[1] as Browser, origin, code)
                : await udpTrial(a, b, origin, join(dir, 'cert.pem'), code, column === 'udp-untimed');
            if (result.matched) labPairs++;
            for (const report of result.reports ?? []) labConnections[report]++;
            if (result.matched && result.reports === undefined) unknownReports++;
            results.push(result);
            log(`${cell.a} × ${cell.b} ${column} #${trial + 1}: ${result.ok ? `${result.via ?? ''} in ${result.ms ?? '?'} ms (${result.path ?? ''})${result.attempt === undefined ? '' : `, attempt ${result.attempt}`}` : 'failed'}`);
            if (!result.ok) log(`  ${result.detail.replaceAll('\n', '\n  ')}`);
          }
        } finally {
          for (const browser of launched) {
            await browser.close().catch(() => undefined);
            browsers.delete(browser);
          }
        }
        cell[column] = summarise(results);
      }
    }

    // pairup's own view beside what the lab saw: the pairs it made, and how each side said it
    // connected. The last reports may still be on their way: read until they agree, or a few seconds pass.
    for (let tries = 0; ; tries++) {
      const metrics = await readMetrics(topology.server);
      pairupMatches = counterSum(metrics, 'pairup_matches_total');
      pairupConnections = connectionCounts(metrics);
      const agreed = pairupConnections.direct === labConnections.direct && pairupConnections.relay === labConnections.relay;
      if ((agreed && pairupConnections.failed >= labConnections.failed) || tries >= 20) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await pairup.stop();
  } finally {
    for (const browser of browsers) await browser.close().catch(() => undefined);
    await stopAll();
    await destroyTopology(prefix);
    await rm(dir, { recursive: true, force: true });
  }
  return {
    date: new Date().toISOString(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`,
    trials: options.trials,
    columns: options.columns,
    turn: options.turn,
    durationS: Math.round((performance.now() - started) / 1000),
    cells,
    metrics: { labPairs, pairupMatches, labConnections, pairupConnections, unknownReports },
  };
}

export { COLUMNS };
