/**
 * `npm run bench`: runs each workload against pairup and against two baselines (bench/baseline.ts:
 * the minimal pairing server, and the same answering exactly pairup's headers and fields), each
 * server in a fresh process on its own core, the load generator on another, and prints pairup's
 * figures as ratios of the baselines' from the same run. The primary figure is the server's CPU time
 * per answered request. Results also go to bench/results/latest.json.
 *
 *   npm run bench                                   # quick run, a few minutes
 *   npm run bench -- --duration 4 --rounds 5 --waiters 20000  # the recorded run (bench/README.md)
 *   npm run bench -- --only storm,h2                # some workloads
 *   npm run bench -- --url https://host:3030 --cacert ca.pem   # an already running server, no baseline
 *   npm run bench -- --redis                        # pairing through Redis (bench/redis.ts)
 *   npm run bench -- --ws                           # the WebSocket transport against bare ws (bench/ws.ts)
 *   npm run bench -- --floor                        # also pairup's own work without its framework (bench/core-server.ts)
 *   npm run bench -- --only groups                  # groups of 4 against pairs (bench/groups.ts)
 *   npm run bench -- --before REF --rounds 3        # this build against REF's: storm and rendezvous (bench/before.ts)
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateDevCertificate } from '../src/net/dev-certificate.js';
import { leftWaiting } from './client.js';
import { startServer, type RunningServer, type ServerKind } from './servers.js';
import { cpuTimeMs, fmt, median, pinSelf, placement } from './tools.js';
import { beforeBench } from './before.js';
import { groupsBench } from './groups.js';
import { redisBench } from './redis.js';
import { wsBench } from './ws.js';
import { h2load, wrk } from './workloads/native.js';
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
    only: { type: 'string' },
    url: { type: 'string' },
    cacert: { type: 'string' },
    redis: { type: 'boolean', default: false },
    ws: { type: 'boolean', default: false },
    floor: { type: 'boolean', default: false },
    before: { type: 'string' },
  },
});

const EVERY = 'storm,h2,churn,pipelined,verified,rendezvous,groups,redis,ws';

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
  /** Which baseline the ratio is taken against. */
  readonly against: Exclude<ServerKind, 'pairup'>;
}

interface Workload {
  readonly name: string;
  /** Measured once, not `rounds` times: its figures do not drift with the machine's load. */
  readonly once?: boolean;
  readonly describe: string;
  readonly targets: readonly Target[];
  /** Servers it runs against (default all three). */
  readonly kinds?: readonly ServerKind[];
  run(server: RunningServer, ca: string, durationS: number): Promise<WorkloadResult>;
}

/** Load before the measured run, so that every server is measured with its code compiled. */
const WARMUP_S = 1;
const connections = positive('connections', args.connections);
const faster = (against: Target['against'], ratio: number): Target => ({ metric: 'answers/s', ratio, better: 'higher', against });

const workloads: Workload[] = [
  {
    name: 'storm',
    describe: `wrk, ${connections} keep-alive HTTP/1.1 connections, one pool, text answers, ${durationS} s`,
    targets: [faster('baseline', 0.75), faster('baseline-payload', 0.9)],
    run: (server, _ca, seconds) => wrk(server.origin, { durationS: seconds, connections, close: false, pool: 'storm' }),
  },
  {
    name: 'h2',
    describe: `h2load, ${args['h2-sessions']} HTTP/2 connections x ${args['h2-streams']} streams over ${args['h2-streams']} pools, ${durationS} s`,
    targets: [faster('baseline', 0.9)],
    run: (server, _ca, seconds) =>
      h2load(server.origin, {
        durationS: seconds,
        clients: positive('h2-sessions', args['h2-sessions']),
        streams: positive('h2-streams', args['h2-streams']),
        pools: positive('h2-streams', args['h2-streams']),
      }),
  },
  {
    name: 'churn',
    describe: `wrk, ${args['churn-concurrency']} connections, a new TLS connection per request (Connection: close), ${durationS} s`,
    targets: [faster('baseline', 0.9)],
    run: (server, _ca, seconds) =>
      wrk(server.origin, { durationS: seconds, connections: positive('churn-concurrency', args['churn-concurrency']), close: true, pool: 'churn' }),
  },
  {
    name: 'pipelined',
    describe: `autocannon -c 10 -p 10, one pool, JSON answers checked for symmetric pairing, ${durationS} s`,
    // The baseline pairs two requests of one connection, which pipelining makes common: pairup only.
    targets: [],
    kinds: ['pairup'],
    run: (server, _ca, seconds) => storm(server.origin, { durationS: seconds, connections: 10, pipelining: 10 }),
  },
  {
    name: 'verified',
    describe: `autocannon, ${connections} keep-alive HTTP/1.1 connections, JSON answers checked for symmetric pairing, ${durationS} s`,
    targets: [],
    kinds: ['pairup', 'baseline'],
    run: (server, _ca, seconds) => storm(server.origin, { durationS: seconds, connections }),
  },
  {
    name: 'rendezvous',
    once: true,
    describe: `${waiters} waiters in pools of their own (${via === 'h1' ? 'one TLS connection each' : '100 per HTTP/2 session'}), then their partners`,
    targets: [{ metric: 'KiB/waiter', ratio: 1.25, better: 'lower', against: 'baseline' }],
    kinds: ['pairup', 'baseline'],
    run: (server, ca) => rendezvous(server.origin, { waiters, via, ca, pid: server.pid, partnerConcurrency: 50 }),
  },
];

interface Measured {
  readonly result: WorkloadResult;
  readonly left: number;
}

/** Rounds combined: the median of each figure, every problem, the most waiters left behind. */
function combine(all: readonly Measured[]): Measured {
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
      ? await startServer(kind, tls, dir, where.server)
      : { kind, origin: args.url, pid: undefined, stop: () => Promise.resolve() };
  try {
    if (workload.once !== true) await workload.run(server, ca, WARMUP_S);
    const cpuBefore = server.pid === undefined ? Number.NaN : cpuTimeMs(server.pid);
    const measured = await workload.run(server, ca, durationS);
    const cpuMs = server.pid === undefined ? Number.NaN : cpuTimeMs(server.pid) - cpuBefore;
    const answers = measured.metrics.answers;
    // The server's CPU time per answer: what it costs, however fast the load generator is.
    const result: WorkloadResult =
      answers === undefined
        ? measured
        : { ...measured, metrics: { ...measured.metrics, 'cpu µs/answer': (cpuMs * 1000) / answers, 'cpu %': cpuMs / (durationS * 10) } };
    const left = await leftWaiting(server.origin, ca);
    return { result, left } satisfies Measured;
  } finally {
    await server.stop();
  }
}

// --floor: pairup's own work without its framework too (bench/core-server.ts), where it is comparable.
/** One line of the summary: a workload's figure as a ratio, and its target if it has one. */
function row(workload: string, figure: string, ratio: number, target: string, met: boolean | undefined): string {
  const verdict = met === undefined ? '' : met ? 'met' : 'NOT MET';
  return `  ${workload.padEnd(12)}${figure.padEnd(42)}${fmt(ratio).padStart(8)}  ${target.padEnd(8)}  ${verdict}`;
}

const ALL_KINDS: readonly ServerKind[] = ['pairup', 'baseline', 'baseline-payload', ...(args.floor ? (['pairup-core'] as const) : [])];
const LABEL: Readonly<Record<ServerKind, string>> = {
  pairup: 'pairup',
  baseline: 'baseline',
  'baseline-payload': 'payload',
  'pairup-core': 'core',
  'ws-baseline': 'ws',
};
const where = placement();

async function main(): Promise<void> {
  // --redis, --ws and --before REF: that workload alone (as `--only redis`, `--only ws`, `--only before`),
  // unless --only names others too.
  const flagged = [...(args.redis ? ['redis'] : []), ...(args.ws ? ['ws'] : []), ...(args.before === undefined ? [] : ['before'])];
  const selected = new Set(args.only !== undefined ? [...args.only.split(','), ...flagged] : flagged.length > 0 ? flagged : EVERY.split(','));
  const known = new Set([...workloads.map((w) => w.name), 'groups', 'redis', 'ws', 'before']);
  for (const name of selected) if (!known.has(name)) throw new Error(`--only: no workload ${name}; there are ${[...known].join(', ')}`);
  if (selected.has('before') && args.before === undefined) throw new Error('--only before: name the build to compare with, --before REF');
  // This process is the load generator (autocannon, the rendezvous clients), and wrk and h2load
  // inherit its core.
  pinSelf(where.load);
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
  // One line per target, every workload's, printed last.
  const summary: string[] = [];
  const rows: Record<string, unknown>[] = [];
  const lines: string[] = [];
  let failed = false;
  try {
    for (const workload of workloads) {
      if (!selected.has(workload.name)) continue;
      const kinds: ServerKind[] = args.url === undefined ? [...(workload.kinds ?? ALL_KINDS)] : ['pairup'];
      // Rounds alternate the order of the servers, so that drift in the machine's speed hits all.
      const runs: Partial<Record<ServerKind, Measured[]>> = {};
      const times = workload.once === true ? 1 : rounds;
      for (let round = 0; round < times; round++) {
        for (const kind of round % 2 === 0 ? kinds : [...kinds].reverse()) {
          process.stderr.write(`${workload.name}: round ${round + 1}/${times}: ${kind}: ${workload.describe} ...\n`);
          (runs[kind] ??= []).push(await measure(workload, kind, tls, ca, dir));
        }
      }
      const measured = Object.fromEntries(Object.entries(runs).map(([kind, all]) => [kind, combine(all)])) as Partial<
        Record<ServerKind, Measured>
      >;
      const ours = measured.pairup as Measured;
      const problems = kinds.flatMap((kind) => [
        ...(measured[kind]?.result.problems ?? []).map((p) => `${kind}: ${p}`),
        ...(measured[kind]?.left === 0 ? [] : [`${kind}: ${measured[kind]?.left} waiters left behind`]),
      ]);
      const verdicts = workload.targets.map((target) => {
        const base = measured[target.against];
        const ratio = base === undefined ? Number.NaN : (ours.result.metrics[target.metric] ?? 0) / (base.result.metrics[target.metric] ?? 1);
        const met = Number.isNaN(ratio) ? undefined : target.better === 'higher' ? ratio >= target.ratio : ratio <= target.ratio;
        return { target, ratio, met };
      });
      if (problems.length > 0 || verdicts.some((v) => v.met === false)) failed = true;
      rows.push({
        workload: workload.name,
        describe: workload.describe,
        figures: Object.fromEntries(kinds.map((kind) => [kind, measured[kind]?.result.metrics])),
        targets: verdicts,
        problems,
      });
      lines.push('', `${workload.name} — ${workload.describe}`);
      if (workload.targets.length === 0) summary.push(row(workload.name, 'answers checked, errors', Number.NaN, '0 errors', problems.length === 0));
      if (problems.length > 0) {
        lines.push(`  FAIL: ${problems.join('; ')}`);
        continue;
      }
      const others = kinds.filter((kind) => kind !== 'pairup');
      lines.push(
        `  ${'metric'.padEnd(16)}${kinds.map((kind) => LABEL[kind].padStart(11)).join('')}${others.map((kind) => `÷${LABEL[kind]}`.padStart(11)).join('')}`,
      );
      for (const [name, value] of Object.entries(ours.result.metrics)) {
        const cells = kinds.map((kind) => fmt(measured[kind]?.result.metrics[name]).padStart(11)).join('');
        const ratios = others
          .map((kind) => {
            const baseValue = measured[kind]?.result.metrics[name];
            return fmt(baseValue === undefined || baseValue === 0 ? Number.NaN : value / baseValue).padStart(11);
          })
          .join('');
        lines.push(`  ${name.padEnd(16)}${cells}${ratios}`);
      }
      const core = measured['pairup-core']?.result.metrics;
      if (core !== undefined) {
        const of = (kind: ServerKind, name: string): string => fmt((core[name] ?? 0) / (measured[kind]?.result.metrics[name] ?? Number.NaN));
        lines.push(
          `  floor: pairup's own work without its framework (core): ${of('baseline', 'answers/s')}x baseline's answers/s, ` +
            `${of('baseline-payload', 'answers/s')}x payload's; ${of('baseline-payload', 'cpu µs/answer')}x payload's CPU per answer`,
        );
      }
      for (const { target, ratio, met } of verdicts) {
        summary.push(row(workload.name, `${target.metric} ÷ ${LABEL[target.against]}`, ratio, `${target.better === 'higher' ? '>=' : '<='} ${target.ratio}`, met));
        lines.push(
          `  target: ${target.metric} ${target.better === 'higher' ? '>=' : '<='} ${target.ratio}x ${target.against}: ${fmt(ratio)}x ${met === undefined ? '(no baseline)' : met ? 'met' : 'NOT MET'}`,
        );
      }
    }
    if (selected.has('groups') && args.url === undefined) {
      const groups = await groupsBench({ durationS, rounds, connections, tls, ca, dir, where });
      lines.push(...groups.lines);
      rows.push(...groups.rows);
      failed ||= groups.failed;
      summary.push(row('groups', 'answers checked, errors', Number.NaN, '0 errors', !groups.failed));
      summary.push(row('groups', 'answers/s, groups of 4 ÷ pairs', groups.ratio, 'none', undefined));
    }
    if (selected.has('before') && args.before !== undefined && args.url === undefined) {
      const before = await beforeBench({ ref: args.before, durationS, rounds, connections, waiters, via, tls, ca, dir, where });
      lines.push(...before.lines);
      rows.push(...before.rows);
      failed ||= before.failed;
      summary.push(row('before', 'answers checked, errors', Number.NaN, '0 errors', before.problems.length === 0));
      summary.push(row('before', 'storm cpu µs/answer, now ÷ before', before.cpu, `<= ${fmt(1 + before.noise)}`, before.cpu <= 1 + before.noise));
      summary.push(row('before', 'rendezvous KiB/waiter, now ÷ before', before.memory, '<= 1.05', before.memory <= 1.05));
    }
    if (selected.has('redis') && args.url === undefined) {
      const redis = await redisBench({ durationS, rounds, connections, tls, dir, where });
      lines.push(...redis.lines);
      rows.push(...redis.rows);
      failed ||= redis.failed;
      summary.push(row('redis', 'pairs/s, Redis ÷ in memory (1 process)', redis.ratio, 'none', undefined));
    }
    if (selected.has('ws') && args.url === undefined) {
      const ws = await wsBench({ durationS, rounds, tls, ca, dir, where, waiters: Math.min(waiters, 5000) });
      lines.push(...ws.lines);
      rows.push(...ws.rows);
      failed ||= ws.failed;
      summary.push(row('ws', 'cpu µs/pairing ÷ ws', ws.ratio, '<= 1.3', !ws.failed));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const cpu = cpus();
  const machine = `${cpu.length} x ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
  const how =
    `median of ${rounds} round${rounds === 1 ? '' : 's'} (rendezvous: 1); ` +
    (where.server === undefined
      ? 'server and load generator share the cores (fewer than two cores, or no taskset): figures are shared'
      : `server pinned to core ${where.server}, load generator to core ${where.load}`);
  const table = summary.length === 0 ? [] : ['', 'summary', `  ${'workload'.padEnd(12)}${'figure'.padEnd(42)}${'ratio'.padStart(8)}  ${'target'.padEnd(8)}`, ...summary];
  process.stdout.write(`pairup benchmark, ${new Date().toISOString()}, ${machine}, ${how}\n${[...lines, ...table].join('\n')}\n`);
  const results = new URL('results/', import.meta.url);
  await mkdir(results, { recursive: true });
  await writeFile(
    new URL('latest.json', results),
    `${JSON.stringify({ date: new Date().toISOString(), machine, options: args, workloads: rows }, null, 2)}\n`,
  );
  if (failed) process.exitCode = 1;
}

await main();
