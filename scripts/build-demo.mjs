// Builds the demo page pairup serves at /demo/: src/demo/demo.ts bundled with the browser client
// (esbuild), beside its HTML and CSS, into dist/demo/.
import { copyFile, mkdir } from 'node:fs/promises';
import { build } from 'esbuild';

const out = new URL('../dist/demo/', import.meta.url);
await mkdir(out, { recursive: true });
await build({
  entryPoints: [new URL('../src/demo/demo.ts', import.meta.url).pathname],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  outfile: new URL('demo.js', out).pathname,
  logLevel: 'warning',
});
// The browser client alone, bundled, for pages that load it from a URL rather than a bundler.
await build({
  entryPoints: [new URL('../src/browser/index.ts', import.meta.url).pathname],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  sourcemap: true,
  outfile: new URL('../dist/browser/pairup.js', import.meta.url).pathname,
  logLevel: 'warning',
});
for (const file of ['index.html', 'demo.css']) await copyFile(new URL(`../src/demo/${file}`, import.meta.url), new URL(file, out));
