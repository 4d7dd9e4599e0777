import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

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
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
);
