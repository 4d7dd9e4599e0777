/**
 * Load from the native generators, run on their own core: wrk for HTTP/1.1 (keep-alive, or a new
 * TLS connection per request) and h2load for HTTP/2. Text answers (no Accept header, as curl and wrk send).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { requireTool } from '../tools.js';
import type { WorkloadResult } from './types.js';

const VERIFY = fileURLToPath(new URL('../wrk/verify.lua', import.meta.url));

function run(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${command} exited ${code}: ${out}`))));
  });
}

export interface WrkOptions {
  readonly durationS: number;
  readonly connections: number;
  /** A new TLS connection for every request (`Connection: close`), like a curl loop. */
  readonly close: boolean;
  readonly pool: string;
  /** Members of the group each request asks for (`&size=`); none: a pair, as plain `?pool=` asks. */
  readonly size?: number;
}

/** wrk against one pool; every answer checked by bench/wrk/verify.lua (a group's lists size - 1 addresses). */
export async function wrk(origin: string, options: WrkOptions): Promise<WorkloadResult> {
  requireTool('wrk', 'wrk');
  const out = await run('wrk', [
    '-t1',
    `-c${options.connections}`,
    `-d${options.durationS}s`,
    '-s',
    VERIFY,
    ...(options.close ? ['-H', 'Connection: close'] : []),
    `${origin}/?pool=${options.pool}${options.size === undefined ? '' : `&size=${options.size}`}`,
    '--',
    String((options.size ?? 2) - 1),
  ]);
  const verify = /verify: (\d+) answered, (\d+) bad, p50 ([\d.]+) ms, p99 ([\d.]+) ms, first bad: (.*)/.exec(out);
  const seconds = Number(/requests in ([\d.]+)s/.exec(out)?.[1] ?? options.durationS);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const answered = Number(verify?.[1] ?? 0);
  const bad = Number(verify?.[2] ?? 0);
  // A connection closed by the server after its answer counts as a read error in wrk's tally.
  const timeouts = Number(errors?.[4] ?? 0);
  const connectErrors = Number(errors?.[1] ?? 0);
  return {
    metrics: {
      'answers/s': answered / seconds,
      answers: answered,
      'p50 ms': Number(verify?.[3] ?? Number.NaN),
      'p99 ms': Number(verify?.[4] ?? Number.NaN),
      bad,
    },
    problems: [
      ...(verify === null ? [`wrk printed no verification line: ${out.slice(0, 300)}`] : []),
      ...(bad > 0 ? [`${bad} answers were not 200 with ${(options.size ?? 2) - 1} distinct address(es) (first: ${verify?.[5] ?? ''})`] : []),
      ...(timeouts + connectErrors > 0 ? [`${connectErrors} connect errors, ${timeouts} timeouts`] : []),
    ],
  };
}

export interface H2loadOptions {
  readonly durationS: number;
  readonly clients: number;
  readonly streams: number;
  /** Pools the requests cycle through (each client's streams spread over them). */
  readonly pools: number;
}

/** h2load: `clients` HTTP/2 connections with `streams` requests in flight each. */
export async function h2load(origin: string, options: H2loadOptions): Promise<WorkloadResult> {
  requireTool('h2load', 'nghttp2-client');
  const uris = Array.from({ length: options.pools }, (_, i) => `${origin}/?pool=h2-${i}`);
  const out = await run('h2load', [
    '-D',
    String(options.durationS),
    '-c',
    String(options.clients),
    '-m',
    String(options.streams),
    ...uris,
  ]);
  const requests = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  const seconds = Number(/finished in ([\d.]+)s/.exec(out)?.[1] ?? options.durationS);
  const ok = Number(codes?.[1] ?? 0);
  const errors = Number(codes?.[3] ?? 0) + Number(codes?.[4] ?? 0);
  const mean = /time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)/.exec(out);
  const meanMs = mean === null ? Number.NaN : Number(mean[1]) * (mean[2] === 'us' ? 0.001 : mean[2] === 's' ? 1000 : 1);
  return {
    metrics: { 'answers/s': ok / seconds, answers: ok, 'mean ms': meanMs, 'non-2xx': errors },
    problems: [
      ...(requests === null || codes === null ? [`h2load printed no totals: ${out.slice(0, 300)}`] : []),
      ...(errors > 0 ? [`${errors} answers were not 2xx`] : []),
    ],
  };
}
