import { defineConfig } from 'vitest/config';
import { PROCESS_SUITES } from './vitest.processes.config.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real-browser tests run apart: npm run test:browser (vitest.browser.config.ts); the NAT lab's
    // matrix too: npm run test:nat-lab (vitest.nat-lab.config.ts, root, about two minutes); and
    // whole processes sharing Redis: npm run test:processes (vitest.processes.config.ts).
    exclude: ['test/browser/**', 'test/nat-lab/**', ...PROCESS_SUITES, 'node_modules/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Load tests share two cores: one file at a time keeps their timing honest.
    fileParallelism: false,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
