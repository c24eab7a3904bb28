// Types of the values tests/support/global-setup.ts hands to tests through vitest's provide/inject.
// Import it with `import type {} from './provided-context.ts'` wherever `inject`/`provide` is used.
declare module 'vitest' {
  export interface ProvidedContext {
    /** Redis for this test run: `REDIS_URL`, a private redis-server, or a container. */
    redisUrl: string;
  }
}

export {};
