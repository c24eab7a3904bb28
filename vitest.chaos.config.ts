import { defineConfig } from 'vitest/config';
import base from './vitest.config.ts';

/**
 * `pnpm test:chaos`: the fault, load and hostile-input suite (tests/chaos) in its long form
 * (1,000 jobs × 400 ms under a worker kill, 3 minutes of load, 2,000 runs per property).
 * `pnpm test` runs the same tests in their short form. One file at a time: each one measures
 * recovery and memory, which a neighbour competing for the 2 cores would distort.
 */
// Not mergeConfig: it would append to the base `include` and run the whole suite.
export default defineConfig({
  test: {
    ...base.test,
    include: ['tests/chaos/**/*.test.ts'],
    env: { LONGHAUL_CHAOS_FULL: '1' },
    maxWorkers: 1,
    testTimeout: 1_200_000,
  },
});
