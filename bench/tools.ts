/**
 * What the benchmark needs from the machine: the native load generators, CPU pinning, and the CPU
 * time a process has used.
 */
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';

/** Fails with one line naming the Debian package when a load generator is missing. */
export function requireTool(command: string, debianPackage: string): void {
  if (spawnSync('sh', ['-c', `command -v ${command}`]).status !== 0) {
    throw new Error(`${command} is not installed: apt-get install ${debianPackage}`);
  }
}

/** The core the server under test runs on, and the one the load comes from (undefined: shared). */
export interface Placement {
  readonly server: number | undefined;
  readonly load: number | undefined;
}

/**
 * On two cores or more, the server gets core 0 and the load generator core 1 (so that the figures
 * are the server's, not the client's); on one core they share it, and the output says so.
 */
export function placement(): Placement {
  const pinnable = availableParallelism() >= 2 && spawnSync('sh', ['-c', 'command -v taskset']).status === 0;
  return pinnable ? { server: 0, load: 1 } : { server: undefined, load: undefined };
}

/** `command args` run on `core` (through taskset), or as it is when there is no core to pin to. */
export function onCore(core: number | undefined, command: string, args: readonly string[]): [string, string[]] {
  return core === undefined ? [command, [...args]] : ['taskset', ['-c', String(core), command, ...args]];
}

/** Pins this process (and what it spawns from now on) to `core`. */
export function pinSelf(core: number | undefined): void {
  if (core !== undefined) spawnSync('taskset', ['-pc', String(core), String(process.pid)], { stdio: 'ignore' });
}

const TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK']).stdout.toString().trim()) || 100;

/** CPU time a process has used so far (user + system), in milliseconds (Linux /proc). */
export function cpuTimeMs(pid: number | undefined): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces): utime and stime are the 14th and 15th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
}

/** The median of some figures (the mean of the middle two for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? Number.NaN) : ((sorted[mid - 1] ?? Number.NaN) + (sorted[mid] ?? Number.NaN)) / 2;
}

/** How far apart some figures are: (largest - smallest) / median; 0 for one figure. */
export function spread(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : (Math.max(...values) - Math.min(...values)) / median(values);
}

/** A figure as the tables print it: three significant digits or so, '-' for none. */
export function fmt(value: number | undefined): string {
  if (value === undefined || Number.isNaN(value)) return '-';
  return Math.abs(value) >= 100 ? value.toFixed(0) : Math.abs(value) >= 10 ? value.toFixed(1) : value.toFixed(2);
}
