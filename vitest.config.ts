import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Load tests share two cores: one file at a time keeps their timing honest.
    fileParallelism: false,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
