import { defineConfig, type Options } from 'tsup';

/**
 * The bundle of an app (apps/api, apps/worker): ESM files in `dist/`, run with `node dist/main.js`
 * (the Docker image does). The workspace package @longhaul/shared ships TypeScript sources, so it
 * is bundled in; the app's own npm dependencies stay external (tsup's default) and are installed
 * beside it by `pnpm deploy --prod`. Anything else shared imports (e.g. `ulid`) is bundled, since a
 * pruned install does not expose shared's dependencies to the app.
 */
export function appBundle(entry: Options['entry']) {
  return defineConfig({
    entry,
    format: ['esm'],
    platform: 'node',
    target: 'node20',
    outDir: 'dist',
    clean: true,
    sourcemap: true,
    // Code splitting keeps each `await import()` of main.ts a chunk of its own, loaded when that
    // line runs. Without it esbuild inlines the module and hoists its imports (express, ioredis) to
    // the top of main.js, before tracing starts, where the instrumentations cannot patch them.
    splitting: true,
    noExternal: ['@longhaul/shared'],
  });
}
