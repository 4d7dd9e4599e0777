import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real-browser tests run apart: npm run test:browser (vitest.browser.config.ts).
    exclude: ['test/browser/**', 'node_modules/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Load tests share two cores: one file at a time keeps their timing honest.
    fileParallelism: false,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
