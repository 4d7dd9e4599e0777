import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onCore } from './tools.js';

/**
 * pairup, the minimal baseline, the baseline answering exactly pairup's headers and fields, pairup's
 * own work without its framework (bench/core-server.ts, `--floor`), and the bare WebSocket server.
 */
export type ServerKind = 'pairup' | 'baseline' | 'baseline-payload' | 'pairup-core' | 'ws-baseline';

const SCRIPTS: Readonly<Record<Exclude<ServerKind, 'pairup'>, string>> = {
  baseline: 'bench/baseline.ts',
  'baseline-payload': 'bench/baseline.ts',
  'pairup-core': 'bench/core-server.ts',
  'ws-baseline': 'bench/ws-baseline.ts',
};

export interface RunningServer {
  readonly kind: ServerKind;
  readonly origin: string;
  readonly pid: number | undefined;
  /** Files holding what the server wrote to standard output and standard error. */
  readonly logFile?: string;
  readonly errFile?: string;
  stop(): Promise<void>;
}

const ROOT = new URL('..', import.meta.url);
const TSX = import.meta.resolve('tsx');

/**
 * Starts one server in a process of its own on an ephemeral loopback port. Its standard output goes
 * to a file in `dir`, as a service's log would: not to this process, which is busy being the load.
 */
export async function startServer(
  kind: ServerKind,
  tls: { certFile: string; keyFile: string },
  dir: string,
  /** The core to run on (taskset); undefined: any. */
  core?: number,
  /** Extra node options, before the script. */
  nodeArgs: readonly string[] = [],
  /** Extra environment variables. */
  extraEnv: Readonly<Record<string, string>> = {},
  /** pairup's entry module: another build's `dist/main.js` (`--before`); default this checkout's. */
  main: string = fileURLToPath(new URL('dist/main.js', ROOT)),
): Promise<RunningServer> {
  const env = {
    ...(kind === 'baseline-payload' ? { BASELINE_PAYLOAD: 'pairup' } : {}),
    // The admin listener stays on (its counting is part of the default configuration), on a free
    // port rather than 9464, which a server already running on this machine may hold.
    ...(kind === 'pairup' ? { ADMIN_PORT: String(await freePort()) } : {}),
    PATH: process.env.PATH ?? '',
    HOST: '127.0.0.1',
    PORT: '0',
    TLS_CERT: tls.certFile,
    TLS_KEY: tls.keyFile,
    // Every benchmark client comes from 127.0.0.1: the per-IP caps (64 by default) would refuse them.
    MAX_WAITING_PER_IP: '0',
    MAX_RELAYS_PER_IP: '0',
    NODE_ENV: 'production',
    ...extraEnv,
  };
  const args = [
    ...nodeArgs,
    ...(kind === 'pairup'
      ? [main]
      : ['--import', TSX, fileURLToPath(new URL(SCRIPTS[kind], ROOT))]),
  ];
  const logFile = join(dir, `${kind}.log`);
  const out = openSync(logFile, 'w');
  const errFile = join(dir, `${kind}.err`);
  const err = openSync(errFile, 'w');
  const [command, commandArgs] = onCore(core, process.execPath, args);
  const child = spawn(command, commandArgs, { env, stdio: ['ignore', out, err] });
  closeSync(out);
  closeSync(err);
  const deadline = Date.now() + 15_000;
  for (;;) {
    const log = readFileSync(logFile, 'utf8');
    // pairup logs "Server listening at https://…:N" (and, later, its admin and STUN ports); the baseline {"port":N}.
    const port = /Server listening at https:\/\/[^"]+:(\d+)"/.exec(log)?.[1] ?? /^\{"port":(\d+)\}$/m.exec(log)?.[1];
    if (port !== undefined) {
      return { kind, origin: `https://127.0.0.1:${port}`, pid: child.pid, logFile, errFile, stop: () => stop(child) };
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${kind} did not start: ${log}${readFileSync(errFile, 'utf8')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
  });
}

/** Resident and peak resident memory of a process, in bytes (Linux /proc). */
export function memoryOf(pid: number | undefined): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

/** A TCP port free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}
