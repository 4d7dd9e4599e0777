import path from 'node:path';
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/**
 * The layers of src/, lowest first (docs/ARCHITECTURE.md): what each part may import besides itself.
 * A part is a directory of src/ or a file at its top (config.ts); parts not listed (main.ts,
 * primary.ts, cli.ts, config-warnings.ts) are the top and may import anything. net/ and ops/ share a
 * rank and do not import each other.
 */
const MAY_IMPORT = {
  protocol: [],
  // config.ts reads each value through config-values.ts, which imports nothing of pairup's.
  'config-values': [],
  config: ['config-values'],
  queue: ['protocol'],
  core: ['protocol', 'queue'],
  net: ['protocol', 'queue', 'core', 'config'],
  ops: ['protocol', 'queue', 'core', 'config'],
  http: ['protocol', 'queue', 'core', 'net', 'ops', 'config'],
  client: ['protocol'],
  browser: ['protocol'],
  demo: ['browser'],
};
/** Packages a part may import, where it is held to a few: the wire contract is TypeBox alone. */
const MAY_USE = { protocol: ['typebox'] };

const SRC = path.join(import.meta.dirname, 'src');

/** The part of src/ a file belongs to, or undefined outside src/. */
function partOf(file) {
  const relative = path.relative(SRC, file);
  if (relative.startsWith('..') || path.isAbsolute(relative)) return undefined;
  const [first = '', ...rest] = relative.split(path.sep);
  return rest.length > 0 ? first : first.replace(/\.[cm]?[jt]s$/, '');
}

/** Every import (static, re-export, dynamic) that runs up the layers, or across them, is an error. */
const layers = {
  meta: { type: 'problem', schema: [], messages: { up: '{{file}} may not import {{what}}: src/{{from}} imports only {{allowed}} (layers: docs/ARCHITECTURE.md)' } },
  create(context) {
    const from = partOf(context.filename);
    const allowed = from === undefined ? undefined : MAY_IMPORT[from];
    if (allowed === undefined) return {};
    const packages = MAY_USE[from];
    const report = (source, what) =>
      context.report({
        node: source,
        messageId: 'up',
        data: { file: path.relative(import.meta.dirname, context.filename), what, from, allowed: [...allowed, ...(packages ?? [])].join(', ') || 'itself' },
      });
    const check = (source) => {
      if (source?.type !== 'Literal' || typeof source.value !== 'string') return;
      const specifier = source.value;
      if (!specifier.startsWith('.')) {
        const name = specifier.startsWith('@') ? specifier.split('/', 2).join('/') : specifier.split('/')[0];
        if (packages !== undefined && !packages.includes(name)) report(source, name);
        return;
      }
      const target = path.resolve(path.dirname(context.filename), specifier);
      const to = partOf(target);
      if (to !== from && !allowed.includes(to)) report(source, path.relative(import.meta.dirname, target));
    };
    return {
      ImportDeclaration: (node) => check(node.source),
      ExportNamedDeclaration: (node) => check(node.source),
      ExportAllDeclaration: (node) => check(node.source),
      ImportExpression: (node) => check(node.source),
    };
  },
};

export default tseslint.config(
  { ignores: ['dist/', 'coverage/', 'certs/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      globals: globals.node,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-confusing-void-expression': 'off',
    },
  },
  {
    // Code that runs in browsers, and the tests that drive them: DOM types (tsconfig.browser.json).
    files: ['src/browser/**/*.ts', 'src/demo/**/*.ts', 'test/browser/**/*.ts', 'vitest.browser.config.ts'],
    languageOptions: {
      parserOptions: { projectService: false, project: ['./tsconfig.browser.json'], tsconfigRootDir: import.meta.dirname },
    },
  },
  {
    // pairup/browser and the demo: no Node built-ins, no undici.
    files: ['src/browser/**/*.ts', 'src/demo/**/*.ts'],
    languageOptions: { globals: globals.browser },
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['node:*', 'undici', 'ws'], message: 'runs in browsers: no Node modules' }] }],
    },
  },
  {
    files: ['src/**/*.ts'],
    plugins: { pairup: { rules: { layers } } },
    rules: { 'pairup/layers': 'error' },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
);
