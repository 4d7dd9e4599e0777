/**
 * `npm run bench -- --only groups`: what a group of four costs against a pair. The same wrk storm
 * (keep-alive HTTP/1.1 connections, one pool, text answers) drives pairup asking pairs (`&size=2`)
 * and asking groups of four (`&size=4`), each on a fresh server, the order alternating round after
 * round. Every answer is checked (bench/wrk/verify.lua): a pair's lists exactly one address, a
 * group's exactly the three other members, distinct. Figures: answers and matches (pairs or groups)
 * per second, the server's CPU µs per answer and per match, and groups' answers/s ÷ pairs'.
 *
 * Placement on two cores: pairup on core 0, wrk on core 1.
 */
import { stormOnce, type Pinned } from './measured.js';
import { fmt, median } from './tools.js';

export interface GroupsBenchOptions extends Pinned {
  readonly durationS: number;
  readonly rounds: number;
  readonly connections: number;
}

interface Setup {
  readonly name: string;
  readonly size: number;
  /** What one match is called in the table. */
  readonly match: string;
}

const SETUPS: readonly Setup[] = [
  { name: 'pairs', size: 2, match: 'pair' },
  { name: 'groups of 4', size: 4, match: 'group' },
];

const NAMES = ['answers/s', 'matches/s', 'cpu µs/answer', 'cpu µs/match', 'p50 ms', 'p99 ms'] as const;

export async function groupsBench(
  options: GroupsBenchOptions,
): Promise<{ lines: string[]; rows: Record<string, unknown>[]; failed: boolean; ratio: number }> {
  const rounds = new Map<string, Record<string, number>[]>(SETUPS.map((s) => [s.name, []]));
  const problems: string[] = [];
  for (let round = 0; round < options.rounds; round++) {
    for (const setup of round % 2 === 0 ? SETUPS : [...SETUPS].reverse()) {
      process.stderr.write(`groups: round ${round + 1}/${options.rounds}: ${setup.name} ...\n`);
      const run = await stormOnce(options, { durationS: options.durationS, connections: options.connections, pool: 'groups', size: setup.size });
      problems.push(...run.problems.map((p) => `${setup.name}: ${p}`));
      const m = run.metrics;
      rounds.get(setup.name)?.push({
        'answers/s': m['answers/s'] ?? Number.NaN,
        // Every member of a match gets an answer: a match is `size` answers.
        'matches/s': (m['answers/s'] ?? Number.NaN) / setup.size,
        'cpu µs/answer': m['cpu µs/answer'] ?? Number.NaN,
        'cpu µs/match': (m['cpu µs/answer'] ?? Number.NaN) * setup.size,
        'p50 ms': m['p50 ms'] ?? Number.NaN,
        'p99 ms': m['p99 ms'] ?? Number.NaN,
      });
    }
  }
  const combined = Object.fromEntries(
    SETUPS.map((s) => [s.name, Object.fromEntries(NAMES.map((n) => [n, median((rounds.get(s.name) ?? []).map((r) => r[n] ?? Number.NaN))]))]),
  ) as Record<string, Record<string, number>>;
  const [pairs, groups] = SETUPS.map((s) => combined[s.name] ?? {});
  const of = (name: string): number => (groups?.[name] ?? Number.NaN) / (pairs?.[name] ?? Number.NaN);
  const lines = [
    '',
    `groups — wrk, ${options.connections} keep-alive HTTP/1.1 connections, one pool, text answers, pairs (&size=2) against groups of 4 (&size=4), ${options.durationS} s; ` +
      `pairup on core ${options.where.server ?? '-'}, wrk on core ${options.where.load ?? '-'}`,
  ];
  if (problems.length > 0) lines.push(`  FAIL: ${problems.join('; ')}`);
  lines.push(`  ${'metric'.padEnd(16)}${SETUPS.map((s) => s.name.padStart(14)).join('')}${'÷ pairs'.padStart(11)}`);
  for (const name of NAMES) {
    lines.push(`  ${name.padEnd(16)}${SETUPS.map((s) => fmt(combined[s.name]?.[name]).padStart(14)).join('')}${fmt(of(name)).padStart(11)}`);
  }
  for (const name of ['answers/s', 'cpu µs/answer']) {
    lines.push(`  rounds, ${name}: ${SETUPS.map((s) => `${s.name} ${(rounds.get(s.name) ?? []).map((r) => fmt(r[name])).join(', ')}`).join('; ')}`);
  }
  const ratio = of('answers/s');
  lines.push(
    `  (matches/s: ${SETUPS.map((s) => `${s.match}s/s`).join(', ')}; cpu µs/match: per ${SETUPS.map((s) => s.match).join(' or ')}) ` +
      `groups of 4 ÷ pairs: ${fmt(ratio)}x answers/s, ${fmt(of('cpu µs/answer'))}x CPU per answer`,
  );
  return {
    lines,
    rows: [{ workload: 'groups', figures: combined, rounds: Object.fromEntries(rounds), problems }],
    failed: problems.length > 0,
    ratio,
  };
}
