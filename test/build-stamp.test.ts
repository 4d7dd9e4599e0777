/**
 * `npm start` builds only when an input of the build changed since the last build started
 * (scripts/build-stamp.mjs), run through npm itself in a folder of its own whose build only counts.
 */
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from './helpers/process.js';

const STAMP_SCRIPT = fileURLToPath(new URL('../scripts/build-stamp.mjs', import.meta.url));
const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
const BEGIN = 'node scripts/build-stamp.mjs begin && ';
const END = ' && node scripts/build-stamp.mjs end';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairup-start-'));
  await mkdir(join(dir, 'src'));
  await mkdir(join(dir, 'scripts'));
  await writeFile(join(dir, 'src', 'main.ts'), 'export {};\n');
  await writeFile(join(dir, 'tsconfig.json'), '{}\n');
  await writeFile(join(dir, 'scripts', 'build-stamp.mjs'), await readFile(STAMP_SCRIPT));
  // The package's own prestart and build, with the compilers replaced by a line that counts builds.
  const build = `${BEGIN}node -e "require('fs').appendFileSync('builds', 'x')"${END}`;
  const scripts = { build, prestart: pkg.scripts.prestart, start: 'node -e "console.log(\'started\')"' };
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'fixture', private: true, scripts }));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const start = () => runCommand('npm', ['start', '--silent', '--no-update-notifier'], dir);
const builds = async () => (await readFile(join(dir, 'builds'), 'utf8').catch(() => '')).length;

describe('npm start', () => {
  it('is wired to the stamp: build marks its start and end, prestart checks first', () => {
    expect(pkg.scripts.prestart).toBe('node scripts/build-stamp.mjs check || npm run build');
    expect(pkg.scripts.build?.startsWith(BEGIN)).toBe(true);
    expect(pkg.scripts.build?.endsWith(END)).toBe(true);
  });

  it('builds the first time, not again while nothing changed, and again once a source changed', async () => {
    const first = await start();
    expect([first.code, first.stdout, first.stderr, await builds()]).toEqual([0, 'started\n', 'pairup: no finished build in dist/: building\n', 1]);
    const second = await start();
    expect([second.code, second.stdout, second.stderr, await builds()]).toEqual([0, 'started\n', 'pairup: dist/ is up to date: not building\n', 1]);
    const future = new Date(Date.now() + 5000);
    await utimes(join(dir, 'src', 'main.ts'), future, future);
    const third = await start();
    expect([third.code, third.stdout, third.stderr, await builds()]).toEqual([0, 'started\n', `pairup: ${join('src', 'main.ts')} changed since the last build: building\n`, 2]);
  });

  it('builds again after a build that failed halfway, although no source changed since', async () => {
    // A build that fails after `begin` (a compiler error) never reaches `end`.
    await runCommand('node', [join('scripts', 'build-stamp.mjs'), 'begin'], dir);
    const run = await start();
    expect([run.code, run.stderr, await builds()]).toEqual([0, 'pairup: no finished build in dist/: building\n', 3]);
  });
});
