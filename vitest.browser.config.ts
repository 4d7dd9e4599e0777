import { defineConfig } from 'vitest/config';

/** `npm run test:browser`: the demo page and the browser client in Debian's Chromium (playwright-core). */
export default defineConfig({
  test: {
    include: ['test/browser/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
