/**
 * `npm run bench -- --redis`: what pairing through Redis costs. In one run, against a redis-server
 * of its own: pairup in memory (one process), pairup through Redis (one process), and pairup through
 * Redis with WORKERS=2 (two processes on one port). The same wrk storm drives each (keep-alive
 * HTTP/1.1, one pool, every answer checked); the figures are pairs per second, the pairing latency
 * (p50, p99: a request's wait for its partner), pairup's CPU per pairing, and from Redis itself
 * (INFO before and after): the commands pairup sent (scripts, ZREM, SPUBLISH) and the commands Redis
 * ran (those inside scripts too), Redis's read events (each a batch of commands one connection sent
 * at once: the round trips as Redis sees them, fewer than the commands because node-redis pipelines)
 * and Redis's CPU per pairing, from which the pairings per second one Redis core can carry.
 *
 * Placement on two cores: pairup (every worker) on core 0; the load generator and Redis on core 1.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createConnection } from 'node:net';
import { freePort, startServer, type RunningServer } from './servers.js';
import { cpuTimeMs, median, onCore, requireTool, type Placement } from './tools.js';
import { wrk } from './workloads/native.js';

interface RedisFigures {
  /** Every command run, those run inside scripts included. */
  readonly calls: number;
  /** Scripts run (EVALSHA, EVAL): what pairup sends, with ZREM and SPUBLISH. */
  readonly sent: number;
  readonly reads: number;
  readonly cpuMs: number;
}

export interface RedisBenchOptions {
  readonly durationS: number;
  readonly rounds: number;
  readonly connections: number;
  readonly tls: { certFile: string; keyFile: string };
  readonly dir: string;
  readonly where: Placement;
}

interface Setup {
  readonly name: string;
  readonly env: Readonly<Record<string, string>>;
  readonly redis: boolean;
}

/** Redis's own counters: commands run, read events (each a batch of commands from one client: a round trip), CPU. */
async function redisFigures(port: number): Promise<RedisFigures> {
  const text = await command(port, 'INFO all');
  const field = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(text)?.[1] ?? Number.NaN);
  let calls = 0;
  let sent = 0;
  for (const match of text.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)) {
    if (match[1] === 'info') continue;
    calls += Number(match[2]);
    if (['evalsha', 'eval', 'zrem', 'spublish'].includes(match[1] ?? '')) sent += Number(match[2]);
  }
  return { calls, sent, reads: field('total_reads_processed'), cpuMs: (field('used_cpu_user') + field('used_cpu_sys')) * 1000 };
}

/** One inline command to Redis, its whole reply as text. */
function command(port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => socket.write(`${line}\r\n`));
    let reply = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      reply += chunk;
      const header = /^\$(\d+)\r\n/.exec(reply);
      if (header !== null && Buffer.byteLength(reply) >= header[0].length + Number(header[1]) + 2) {
        socket.end();
        resolve(reply);
      } else if (header === null && reply.endsWith('\r\n') && !reply.startsWith('$')) {
        socket.end();
        resolve(reply);
      }
    });
    socket.once('error', reject);
  });
}

/** The server's processes: with WORKERS, the primary's children (the workers) too. */
function processTree(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  const children = spawnSync('pgrep', ['-P', String(pid)]).stdout.toString().trim().split('\n').filter(Boolean).map(Number);
  return [pid, ...children.flatMap((child) => processTree(child))];
}

const cpuOf = (pids: readonly number[]): number => pids.reduce((sum, pid) => sum + cpuTimeMs(pid), 0);

export async function redisBench(
  options: RedisBenchOptions,
): Promise<{ lines: string[]; rows: Record<string, unknown>[]; failed: boolean; ratio: number }> {
  requireTool('redis-server', 'redis-server');
  const port = await freePort();
  const [cmd, args] = onCore(options.where.load, 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  const redis = spawn(cmd, args, { stdio: 'ignore' });
  try {
    for (let i = 0; ; i++) {
      if (await command(port, 'PING').then((r) => r.startsWith('+PONG'), () => false)) break;
      if (i > 100) throw new Error('redis-server did not start');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const url = `redis://127.0.0.1:${port}`;
    // Each client is counted against its address, as by default (127.0.0.1 here, with room for every connection).
    const limit = { MAX_WAITING_PER_IP: String(options.connections * 2) };
    const setups: Setup[] = [
      { name: 'memory, 1 process', env: limit, redis: false },
      { name: 'redis, 1 process', env: { ...limit, REDIS_URL: url, REDIS_PREFIX: 'bench1:' }, redis: true },
      { name: 'redis, WORKERS=2', env: { ...limit, REDIS_URL: url, REDIS_PREFIX: 'bench2:', WORKERS: '2' }, redis: true },
    ];
    const figures = new Map<string, Record<string, number>[]>();
    const problems: string[] = [];
    for (let round = 0; round < options.rounds; round++) {
      for (const setup of round % 2 === 0 ? setups : [...setups].reverse()) {
        process.stderr.write(`redis: round ${round + 1}/${options.rounds}: ${setup.name} ...\n`);
        const server: RunningServer = await startServer('pairup', options.tls, options.dir, options.where.server, [], setup.env);
        try {
          await wrk(server.origin, { durationS: 1, connections: options.connections, close: false, pool: 'redis' });
          const pids = processTree(server.pid);
          const [cpuBefore, redisBefore] = [cpuOf(pids), await redisFigures(port)];
          const run = await wrk(server.origin, { durationS: options.durationS, connections: options.connections, close: false, pool: 'redis' });
          const [cpuAfter, redisAfter] = [cpuOf(pids), await redisFigures(port)];
          problems.push(...run.problems.map((p) => `${setup.name}: ${p}`));
          const pairs = (run.metrics.answers ?? 0) / 2;
          const row: Record<string, number> = {
            'pairs/s': (run.metrics['answers/s'] ?? 0) / 2,
            'p50 ms': run.metrics['p50 ms'] ?? Number.NaN,
            'p99 ms': run.metrics['p99 ms'] ?? Number.NaN,
            'pairup cpu µs/pair': ((cpuAfter - cpuBefore) * 1000) / pairs,
          };
          if (setup.redis) {
            // INFO itself is one command and one read: left out.
            row['cmds sent/pair'] = (redisAfter.sent - redisBefore.sent) / pairs;
            row['cmds run/pair'] = (redisAfter.calls - redisBefore.calls) / pairs;
            row['redis reads/pair'] = (redisAfter.reads - redisBefore.reads - 1) / pairs;
            row['redis cpu µs/pair'] = ((redisAfter.cpuMs - redisBefore.cpuMs) * 1000) / pairs;
            row['pairs/s one redis'] = 1e6 / (row['redis cpu µs/pair'] ?? Number.NaN);
          }
          (figures.get(setup.name) ?? figures.set(setup.name, []).get(setup.name))?.push(row);
        } finally {
          await server.stop();
        }
      }
    }
    const names = ['pairs/s', 'p50 ms', 'p99 ms', 'pairup cpu µs/pair', 'cmds sent/pair', 'cmds run/pair', 'redis reads/pair', 'redis cpu µs/pair', 'pairs/s one redis'];
    const combined = Object.fromEntries(
      setups.map((s) => [s.name, Object.fromEntries(names.map((n) => [n, median((figures.get(s.name) ?? []).map((r) => r[n] ?? Number.NaN))]))]),
    ) as Record<string, Record<string, number>>;
    const fmt = (v: number | undefined): string =>
      v === undefined || Number.isNaN(v) ? '-' : Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
    const lines = [
      '',
      `redis — wrk, ${options.connections} keep-alive HTTP/1.1 connections, one pool, ${options.durationS} s; pairup on core ${options.where.server ?? '-'}, wrk and redis-server on core ${options.where.load ?? '-'}`,
    ];
    if (problems.length > 0) lines.push(`  FAIL: ${problems.join('; ')}`);
    lines.push(`  ${'metric'.padEnd(20)}${setups.map((s) => s.name.padStart(20)).join('')}`);
    for (const name of names) lines.push(`  ${name.padEnd(20)}${setups.map((s) => fmt(combined[s.name]?.[name]).padStart(20)).join('')}`);
    const memory = combined[setups[0]?.name ?? '']?.['pairs/s'] ?? Number.NaN;
    const ratio = (combined[setups[1]?.name ?? '']?.['pairs/s'] ?? Number.NaN) / memory;
    lines.push(`  redis, 1 process ÷ memory: ${fmt(ratio)}x pairs/s`);
    return { lines, rows: [{ workload: 'redis', figures: combined, problems }], failed: problems.length > 0, ratio };
  } finally {
    redis.kill('SIGTERM');
    await new Promise((resolve) => (redis.exitCode !== null ? resolve(undefined) : redis.once('exit', resolve)));
  }
}
