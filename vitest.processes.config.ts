import { defineConfig } from 'vitest/config';

/**
 * `npm run test:processes`: whole pairup processes sharing a redis-server (or a Redis Cluster) the
 * tests start, the WORKERS=N primary, a process whose clients are cut off in network namespaces
 * (half-open), app keys end to end on a process, and the server process itself (`npm start`: its
 * signals, limits and files, test/main.test.ts): slower than the rest (seconds a process to start
 * and stop), so apart from `npm test` to keep it under five minutes.
 */
export const PROCESS_SUITES = ['test/*-processes.test.ts', 'test/workers.test.ts', 'test/half-open.test.ts', 'test/access-process.test.ts', 'test/main.test.ts'];

export default defineConfig({
  test: {
    include: PROCESS_SUITES,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
