import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeArgs, runNode, spawnServer, type Finished } from './helpers/process.js';
import { SAMPLE_MATCH, ScriptedServer } from './helpers/scripted-server.js';
import { ask, eventually, startServer, TestClient, type TestServer } from './helpers/server.js';

const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));

/** Runs `pairup ARGS` as the installed command would, to completion (stderr is not a terminal). */
function pairup(args: string[]): Promise<Finished> {
  return runNode([...nodeArgs(CLI), ...args]);
}

let server: TestServer;
let dir: string;
let cacert: string;

beforeAll(async () => {
  server = await startServer();
  dir = await mkdtemp(join(tmpdir(), 'pairup-cli-'));
  cacert = join(dir, 'ca.pem');
  await writeFile(cacert, server.cert);
});
afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('pairup find', () => {
  it('prints the peer’s address, and with --json the whole match, exit 0', async () => {
    const first = pairup(['find', server.origin, '--code', 'cli-code', '--cacert', cacert, '--json', '--meta', '{"udp":"127.0.0.1:4000"}']);
    await eventually(() => server.app.lobby.waiting === 1, 10_000, 'the first to wait');
    const second = await pairup(['find', server.origin, '--code', 'cli-code', '--cacert', cacert]);
    const firstRun = await first;
    expect([firstRun.code, firstRun.stderr, second.code, second.stderr]).toEqual([0, '', 0, '']);
    const match = JSON.parse(firstRun.stdout) as Record<string, unknown>;
    expect(second.stdout).toBe(`${String(match.self)}\n`);
    expect(match).toMatchObject({ code: 'cli-code', initiator: true, peerMeta: null });
    expect(match.peer).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('exits 2 with one line when nobody comes in time', async () => {
    const run = await pairup(['find', server.origin, '--pool', 'nobody-here', '--cacert', cacert, '--timeout', '0.3']);
    expect(run).toEqual({ code: 2, stdout: '', stderr: 'pairup: nobody came within 0.3 s\n' });
  });

  it('exits 1 with the server’s message on any other error', async () => {
    const run = await pairup(['find', server.origin, '--code', 'cli-code', '--cacert', cacert]);
    expect(run).toEqual({
      code: 1,
      stdout: '',
      stderr: 'pairup: this code has already been used by a pair or a group; choose a new one (codes stay used for CODE_TTL_MS)\n',
    });
  });

  it.each([
    [['find'], 'pairup: find needs the server URL, e.g. pairup find https://localhost:3030\n'],
    [['find', 'localhost:3030'], 'pairup: not an https:// URL: "localhost:3030"\n'],
    [['find', 'https://localhost', '--pool', 'p', '--code', 'c'], 'pairup: give either --pool or --code, not both\n'],
    [['find', 'https://localhost', '--timeout', 'soon'], 'pairup: --timeout must be a number of seconds greater than 0, got "soon"\n'],
    [['find', 'https://localhost', '--meta', '[1]'], 'pairup: --meta must be a JSON object\n'],
    [['find', 'https://localhost', '--cacert', '/nonexistent/ca.pem'], "pairup: cannot read --cacert /nonexistent/ca.pem: ENOENT: no such file or directory, open '/nonexistent/ca.pem'\n"],
    [['launch'], 'pairup: unknown command "launch"; try pairup --help\n'],
  ])('exits 1 with one line for %j', async (args, stderr) => {
    expect(await pairup(args)).toEqual({ code: 1, stdout: '', stderr });
  });

  it('shows the time waited on stderr when stderr is a terminal, and clears it', async () => {
    // script(1) gives the command a terminal; what the terminal showed comes out on its stdout.
    const command = [process.execPath, ...nodeArgs(CLI), 'find', server.origin, '--pool', 'tty-alone', '--cacert', cacert, '--timeout', '1.5']
      .map((word) => `'${word}'`)
      .join(' ');
    const child = spawn('script', ['--quiet', '--return', '--command', command, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let screen = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (screen += chunk));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(code).toBe(2);
    expect(screen).toContain('\r⠋ waiting for a peer… 0s');
    expect(screen).toContain(' waiting for a peer… 1s');
    expect(screen.endsWith('\r\x1b[2Kpairup: nobody came within 1.5 s\r\n')).toBe(true);
  });

  it('tells to use https:// when given http://, for find and signal', async () => {
    const http = server.origin.replace('https:', 'http:');
    const hint = `(pairup serves HTTPS only: use https://${new URL(server.origin).host})`;
    const [found, signalled] = await Promise.all([pairup(['find', http, '--timeout', '5']), pairup(['signal', http, '--timeout', '5'])]);
    expect(found).toEqual({ code: 1, stdout: '', stderr: `pairup: cannot reach ${http}: other side closed ${hint}\n` });
    expect(signalled).toEqual({ code: 1, stdout: '', stderr: `pairup: cannot open a WebSocket to ${http.replace('http:', 'ws:')} ${hint}\n` });
  });

  it('exits 1 naming an untrusted certificate, for find and signal', async () => {
    const [run, signalled] = await Promise.all([pairup(['find', server.origin, '--timeout', '5']), pairup(['signal', server.origin, '--timeout', '5'])]);
    const why = 'self-signed certificate (not trusted: give its certificate with --cacert FILE, or the ca option)';
    expect(run).toEqual({ code: 1, stdout: '', stderr: `pairup: cannot reach ${server.origin}: ${why}\n` });
    expect(signalled).toEqual({ code: 1, stdout: '', stderr: `pairup: cannot open a WebSocket to ${server.origin.replace('https:', 'wss:')}: ${why}\n` });
  });
});

describe('pairup find against a broken or hostile server', () => {
  const scripted = new ScriptedServer();
  let url: string;
  beforeAll(async () => {
    url = await scripted.start();
  });
  afterAll(() => scripted.close());

  const MATCH = SAMPLE_MATCH;

  it.each([
    ['a 200 that is not a match', { status: 200, body: { hello: 'world' } }, 'pairup: URL answered 200 with something that is not a match\n'],
    ['a peer with terminal escapes', { status: 200, body: { ...MATCH, peer: '\u001b]0;owned\u0007127.0.0.1:2' } }, 'pairup: URL answered 200 with something that is not a match\n'],
    ['an error message with terminal escapes', { status: 409, body: { error: 'code_used', message: 'used\u001b[2J\u001b[31m!' } }, 'pairup: used\\x1b[2J\\x1b[31m!\n'],
    ['an error message of two lines', { status: 409, body: { error: 'code_used', message: 'used.\nchoose another' } }, 'pairup: used. choose another\n'],
    ['an endless answer', { status: 200, body: MATCH, floodBytes: 256 * 1024 * 1024 }, 'pairup: URL answered with more than 65536 bytes\n'],
  ])('exits 1 with one clean line on %s', async (_what, answer, stderr) => {
    scripted.script = [answer];
    const run = await pairup(['find', url, '--cacert', cacert, '--timeout', '5']);
    expect(run).toEqual({ code: 1, stdout: '', stderr: stderr.replace('URL', url) });
  });

  it('prints a real match’s peer as it is', async () => {
    scripted.script = [{ status: 200, body: { ...MATCH, peer: '[2001:db8::1]:443' } }];
    expect(await pairup(['find', url, '--cacert', cacert])).toEqual({ code: 0, stdout: '[2001:db8::1]:443\n', stderr: '' });
  });
});

describe('pairup --help and --version', () => {
  it('prints usage and the version, exit 0', async () => {
    const help = await pairup(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('pairup find URL [--pool P | --code C] [--meta JSON] [--cacert FILE] [--timeout S] [--json]');
    const { version } = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(await pairup(['--version'])).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
  });
});

describe('pairup serve', () => {
  it('runs the server until SIGTERM', async () => {
    const proc = spawnServer({ HOST: '127.0.0.1', PORT: '0', STUN_PORT: '0' }, dir, [CLI, 'serve']);
    const port = await proc.port;
    const cert = await readFile(join(dir, 'certs', 'dev-cert.pem'), 'utf8');
    const client = new TestClient(`https://127.0.0.1:${port}`, cert);
    try {
      expect((await ask(client.client, `https://127.0.0.1:${port}`, '/healthz')).text).toBe('{"status":"ok","waiting":0}');
    } finally {
      await client.close();
    }
    proc.child.kill('SIGTERM');
    expect(await proc.exit).toEqual({ code: 0, signal: null });
  });
});

describe('the package', () => {
  it('exports the client as pairup/client (the built dist/, as npm ci leaves it)', async () => {
    const { code, stdout, stderr } = await runNode(
      ['--input-type=module', '-e', "const m = await import('pairup/client'); console.log(Object.keys(m).sort().join(' '))"],
      fileURLToPath(new URL('..', import.meta.url)),
    );
    expect({ code, stdout, stderr }).toEqual({
      code: 0,
      stdout: 'DEFAULT_STUN_TIMEOUT_MS DEFAULT_TIMEOUT_MS NoPeerError PairupError StunError connectPeer discoverNat findPeer punch reportOutcome stunMapping\n',
      stderr: '',
    });
  });

  it('exports the browser client as pairup/browser', async () => {
    const { code, stdout, stderr } = await runNode(
      ['--input-type=module', '-e', "const m = await import('pairup/browser'); console.log(Object.keys(m).sort().join(' '))"],
      fileURLToPath(new URL('..', import.meta.url)),
    );
    expect({ code, stdout, stderr }).toEqual({ code: 0, stdout: 'PairupError connectPeer findPeer openDataChannel openMesh\n', stderr: '' });
  });
});
