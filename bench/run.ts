/**
 * `npm run bench`: runs each workload against pairup and against the baseline (bench/baseline.ts),
 * each server in a fresh process, and prints pairup's figures as ratios of the baseline's from the
 * same run. Results also go to bench/results/latest.json.
 *
 *   npm run bench                                   # quick run, about a minute
 *   npm run bench -- --duration 5 --rounds 5 --waiters 20000  # the recorded run (bench/README.md)
 *   npm run bench -- --only storm,h2                # some workloads
 *   npm run bench -- --url https://host:3030 --cacert ca.pem   # an already running server, no baseline
 *   npm run bench -- --baseline-payload pairup      # the baseline answers with pairup's headers and fields
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateDevCertificate } from '../src/net/dev-certificate.js';
import { h1Get } from './client.js';
import { startServer, type RunningServer, type ServerKind } from './servers.js';
import { churn } from './workloads/churn.js';
import { h2 } from './workloads/h2.js';
import { rendezvous } from './workloads/rendezvous.js';
import { storm } from './workloads/storm.js';
import type { WorkloadResult } from './workloads/types.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '2' },
    waiters: { type: 'string', default: '5000' },
    via: { type: 'string' },
    connections: { type: 'string', default: '100' },
    'churn-concurrency': { type: 'string', default: '32' },
    'h2-sessions': { type: 'string', default: '4' },
    'h2-streams': { type: 'string', default: '25' },
    only: { type: 'string', default: 'storm,rendezvous,churn,h2' },
    url: { type: 'string' },
    cacert: { type: 'string' },
    'baseline-payload': { type: 'string', default: 'minimal' },
  },
});
const baselinePayload = args['baseline-payload'];
if (baselinePayload !== 'minimal' && baselinePayload !== 'pairup') {
  throw new Error(`--baseline-payload must be minimal or pairup, got ${baselinePayload}`);
}

function positive(name: string, raw: string | undefined): number {
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number, got ${raw}`);
  return value;
}

const durationS = positive('duration', args.duration);
const rounds = Math.round(positive('rounds', args.rounds));
const waiters = Math.round(positive('waiters', args.waiters));
// One process may hold at most `ulimit -n` descriptors: past that, waiters share HTTP/2 sessions.
const viaArg = args.via ?? (waiters <= 9000 ? 'h1' : 'h2');
if (viaArg !== 'h1' && viaArg !== 'h2') throw new Error(`--via must be h1 or h2, got ${viaArg}`);
const via: 'h1' | 'h2' = viaArg;

interface Target {
  readonly metric: string;
  readonly ratio: number;
  readonly better: 'higher' | 'lower';
}

interface Workload {
  readonly name: string;
  /** Measured once, not `rounds` times: its figures do not drift with the machine's load. */
  readonly once?: boolean;
  readonly describe: string;
  readonly target: Target;
  run(server: RunningServer, ca: string, durationS: number): Promise<WorkloadResult>;
}

/** Load before the measured run, so that both servers are measured with their code compiled. */
const WARMUP_S = 1;

const workloads: Workload[] = [
  {
    name: 'storm',
    describe: `${args.connections} keep-alive HTTP/1.1 connections, one pool, ${durationS} s`,
    target: { metric: 'pairs/s', ratio: 0.9, better: 'higher' },
    run: (server, _ca, seconds) =>
      storm(server.origin, { durationS: seconds, connections: positive('connections', args.connections) }),
  },
  {
    name: 'rendezvous',
    once: true,
    describe: `${waiters} waiters in pools of their own (${via === 'h1' ? 'one TLS connection each' : '100 per HTTP/2 session'}), then their partners`,
    target: { metric: 'KiB/waiter', ratio: 1.25, better: 'lower' },
    run: (server, ca) => rendezvous(server.origin, { waiters, via, ca, pid: server.pid, partnerConcurrency: 50 }),
  },
  {
    name: 'churn',
    describe: `${args['churn-concurrency']} clients, a new TLS connection per request, ${durationS} s`,
    target: { metric: 'pairs/s', ratio: 0.9, better: 'higher' },
    run: (server, ca, seconds) =>
      churn(server.origin, {
        durationS: seconds,
        concurrency: positive('churn-concurrency', args['churn-concurrency']),
        ca,
      }),
  },
  {
    name: 'h2',
    describe: `${args['h2-sessions']} HTTP/2 sessions x ${args['h2-streams']} streams, ${durationS} s`,
    target: { metric: 'pairs/s', ratio: 0.9, better: 'higher' },
    run: (server, ca, seconds) =>
      h2(server.origin, {
        durationS: seconds,
        sessions: positive('h2-sessions', args['h2-sessions']),
        streams: positive('h2-streams', args['h2-streams']),
        ca,
      }),
  },
];

/** Waiters left behind after a workload (0 expected), once aborted clients have been noticed. */
async function leftWaiting(origin: string, ca: string): Promise<number> {
  let waiting = Number.NaN;
  for (let i = 0; i < 40; i++) {
    const { body } = await h1Get(new URL(origin), '/healthz', { ca, agent: false });
    waiting = (JSON.parse(body) as { waiting: number }).waiting;
    if (waiting === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return waiting;
}

interface Measured {
  readonly result: WorkloadResult;
  readonly left: number;
}

/** Rounds combined: the median of each figure, every problem, the most waiters left behind. */
function combine(all: readonly Measured[]): Measured {
  const median = (values: number[]): number => {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
  };
  const names = Object.keys(all[0]?.result.metrics ?? {});
  return {
    result: {
      metrics: Object.fromEntries(names.map((name) => [name, median(all.map((m) => m.result.metrics[name] ?? 0))])),
      problems: all.flatMap((m) => m.result.problems),
    },
    left: Math.max(...all.map((m) => m.left)),
  };
}

async function measure(
  workload: Workload,
  kind: ServerKind,
  tls: { certFile: string; keyFile: string },
  ca: string,
  dir: string,
) {
  const server: RunningServer =
    args.url === undefined
      ? await startServer(kind, tls, dir, [], kind === 'baseline' ? { BASELINE_PAYLOAD: baselinePayload } : {})
      : { kind, origin: args.url, pid: undefined, stop: () => Promise.resolve() };
  try {
    if (workload.once !== true) await workload.run(server, ca, WARMUP_S);
    const result = await workload.run(server, ca, durationS);
    const left = await leftWaiting(server.origin, ca);
    return { result, left } satisfies Measured;
  } finally {
    await server.stop();
  }
}

const fmt = (value: number | undefined): string =>
  value === undefined || Number.isNaN(value)
    ? '-'
    : Math.abs(value) >= 100
      ? value.toFixed(0)
      : Math.abs(value) >= 10
        ? value.toFixed(1)
        : value.toFixed(2);

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pairup-bench-'));
  let ca: string;
  const tls = { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') };
  if (args.cacert !== undefined) {
    ca = await readFile(args.cacert, 'utf8');
  } else {
    const pem = await generateDevCertificate(1);
    await writeFile(tls.certFile, pem.cert);
    await writeFile(tls.keyFile, pem.key);
    ca = pem.cert;
  }
  const selected = new Set(args.only.split(','));
  const kinds: ServerKind[] = args.url === undefined ? ['pairup', 'baseline'] : ['pairup'];
  const rows: Record<string, unknown>[] = [];
  const lines: string[] = [];
  let failed = false;
  try {
    for (const workload of workloads.filter((w) => selected.has(w.name))) {
      // Rounds alternate which server goes first, so that drift in the machine's speed hits both.
      const runs: Record<ServerKind, Measured[]> = { pairup: [], baseline: [] };
      const times = workload.once === true ? 1 : rounds;
      for (let round = 0; round < times; round++) {
        for (const kind of round % 2 === 0 ? kinds : [...kinds].reverse()) {
          process.stderr.write(`${workload.name}: round ${round + 1}/${times}: ${kind}: ${workload.describe} ...\n`);
          runs[kind].push(await measure(workload, kind, tls, ca, dir));
        }
      }
      const measured: Partial<Record<ServerKind, Measured>> = {
        pairup: combine(runs.pairup),
        ...(runs.baseline.length > 0 ? { baseline: combine(runs.baseline) } : {}),
      };
      const ours = measured.pairup as Measured;
      const base = measured.baseline;
      const problems = [
        ...ours.result.problems.map((p) => `pairup: ${p}`),
        ...(ours.left === 0 ? [] : [`pairup: ${ours.left} waiters left behind`]),
        ...(base === undefined ? [] : base.result.problems.map((p) => `baseline: ${p}`)),
      ];
      const { metric, ratio: targetRatio, better } = workload.target;
      const ratio = base === undefined ? Number.NaN : (ours.result.metrics[metric] ?? 0) / (base.result.metrics[metric] ?? 1);
      const met = Number.isNaN(ratio) ? undefined : better === 'higher' ? ratio >= targetRatio : ratio <= targetRatio;
      if (problems.length > 0 || met === false) failed = true;
      rows.push({
        workload: workload.name,
        describe: workload.describe,
        pairup: ours.result.metrics,
        baseline: base?.result.metrics,
        target: `${metric} ${better === 'higher' ? '>=' : '<='} ${targetRatio}x baseline`,
        ratio,
        met,
        problems,
      });
      lines.push('', `${workload.name} — ${workload.describe}`);
      if (problems.length > 0) {
        lines.push(`  FAIL: ${problems.join('; ')}`);
        continue;
      }
      lines.push(`  ${'metric'.padEnd(16)}${'pairup'.padStart(12)}${'baseline'.padStart(12)}${'ratio'.padStart(9)}`);
      for (const [name, value] of Object.entries(ours.result.metrics)) {
        const baseValue = base?.result.metrics[name];
        const r = baseValue === undefined || baseValue === 0 ? Number.NaN : value / baseValue;
        lines.push(`  ${name.padEnd(16)}${fmt(value).padStart(12)}${fmt(baseValue).padStart(12)}${fmt(r).padStart(9)}`);
      }
      lines.push(
        `  target: ${metric} ${better === 'higher' ? '>=' : '<='} ${targetRatio}x baseline: ${fmt(ratio)}x ${met === undefined ? '(no baseline)' : met ? 'met' : 'NOT MET'}`,
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const cpu = cpus();
  const machine = `${cpu.length} x ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
  const how =
    `median of ${rounds} round${rounds === 1 ? '' : 's'} (rendezvous: 1)` +
    (baselinePayload === 'pairup' ? "; the baseline answers with pairup's headers and JSON fields (not the targets' baseline)" : '');
  process.stdout.write(`pairup benchmark, ${new Date().toISOString()}, ${machine}, ${how}\n${lines.join('\n')}\n`);
  const results = new URL('results/', import.meta.url);
  await mkdir(results, { recursive: true });
  await writeFile(
    new URL('latest.json', results),
    `${JSON.stringify({ date: new Date().toISOString(), machine, options: args, workloads: rows }, null, 2)}\n`,
  );
  if (failed) process.exitCode = 1;
}

await main();
