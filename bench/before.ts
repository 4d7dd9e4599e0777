/**
 * `npm run bench -- --before REF`: this checkout's pairup against its own build at REF (a commit,
 * such as the one before a change), in the same run. REF is exported with `git archive` into a
 * temporary folder, installed (`npm ci`, whose `prepare` builds it) and removed afterwards. Each
 * round runs, in alternating order of the builds, each on a fresh server: the storm (wrk,
 * keep-alive HTTP/1.1, one pool, text answers checked: the server's CPU µs per answer and answers/s)
 * and the rendezvous (resident KiB per held waiter). Figures are medians of the rounds, beside each
 * round's value and the spread, (largest - smallest) ÷ median. At least 3 rounds (`--rounds` is
 * raised to 3): fewer tell nothing of the noise.
 *
 * Targets: KiB per waiter now ÷ before ≤ 1.05; storm CPU per answer now ÷ before within the rounds'
 * noise, i.e. ≤ 1 + the larger of the two builds' spreads.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rendezvousOnce, stormOnce, type Pinned } from './measured.js';
import { fmt, median, spread } from './tools.js';

export interface BeforeBenchOptions extends Pinned {
  /** The commit to compare with (anything `git rev-parse` takes). */
  readonly ref: string;
  readonly durationS: number;
  readonly rounds: number;
  readonly connections: number;
  readonly waiters: number;
  readonly via: 'h1' | 'h2';
}

/** Fewest rounds: the noise of two is one difference. */
const MIN_ROUNDS = 3;
/** Most KiB per held waiter now, as a multiple of before's. */
const MEMORY_TARGET = 1.05;

function run(command: string, args: readonly string[], cwd?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${out.slice(-2000)}`))));
  });
}

/** REF's tree exported, installed and built in a temporary folder: its commit and entry module. */
async function build(ref: string): Promise<{ commit: string; root: string; main: string }> {
  const commit = (await run('git', ['rev-parse', '--verify', `${ref}^{commit}`])).trim();
  const root = await mkdtemp(join(tmpdir(), 'pairup-before-'));
  try {
    process.stderr.write(`before: building ${ref} (${commit.slice(0, 12)}) in ${root} ...\n`);
    await run('sh', ['-c', 'git archive --format=tar "$1" | tar -x -C "$2"', 'sh', commit, root]);
    // npm ci runs the package's `prepare`, which is its build; a tree whose prepare does not build is built here.
    await run('npm', ['ci', '--no-audit', '--no-fund'], root);
    if (!existsSync(join(root, 'dist', 'main.js'))) await run('npm', ['run', 'build'], root);
    return { commit, root, main: join(root, 'dist', 'main.js') };
  } catch (error) {
    await rm(root, { recursive: true, force: true });
    throw error;
  }
}

type Build = 'now' | 'before';
const FIGURES = [
  ['storm', 'cpu µs/answer'],
  ['storm', 'answers/s'],
  ['rendezvous', 'KiB/waiter'],
] as const;

export async function beforeBench(
  options: BeforeBenchOptions,
): Promise<{ lines: string[]; rows: Record<string, unknown>[]; problems: readonly string[]; failed: boolean; memory: number; cpu: number; noise: number }> {
  const times = Math.max(MIN_ROUNDS, options.rounds);
  const before = await build(options.ref);
  const rounds: Record<Build, Record<string, number>[]> = { now: [], before: [] };
  const problems: string[] = [];
  try {
    for (let round = 0; round < times; round++) {
      const order: Build[] = round % 2 === 0 ? ['now', 'before'] : ['before', 'now'];
      const figures: Record<Build, Record<string, number>> = { now: {}, before: {} };
      const pinned = (build: Build): Pinned => (build === 'now' ? options : { ...options, main: before.main });
      for (const build of order) {
        process.stderr.write(`before: round ${round + 1}/${times}: storm: ${build} ...\n`);
        const storm = await stormOnce(pinned(build), { durationS: options.durationS, connections: options.connections, pool: 'storm' });
        problems.push(...storm.problems.map((p) => `storm, ${build}: ${p}`));
        figures[build]['storm answers/s'] = storm.metrics['answers/s'] ?? Number.NaN;
        figures[build]['storm cpu µs/answer'] = storm.metrics['cpu µs/answer'] ?? Number.NaN;
      }
      for (const build of order) {
        process.stderr.write(`before: round ${round + 1}/${times}: rendezvous of ${options.waiters}: ${build} ...\n`);
        const held = await rendezvousOnce(pinned(build), { waiters: options.waiters, via: options.via });
        problems.push(...held.problems.map((p) => `rendezvous, ${build}: ${p}`));
        figures[build]['rendezvous KiB/waiter'] = held.metrics['KiB/waiter'] ?? Number.NaN;
      }
      rounds.now.push(figures.now);
      rounds.before.push(figures.before);
    }
  } finally {
    await rm(before.root, { recursive: true, force: true });
  }

  const values = (build: Build, name: string): number[] => rounds[build].map((r) => r[name] ?? Number.NaN);
  const ratioOf = (name: string): number => median(values('now', name)) / median(values('before', name));
  const noiseOf = (name: string): number => Math.max(spread(values('now', name)), spread(values('before', name)));
  const cpuName = 'storm cpu µs/answer';
  const memoryName = 'rendezvous KiB/waiter';
  const cpu = ratioOf(cpuName);
  const noise = noiseOf(cpuName);
  const memory = ratioOf(memoryName);
  const cpuMet = cpu <= 1 + noise;
  const memoryMet = memory <= MEMORY_TARGET;

  const lines = [
    '',
    `before — this build (now) against ${options.ref} (${before.commit.slice(0, 12)}), ${times} rounds, alternating: ` +
      `storm (wrk, ${options.connections} keep-alive HTTP/1.1 connections, one pool, text answers, ${options.durationS} s) and rendezvous of ${options.waiters} waiters`,
  ];
  if (problems.length > 0) lines.push(`  FAIL: ${problems.join('; ')}`);
  lines.push(
    `  ${'figure'.padEnd(26)}${'now'.padStart(9)}${'before'.padStart(9)}${'÷ before'.padStart(10)}   ${'rounds now / before'.padEnd(40)}  spread now / before`,
  );
  for (const [workload, metric] of FIGURES) {
    const name = `${workload} ${metric}`;
    const perRound = (build: Build) => values(build, name).map(fmt).join(', ');
    lines.push(
      `  ${name.padEnd(26)}${fmt(median(values('now', name))).padStart(9)}${fmt(median(values('before', name))).padStart(9)}${fmt(ratioOf(name)).padStart(10)}   ` +
        `${`${perRound('now')} / ${perRound('before')}`.padEnd(40)}  ${(spread(values('now', name)) * 100).toFixed(1)}% / ${(spread(values('before', name)) * 100).toFixed(1)}%`,
    );
  }
  const range = (build: Build) => [Math.min(...values(build, cpuName)), Math.max(...values(build, cpuName))] as const;
  const [nowLow, nowHigh] = range('now');
  const [beforeLow, beforeHigh] = range('before');
  const overlap = nowLow <= beforeHigh && beforeLow <= nowHigh;
  // Each round's two builds ran one after the other: their ratio is less touched by the machine's drift than the medians'.
  const paired = values('now', cpuName).map((now, i) => now / (values('before', cpuName)[i] ?? Number.NaN));
  lines.push(
    `  storm CPU per answer, each round's now ÷ before: ${paired.map(fmt).join(', ')} (median ${fmt(median(paired))})`,
    `  target: storm CPU per answer now ÷ before <= 1 + the larger spread (${fmt(1 + noise)}): ${fmt(cpu)}x ${cpuMet ? 'met' : 'NOT MET'} ` +
      `(ranges ${fmt(nowLow)}–${fmt(nowHigh)} and ${fmt(beforeLow)}–${fmt(beforeHigh)} µs ${overlap ? 'overlap' : 'do not overlap'})`,
    `  target: KiB per held waiter now ÷ before <= ${MEMORY_TARGET}: ${fmt(memory)}x ${memoryMet ? 'met' : 'NOT MET'}`,
  );
  return {
    lines,
    rows: [{ workload: 'before', ref: options.ref, commit: before.commit, rounds, paired, targets: { cpu, noise, cpuMet, memory, memoryMet }, problems }],
    problems,
    failed: problems.length > 0 || !cpuMet || !memoryMet,
    memory,
    cpu,
    noise,
  };
}
