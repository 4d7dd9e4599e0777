import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const DIST = fileURLToPath(new URL('../../dist/', import.meta.url));
const MAIN = join(SRC, 'main.ts');
const TSX = import.meta.resolve('tsx');

/** The build of a file of src/ (src/cli.ts: dist/cli.js). */
const builtOf = (source: string): string => join(DIST, relative(SRC, source)).replace(/\.ts$/, '.js');

let distIsCurrent: boolean | undefined;

/**
 * Whether dist/ holds the build of src/ as it is now (as `npm ci` leaves it): every source file the
 * server build compiles is there, built after the source was last changed.
 */
function distCurrent(): boolean {
  if (distIsCurrent !== undefined) return distIsCurrent;
  const sources = (readdirSync(SRC, { recursive: true }) as string[])
    .filter((name) => name.endsWith('.ts') && !name.startsWith('browser') && !name.startsWith('demo'))
    .map((name) => join(SRC, name));
  distIsCurrent = sources.every((source) => {
    const built = builtOf(source);
    return existsSync(built) && statSync(built).mtimeMs >= statSync(source).mtimeMs;
  });
  return distIsCurrent;
}

/**
 * How node runs a file of src/: its build when dist/ is current, else the source through tsx. The
 * build is the same code, and spares each process about a second of tsx's module loader.
 */
export function nodeArgs(source: string): string[] {
  return source.startsWith(SRC) && distCurrent() ? [builtOf(source)] : ['--import', TSX, source];
}

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly stdout: string[];
  stderr: string;
  /** The port from the "Server listening" line; rejects if the process exits first. */
  readonly port: Promise<number>;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first log line whose msg matches (and whose fields equal `fields`, if given). */
  line(pattern: RegExp, fields?: Record<string, unknown>): Promise<Record<string, unknown>>;
}

function parse(text: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/**
 * Runs src/main.ts as `npm start` would (its build when dist/ is current: {@link nodeArgs}), or the script and arguments in `entry`, in `cwd`, with
 * exactly `env` (plus PATH, and unless `env` sets them: ADMIN_PORT=0, since tests must not share port
 * 9464; MAX_EVENT_LOOP_DELAY_MS=0, since a process the machine stalls for a second (CI on two cores
 * runs several at once) would refuse requests 503 overloaded: the guard has tests of its own).
 */
export function spawnServer(env: Record<string, string>, cwd: string, entry: readonly string[] = [MAIN]): ServerProcess {
  const [script = MAIN, ...args] = entry;
  const child = spawn(process.execPath, [...nodeArgs(script), ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', ADMIN_PORT: '0', MAX_EVENT_LOOP_DELAY_MS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const waiters: { pattern: RegExp; fields?: Record<string, unknown>; resolve: (line: Record<string, unknown>) => void }[] = [];
  const matches = (parsed: Record<string, unknown>, pattern: RegExp, fields: Record<string, unknown> = {}): boolean =>
    pattern.test(String(parsed.msg)) && Object.entries(fields).every(([key, value]) => parsed[key] === value);
  let buffered = '';
  const proc: ServerProcess = {
    child,
    stdout,
    stderr: '',
    port: new Promise<number>((resolve, reject) => {
      waiters.push({
        pattern: /^Server listening at https:\/\/[^ ]+:(\d+)$/,
        resolve: (line) => resolve(Number(/:(\d+)$/.exec(String(line.msg))?.[1])),
      });
      child.once('exit', () => reject(new Error(`server exited before listening: ${proc.stderr}`)));
    }),
    exit: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
    line: (pattern, fields) =>
      new Promise((resolve) => {
        // Lines that came before the call count too: several can arrive in one chunk.
        for (const text of stdout) {
          const parsed = parse(text);
          if (parsed !== undefined && matches(parsed, pattern, fields)) return resolve(parsed);
        }
        waiters.push({ pattern, ...(fields === undefined ? {} : { fields }), resolve });
      }),
  };
  // Tests that expect a failed start read `exit`, not `port`.
  proc.port.catch(() => undefined);
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const text of lines) {
      stdout.push(text);
      const parsed = parse(text);
      if (parsed === undefined) continue;
      for (const waiter of [...waiters]) {
        if (matches(parsed, waiter.pattern, waiter.fields)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(parsed);
        }
      }
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    proc.stderr += chunk;
  });
  return proc;
}

/** A TCP port that was free a moment ago on 127.0.0.1, for listeners that take 0 to mean "off". */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** pairup_connections_total by via (of app `app`, with app keys), from a server's admin listener on `adminPort`. */
export async function connectionsCounted(adminPort: number, app?: string): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const labels = app === undefined ? '' : `app="${app}",`;
  const counted: Record<string, number> = {};
  for (const [, via, value] of text.matchAll(new RegExp(`^pairup_connections_total\\{${labels}via="(\\w+)"\\} (\\d+)$`, 'gm'))) counted[via ?? ''] = Number(value);
  return counted;
}

export interface Finished {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `node ARGS` to completion (stdin closed, stderr not a terminal) and collects what it printed;
 * `env` is added to the test's own environment.
 */
export function runNode(args: readonly string[], cwd?: string, env?: Record<string, string>): Promise<Finished> {
  return runCommand(process.execPath, args, cwd, env);
}

/** Runs a command to completion (stdin closed) and collects what it printed; `env` is added to the test's own environment. */
export function runCommand(command: string, args: readonly string[], cwd?: string, env?: Record<string, string>): Promise<Finished> {
  const child = spawn(command, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(cwd === undefined ? {} : { cwd }),
    ...(env === undefined ? {} : { env: { ...process.env, ...env } }),
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}
