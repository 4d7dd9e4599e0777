/**
 * The lab's long-running processes, each started inside its namespace with `ip netns exec` (which
 * execs the program: the PID we hold is the program's) and stopped by that PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import selfsigned from 'selfsigned';
import { inNs } from './shell.js';
import type { Host } from './topology.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const PAIRUP_MAIN = join(ROOT, 'dist', 'main.js');
/** HTTPS and STUN share the port, as the demo page expects (it asks STUN at the page's own port). */
export const PAIRUP_PORT = 443;
/** STUN's second port (STUN_ALT_PORT): the UDP example compares its mappings towards both (discoverNat). */
export const STUN_ALT_PORT = 444;
export const ADMIN_PORT = 9464;
export const TURN_PORT = 3478;

export interface Running {
  readonly name: string;
  readonly child: ChildProcess;
  /** Everything it printed, stdout and stderr, as lines. */
  readonly lines: string[];
  /** Resolves with the first line matching, or rejects when the process exits or `timeoutMs` passes. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<string>;
  /** SIGTERM by PID, SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** Every process the lab started that has not exited: what {@link stopAll} stops. */
const live = new Set<Running>();

/** Stops every process the lab started and that still runs (by PID), all at once. */
export async function stopAll(graceMs = 3000): Promise<void> {
  await Promise.all([...live].map((running) => running.stop(graceMs).catch(() => undefined)));
}

/** Runs `command` inside `ns`, collecting its output lines. */
export function startIn(name: string, ns: string, command: string, args: readonly string[], options: { cwd?: string; env?: Record<string, string> } = {}): Running {
  const child = spawn('ip', ['netns', 'exec', ns, command, ...args], {
    cwd: options.cwd,
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const listeners = new Set<(line: string) => void>();
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', (error) => {
      lines.push(`${name}: ${error.message}`);
      resolve();
    });
  });
  for (const stream of [child.stdout, child.stderr]) {
    let buffered = '';
    stream.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        for (const listener of [...listeners]) listener(line);
      }
    });
  }
  const running: Running = {
    name,
    child,
    lines,
    waitFor(pattern, timeoutMs) {
      const seen = lines.find((line) => pattern.test(line));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const done = (): void => {
          clearTimeout(timer);
          listeners.delete(listener);
        };
        const listener = (line: string): void => {
          if (!pattern.test(line)) return;
          done();
          resolve(line);
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name}: no line matching ${String(pattern)} within ${timeoutMs} ms; last lines:\n${lines.slice(-10).join('\n')}`));
        }, timeoutMs);
        listeners.add(listener);
        void exited.then(() => {
          if (!listeners.has(listener)) return;
          done();
          reject(new Error(`${name} exited (${String(child.exitCode ?? child.signalCode)}) before ${String(pattern)}; last lines:\n${lines.slice(-10).join('\n')}`));
        });
      });
    },
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      const pid = child.pid;
      process.kill(pid, 'SIGTERM');
      const killer = setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
      }, graceMs);
      await exited;
      clearTimeout(killer);
    },
  };
  live.add(running);
  void exited.then(() => live.delete(running));
  return running;
}

/** A throwaway self-signed certificate for pairup's public address, written into `dir`. */
export async function writeCertificate(dir: string, address: string): Promise<{ certFile: string; keyFile: string; cert: string }> {
  const notBeforeDate = new Date(Date.now() - 60_000);
  const pems = await selfsigned.generate([{ name: 'commonName', value: address }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate: new Date(notBeforeDate.getTime() + 86_400_000),
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 7, ip: address }] },
    ],
  });
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  await writeFile(certFile, pems.cert);
  await writeFile(keyFile, pems.private, { mode: 0o600 });
  return { certFile, keyFile, cert: pems.cert };
}

export interface TurnSettings {
  readonly url: string;
  readonly secret: string;
}

/**
 * pairup from the repository's build, in the server's namespace, run from `dir` (so that no `.env`
 * of the working tree is read). Its admin listener is on the namespace's own loopback: the lab reads
 * `/metrics` through {@link readMetrics}. `turn` hands coturn's address and secret to pairup in the
 * settings issue 24 gives it (TURN_URLS, TURN_SECRET); a pairup without them ignores both.
 */
export async function startPairup(server: Host, dir: string, turn?: TurnSettings): Promise<Running> {
  const { certFile, keyFile } = await writeCertificate(dir, server.address);
  const running = startIn('pairup', server.ns, process.execPath, [PAIRUP_MAIN], {
    cwd: dir,
    env: {
      HOST: server.address,
      PORT: String(PAIRUP_PORT),
      STUN_ALT_PORT: String(STUN_ALT_PORT),
      TLS_CERT: certFile,
      TLS_KEY: keyFile,
      ADMIN_HOST: '127.0.0.1',
      ADMIN_PORT: String(ADMIN_PORT),
      ...(turn === undefined ? {} : { TURN_URLS: turn.url, TURN_SECRET: turn.secret }),
    },
  });
  try {
    await running.waitFor(/STUN responder listening/, 15_000);
    await running.waitFor(/Server listening at https:/, 15_000);
  } catch (error) {
    await running.stop();
    throw error;
  }
  return running;
}

/** pairup's Prometheus text, read from its admin listener inside the server's namespace. */
export function readMetrics(server: Host): Promise<string> {
  const script = `fetch('http://127.0.0.1:${ADMIN_PORT}/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))`;
  return inNs(server.ns, process.execPath, ['-e', script], { timeoutMs: 10_000 });
}

/**
 * coturn on the public segment with coturn's REST-API credentials (`use-auth-secret`): the relay a
 * match's TURN credentials will point at. Its pid file and database stay in `dir`.
 */
export async function startCoturn(turn: Host, dir: string, secret: string): Promise<Running> {
  const running = startIn('coturn', turn.ns, 'turnserver', [
    '-n',
    `--listening-ip=${turn.address}`,
    `--relay-ip=${turn.address}`,
    `--listening-port=${TURN_PORT}`,
    '--use-auth-secret',
    `--static-auth-secret=${secret}`,
    '--realm=pairup-lab',
    '--fingerprint',
    '--no-cli',
    '--no-tls',
    '--no-dtls',
    '--no-multicast-peers',
    '--min-port=49152',
    '--max-port=49407',
    '--log-file=stdout',
    `--pidfile=${join(dir, 'turnserver.pid')}`,
    `--userdb=${join(dir, 'turndb')}`,
  ]);
  try {
    await running.waitFor(/Total General servers/, 15_000);
  } catch (error) {
    await running.stop();
    throw error;
  }
  return running;
}

/**
 * Allocates relays on coturn from `from`'s namespace (through its NAT) with a credential made the
 * way pairup makes them (coturn's REST-API scheme), and sends a few packets between two of them:
 * coturn's own client, `turnutils_uclient`. Resolves with its last line; rejects if it failed.
 */
export async function checkRelay(from: Host, turn: Host, secret: string): Promise<string> {
  const username = `${Math.floor(Date.now() / 1000) + 300}:nat-lab`;
  const password = createHmac('sha1', secret).update(username).digest('base64');
  const output = await inNs(from.ns, 'turnutils_uclient', ['-p', String(TURN_PORT), '-u', username, '-w', password, '-n', '3', '-y', '-c', turn.address], {
    timeoutMs: 30_000,
  });
  const lines = output.trim().split('\n');
  if (/Cannot complete Allocation/.test(output) || !lines.some((line) => /Total lost packets 0 \(0\.0+%\)/.test(line))) {
    throw new Error(`coturn relayed nothing for ${from.ns}: ${lines.slice(-3).join(' | ')}`);
  }
  return lines.at(-1) ?? '';
}
