// Tells whether dist/ is the build of the sources as they are now, so that `npm start` builds only
// when something changed (a full build takes tens of seconds):
//   begin  before a build: marks its start (dist/.build-started), and drops the last stamp: a build
//          that fails halfway leaves dist/ neither old nor new
//   end    after a build that succeeded: the mark becomes dist/.build-stamp, keeping the start's time,
//          so that a source edited while the build ran still counts as changed
//   check  exit 0 when no input of the build (src/, scripts/, tsconfig*.json) changed after the
//          last build started, else exit 1 naming one that did
// It works in the current directory: npm runs scripts in the package's root.
import { mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const STARTED = join('dist', '.build-started');
const STAMP = join('dist', '.build-stamp');

/** Every file the build reads, but node_modules. */
function inputs() {
  const files = readdirSync('.').filter((name) => /^tsconfig.*\.json$/.test(name));
  for (const dir of ['src', 'scripts']) {
    try {
      for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
        if (entry.isFile()) files.push(join(entry.parentPath, entry.name));
      }
    } catch {
      // no such folder
    }
  }
  return files;
}

const [command] = process.argv.slice(2);
if (command === 'begin') {
  mkdirSync('dist', { recursive: true });
  rmSync(STAMP, { force: true });
  writeFileSync(STARTED, `${new Date().toISOString()}\n`);
} else if (command === 'end') {
  renameSync(STARTED, STAMP);
} else if (command === 'check') {
  let builtMs;
  try {
    builtMs = statSync(STAMP).mtimeMs;
  } catch {
    process.stderr.write('pairup: no finished build in dist/: building\n');
    process.exit(1);
  }
  const changed = inputs().find((file) => statSync(file).mtimeMs > builtMs);
  if (changed !== undefined) {
    process.stderr.write(`pairup: ${changed} changed since the last build: building\n`);
    process.exit(1);
  }
  process.stderr.write('pairup: dist/ is up to date: not building\n');
} else {
  process.stderr.write('usage: node scripts/build-stamp.mjs begin|end|check\n');
  process.exit(2);
}
