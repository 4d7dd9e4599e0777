import { defineConfig } from 'vitest/config';

/**
 * `npm run test:nat-lab`: the NAT lab's reduced matrix (one trial per cell, about two minutes, root):
 * real namespaces, nftables NAT, pairup's build, the UDP example and Chromium. Apart from `npm test`.
 */
export default defineConfig({
  test: {
    include: ['test/nat-lab/**/*.test.ts'],
    testTimeout: 240_000,
    hookTimeout: 240_000,
    fileParallelism: false,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
