#!/usr/bin/env node
/**
 * The pairup command: `pairup find URL …` finds a peer through a server, `pairup serve` runs one.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { APP_PATTERN, hashKey, newKey } from './net/app-keys.js';
import { connectPeer, DEFAULT_TIMEOUT_MS, findPeer, NoPeerError, PairupError, type FindGroupOptions } from './client/index.js';

const EXIT_MATCHED = 0;
const EXIT_ERROR = 1;
const EXIT_NO_PEER = 2;

const USAGE = `usage:
  pairup find URL [--pool P | --code C] [--meta JSON] [--cacert FILE] [--timeout S] [--json] [--key KEY] [--size N [--min M]]
  pairup signal URL [--pool P | --code C] [--meta JSON] [--cacert FILE] [--timeout S] [--key KEY]
  pairup serve [--workers N]
  pairup key new --app NAME
  pairup --help | --version

find   asks the pairup server at URL for a peer and prints its address (the whole match as JSON
       with --json). Exit code 0: matched; 2: nobody came within --timeout seconds (default ${DEFAULT_TIMEOUT_MS / 1000});
       1: any other error, with a one-line message on stderr. --size N: a group of N (this one
       included) instead of a pair, every other member's address printed on a line of its own;
       --min M: the group may form with M or more once its oldest has waited (the server's FILL_WAIT_MS).
signal waits for a peer over the server's WebSocket, prints the match as a JSON line, then relays:
       each line read on stdin is sent to the peer (as JSON if it is JSON, else as a string), each
       signal from the peer is printed as a JSON line. Ends when the peer leaves ({"type":"peer_left"},
       exit 0) or stdin ends (the peer is told). Exit codes as for find.
       --key KEY (or PAIRUP_KEY in the environment): the app key, for a server with APP_KEYS_FILE.
key new prints a new random app key for app NAME (line 1: give it to the app; it is stored nowhere)
       and the entry to add to APP_KEYS_FILE's "keys" (line 2: its hash, never the key).
serve  runs the server, configured by the environment and .env (see README.md); --workers N
       runs N worker processes on the one port (as WORKERS=N; needs REDIS_URL).
`;

/** A mistake in the command line or its inputs: one line on stderr, exit 1. */
class UsageError extends Error {}

/** The options find and signal share: URL, pool or code, meta, CA, timeout. */
async function peerOptions(command: string, args: string[], extra: { json?: { type: 'boolean'; default: boolean }; size?: { type: 'string' }; min?: { type: 'string' } } = {}) {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      pool: { type: 'string' },
      code: { type: 'string' },
      meta: { type: 'string' },
      cacert: { type: 'string' },
      timeout: { type: 'string' },
      key: { type: 'string' },
      ...extra,
    },
  });
  const [url, ...rest] = positionals;
  if (url === undefined) throw new UsageError(`${command} needs the server URL, e.g. pairup ${command} https://localhost:3030`);
  if (rest.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(rest[0])}`);
  if (!/^https?:\/\//i.test(url) || !URL.canParse(url)) throw new UsageError(`not an https:// URL: ${JSON.stringify(url)}`);
  if (values.pool !== undefined && values.code !== undefined) throw new UsageError('give either --pool or --code, not both');
  const timeoutS = values.timeout === undefined ? DEFAULT_TIMEOUT_MS / 1000 : seconds(values.timeout);
  const key = values.key ?? (process.env.PAIRUP_KEY === '' ? undefined : process.env.PAIRUP_KEY);
  const options: FindGroupOptions = {
    url,
    ...(typeof values.size === 'string' ? { size: whole('--size', values.size) } : {}),
    ...(typeof values.min === 'string' ? { min: whole('--min', values.min) } : {}),
    timeoutMs: timeoutS * 1000,
    ...(values.pool === undefined ? {} : { pool: values.pool }),
    ...(values.code === undefined ? {} : { code: values.code }),
    ...(values.meta === undefined ? {} : { meta: parseMeta(values.meta) }),
    ...(values.cacert === undefined ? {} : { ca: await readCa(values.cacert) }),
    // The command line over the environment: it is the more specific.
    ...(key === undefined ? {} : { key }),
  };
  const keyFrom: KeySource = values.key !== undefined ? '--key' : key !== undefined ? 'PAIRUP_KEY' : undefined;
  return { options, timeoutS, keyFrom, json: values.json === true };
}

/** Where the key sent came from, to say so when the server refuses it. */
type KeySource = '--key' | 'PAIRUP_KEY' | undefined;

/** A server's refusal of the key (or of its lack), told with where the key came from or how to give one. */
function keyRefusal(error: unknown, keyFrom: KeySource): unknown {
  if (!(error instanceof PairupError) || (error.code !== 'key_required' && error.code !== 'unknown_key')) return error;
  const how = keyFrom === undefined ? 'give the app key with --key KEY or PAIRUP_KEY' : `the key came from ${keyFrom}`;
  return new Error(`${error.message} (${error.status} ${error.code}; ${how})`, { cause: error });
}

async function signal(args: string[]): Promise<number> {
  const { options, timeoutS, keyFrom } = await peerOptions('signal', args, { size: { type: 'string' }, min: { type: 'string' } });
  if ((options.size ?? 2) !== 2 || (options.min ?? 2) !== 2) throw new UsageError('signal relays a pair; for a group, pairup find --size N prints its members (openMesh in pairup/browser relays a group)');
  const peer = await waitFor(() => connectPeer(options), timeoutS, keyFrom);
  if (peer === undefined) return EXIT_NO_PEER;
  process.stdout.write(`${JSON.stringify({ type: 'matched', ...peer.match })}\n`);
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    let data: unknown = line;
    try {
      data = JSON.parse(line);
    } catch {
      // not JSON: sent as the string it is
    }
    peer.send(data);
  });
  lines.once('close', () => peer.close());
  const printing = (async () => {
    for await (const data of peer) process.stdout.write(`${JSON.stringify({ type: 'signal', data })}\n`);
  })();
  const end = await peer.ended;
  await printing;
  lines.close();
  process.stdin.destroy();
  if (end.reason === 'peer_left') process.stdout.write(`${JSON.stringify({ type: 'peer_left' })}\n`);
  return EXIT_MATCHED;
}

/** A whole number given on the command line (the server says whether it is in range). */
function whole(flag: string, text: string): number {
  if (!/^[0-9]{1,6}$/.test(text)) throw new UsageError(`${flag} needs a whole number, got ${JSON.stringify(text)}`);
  return Number(text);
}

/** `pairup key new --app NAME`: a new key, and the line of APP_KEYS_FILE that lets it in. */
function keyCommand(args: string[]): number {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { app: { type: 'string' } } });
  if (positionals.length !== 1 || positionals[0] !== 'new') throw new UsageError('usage: pairup key new --app NAME');
  const app = values.app;
  if (app === undefined || !APP_PATTERN.test(app)) throw new UsageError(`--app must be an app name matching ${APP_PATTERN.source}, got ${JSON.stringify(app ?? '')}`);
  const key = newKey();
  process.stdout.write(`${key}\n${JSON.stringify({ app, sha256: hashKey(key) })}\n`);
  return EXIT_MATCHED;
}

async function find(args: string[]): Promise<number> {
  const { options, timeoutS, keyFrom, json } = await peerOptions('find', args, { json: { type: 'boolean', default: false }, size: { type: 'string' }, min: { type: 'string' } });
  const match = await waitFor(() => findPeer(options), timeoutS, keyFrom);
  if (match === undefined) return EXIT_NO_PEER;
  // JSON.stringify escapes control characters; the addresses were checked against the protocol's pattern.
  const text = 'members' in match ? match.members.map((member) => `${member.address}\n`).join('') : `${match.peer}\n`;
  process.stdout.write(json ? `${JSON.stringify(match)}\n` : text);
  return EXIT_MATCHED;
}

/** Runs `call` with the progress line shown; undefined (and a line on stderr) when nobody came. */
async function waitFor<T>(call: () => Promise<T>, timeoutS: number, keyFrom: KeySource): Promise<T | undefined> {
  const stopProgress = showProgress();
  let result: T;
  try {
    result = await call();
  } catch (error) {
    stopProgress(); // before the line, which it would erase
    if (!(error instanceof NoPeerError)) throw keyRefusal(error, keyFrom);
    process.stderr.write(`pairup: nobody came within ${timeoutS} s\n`);
    return undefined;
  }
  stopProgress();
  return result;
}

function seconds(text: string): number {
  const value = /^[0-9]*\.?[0-9]+$/.test(text) ? Number(text) : Number.NaN;
  if (!(value > 0)) throw new UsageError(`--timeout must be a number of seconds greater than 0, got ${JSON.stringify(text)}`);
  return value;
}

function parseMeta(text: string): Record<string, unknown> {
  let meta: unknown;
  try {
    meta = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`--meta is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) throw new UsageError('--meta must be a JSON object');
  return meta as Record<string, unknown>;
}

async function readCa(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read --cacert ${file}: ${(error as Error).message}`);
  }
}

/** An elapsed-time line on stderr while waiting, only when stderr is a terminal. Returns its stop. */
function showProgress(): () => void {
  if (!process.stderr.isTTY) return () => undefined;
  const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
  const started = performance.now();
  let frame = 0;
  const timer = setInterval(() => {
    const seconds = Math.floor((performance.now() - started) / 1000);
    process.stderr.write(`\r${frames[frame++ % frames.length] ?? ''} waiting for a peer… ${seconds}s`);
  }, 100);
  return () => {
    clearInterval(timer);
    process.stderr.write('\r\x1b[2K');
  };
}

/**
 * Text from elsewhere (a server's error message, Node's argument parser) made safe for a terminal, on
 * one line: line breaks become spaces, other control characters are shown, not obeyed.
 */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return text.replace(/\s*\n\s*/g, ' ').replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'find':
      return find(rest);
    case 'signal':
      return signal(rest);
    case 'key':
      return keyCommand(rest);
    case 'serve': {
      const { values } = parseArgs({ args: rest, options: { workers: { type: 'string' } } });
      if (values.workers !== undefined) {
        if (!/^[0-9]+$/.test(values.workers)) throw new UsageError(`--workers needs a whole number, got ${JSON.stringify(values.workers)}`);
        process.env.WORKERS = values.workers; // over .env and the environment: the command line is the most specific
      }
      // The server's own entry point: it reads the environment, listens, and handles signals.
      await import('./main.js');
      return EXIT_MATCHED;
    }
    case '--version':
    case '-v': {
      const { version } = createRequire(import.meta.url)('../package.json') as { version: string };
      process.stdout.write(`${version}\n`);
      return EXIT_MATCHED;
    }
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE);
      return EXIT_MATCHED;
    case undefined:
      process.stderr.write(USAGE);
      return EXIT_ERROR;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}; try pairup --help`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // `serve` keeps running: its exit code is the server's.
    if (process.argv[2] !== 'serve') process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`pairup: ${printable(error instanceof Error ? error.message : String(error))}\n`);
    process.exitCode = EXIT_ERROR;
  },
);
