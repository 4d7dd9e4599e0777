/** The matrix: trials summed per cell and column, printed as a table and written as JSON. */
import type { Behaviour } from './topology.js';

/** udp: the UDP example timed by pairup (punch); udp-untimed: the same without (--untimed); browser: the demo page. */
export type Column = 'udp' | 'udp-untimed' | 'browser';
export const COLUMNS: readonly Column[] = ['udp', 'udp-untimed', 'browser'];

export interface TrialResult {
  readonly ok: boolean;
  /** pairup matched the two peers (each such trial is one pair in pairup's metrics). */
  readonly matched: boolean;
  /** direct: host or server-reflexive/peer-reflexive candidates at both ends; relay: a TURN relay. */
  readonly via?: 'direct' | 'relay';
  /** Time to an open, verified path (per column: see the lab's README). */
  readonly ms?: number;
  /** What the path was: the addresses (UDP), the selected candidate pair's types (browser). */
  readonly path?: string;
  /** What the peers printed or showed, for reading a failure. */
  readonly detail: string;
  /** The punch attempt that connected (the timed UDP column). */
  readonly attempt?: number;
  /** What each matched side told pairup (POST /outcome, the WebSocket's connected/failed), where the lab knows it. */
  readonly reports?: readonly ('direct' | 'relay' | 'failed')[];
}

export interface ColumnStats {
  readonly trials: number;
  readonly successes: number;
  readonly successPct: number;
  readonly direct: number;
  readonly relayed: number;
  /** Successes on the first punch attempt (the timed UDP column; null elsewhere). */
  readonly firstAttempt: number | null;
  readonly p50Ms: number | null;
  readonly p95Ms: number | null;
  /** Each distinct path and how many trials took it. */
  readonly paths: Readonly<Record<string, number>>;
  readonly results: readonly TrialResult[];
}

export interface Cell {
  readonly a: Behaviour;
  readonly b: Behaviour;
  udp?: ColumnStats;
  'udp-untimed'?: ColumnStats;
  browser?: ColumnStats;
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? null;
}

export function summarise(results: readonly TrialResult[]): ColumnStats {
  const good = results.filter((r) => r.ok);
  const times = good.flatMap((r) => (r.ms === undefined ? [] : [r.ms])).sort((x, y) => x - y);
  const paths: Record<string, number> = {};
  for (const r of good) if (r.path !== undefined) paths[r.path] = (paths[r.path] ?? 0) + 1;
  return {
    trials: results.length,
    successes: good.length,
    successPct: results.length === 0 ? 0 : Math.round((good.length / results.length) * 100),
    direct: good.filter((r) => r.via === 'direct').length,
    relayed: good.filter((r) => r.via === 'relay').length,
    firstAttempt: results.some((r) => r.attempt !== undefined) ? good.filter((r) => r.attempt === 1).length : null,
    p50Ms: percentile(times, 50),
    p95Ms: percentile(times, 95),
    paths,
    results,
  };
}

const label = (cell: Cell): string => `${cell.a} × ${cell.b}`;

function describe(stats: ColumnStats | undefined): string[] {
  if (stats === undefined) return ['', '', '', ''];
  const first = stats.firstAttempt === null || stats.successes === 0 ? '' : ` (1st ${stats.firstAttempt})`;
  const via = stats.successes === 0 ? '-' : [stats.direct > 0 ? `direct ${stats.direct}${first}` : '', stats.relayed > 0 ? `relay ${stats.relayed}` : ''].filter(Boolean).join(', ');
  const ms = (value: number | null): string => (value === null ? '-' : `${value} ms`);
  return [`${stats.successPct}% (${stats.successes}/${stats.trials})`, via, ms(stats.p50Ms), ms(stats.p95Ms)];
}

/** The matrix as an aligned text table: one row per cell, success, path kind and p50/p95 per column. */
export function formatMatrix(cells: readonly Cell[], columns: readonly Column[]): string {
  const header = ['cell', ...columns.flatMap((c) => [`${c} success`, `${c} via`, 'p50', 'p95'])];
  const rows = cells.map((cell) => [label(cell), ...columns.flatMap((c) => describe(cell[c]))]);
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((row) => (row[i] ?? '').length)));
  const line = (row: readonly string[]): string => row.map((text, i) => text.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  const paths = cells.flatMap((cell) =>
    columns.flatMap((c) => {
      const found = Object.entries(cell[c]?.paths ?? {});
      return c === 'browser' && found.length > 0 ? [`  ${label(cell)}: ${found.map(([path, n]) => `${path} ×${n}`).join(', ')}`] : [];
    }),
  );
  return [line(header), ...rows.map(line), ...(paths.length > 0 ? ['selected candidate pairs (local/remote, both pages):', ...paths] : [])].join('\n');
}
