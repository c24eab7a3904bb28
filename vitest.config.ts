import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['apps/**/src/**/*.test.ts', 'packages/**/src/**/*.test.ts', 'tests/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**', '**/.data/**'],
    // One Redis for the run (REDIS_URL, else a private redis-server, else testcontainers); tests
    // read it with redisUrl() from tests/support/redis.ts and isolate themselves by key prefix.
    globalSetup: ['tests/support/global-setup.ts'],
    // Child processes (redis-server, api, worker) and signals are easier to reason about in forks
    // than in worker threads, and a crashing test file cannot take its neighbours down.
    pool: 'forks',
    // CI machines have 2 cores; end-to-end files each run an api and a worker, so more parallel
    // files only make them starve each other and time out.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
  },
});
