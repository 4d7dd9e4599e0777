import { spawn } from 'node:child_process';

/** A command that failed: its line, exit status and what it printed on stderr. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly status: number | null,
    readonly stderr: string,
  ) {
    super(`${command} failed (${status === null ? 'timed out' : `exit ${status}`}): ${stderr.trim()}`);
    this.name = 'CommandError';
  }
}

/**
 * Runs a command to completion and returns its stdout; throws CommandError on a non-zero exit.
 * Bounded in time: a command still running after `timeoutMs` is killed (SIGKILL, by its own PID).
 */
export function sh(command: string, args: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const line = [command, ...args].join(' ');
  const child = spawn(command, args, { stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  // A command that exits before reading its input must not crash the lab (EPIPE): its status says it.
  child.stdin?.on('error', () => undefined).end(options.input);
  return new Promise((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 10_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new CommandError(line, 127, error.message));
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code === 0 && !timedOut) resolve(stdout);
      else reject(new CommandError(line, timedOut ? null : code, stderr));
    });
  });
}

/** Runs a command inside a network namespace (`ip netns exec`). */
export function inNs(ns: string, command: string, args: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  return sh('ip', ['netns', 'exec', ns, command, ...args], options);
}
