/**
 * The package as npm publishes it: `npm pack`'s tarball, installed into a fresh folder outside this
 * repository, runs the README's `findPeer()` snippet as written against a real server.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPeer } from '../src/client/index.js';
import { runCommand, runNode } from './helpers/process.js';
import { startServer, type TestServer } from './helpers/server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

let dir: string;
let app: string;
let files: string[];
let server: TestServer | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairup-pack-'));
  // dist/ as the last build left it when that build is current (npm ci's), else built by prepare.
  const current = (await runNode(['scripts/build-stamp.mjs', 'check'], ROOT)).code === 0;
  const packed = await runCommand('npm', ['pack', '--json', '--pack-destination', dir, ...(current ? ['--ignore-scripts'] : [])], ROOT);
  if (packed.code !== 0) throw new Error(`npm pack failed: ${packed.stderr}`);
  const [manifest] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  if (manifest === undefined) throw new Error('npm pack made nothing');
  files = manifest.files.map((file) => file.path);
  app = join(dir, 'app');
  await mkdir(join(app, 'certs'), { recursive: true });
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  const installed = await runCommand('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(dir, manifest.filename)], app);
  if (installed.code !== 0) throw new Error(`npm install of the tarball failed: ${installed.stderr}`);
  const running = await startServer();
  server = running;
  await writeFile(join(app, 'certs', 'dev-cert.pem'), running.cert);
}, 180_000);
afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('holds the build, its types, the README and the LICENSE, and no sources or tests', () => {
    expect(files).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'package.json', 'dist/cli.js', 'dist/main.js', 'dist/client/index.js', 'dist/client/index.d.ts', 'dist/browser/index.d.ts', 'dist/browser/pairup.js', 'dist/browser/pairup.js.map', 'dist/demo/index.html']));
    expect(files.filter((file) => /^(src|test|bench|scripts)\/|^dist\/\.build/.test(file))).toEqual([]);
  });

  it('runs the README’s findPeer() snippet, as written, in a fresh folder, against a real server', async () => {
    if (server === undefined) throw new Error('no server');
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('### `findPeer()` — from a program'));
    const snippet = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
    expect(snippet).toContain("from 'pairup/client'");
    // Only the server's address differs: this one listens on a port of its own.
    await writeFile(join(app, 'snippet.mjs'), (snippet ?? '').replace('https://localhost:3030', server.origin));
    const code = /code: '([a-z0-9-]+)'/.exec(snippet ?? '')?.[1] ?? '';
    const running = runNode(['snippet.mjs'], app);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const partner = await findPeer({ url: server.origin, code, ca: server.cert, meta: { from: 'the test' }, timeoutMs: 10_000 });
    const run = await running;
    expect(run).toEqual({ code: 0, stdout: `${partner.self} { from: 'the test' } ${partner.secret}\n`, stderr: '' });
  });

  it('installs the pairup command and the browser client’s file', async () => {
    const version = await runCommand(join(app, 'node_modules', '.bin', 'pairup'), ['--version'], app);
    expect(version).toEqual({ code: 0, stdout: `${pkg.version}\n`, stderr: '' });
    const resolved = await runNode(['--input-type=module', '-e', "console.log(import.meta.resolve('pairup/browser/pairup.js'))"], app);
    expect(resolved.stdout).toBe(`file://${join(app, 'node_modules', 'pairup', 'dist', 'browser', 'pairup.js')}\n`);
  });
});
