import { defineConfig } from 'tsup';

/**
 * One ESM file, `dist/main.js`, run with `node dist/main.js` (the Docker image does). The workspace
 * package @longhaul/shared ships TypeScript sources, so it is bundled in; the app's own npm
 * dependencies stay external (tsup's default) and are installed beside it by `pnpm deploy --prod`.
 * Anything else shared imports (e.g. `ulid`) is bundled, since a pruned install does not expose
 * shared's dependencies to the app.
 */
export default defineConfig({
  // The dataset-profile worker thread is its own file, found next to main.js at run time
  // (apps/worker/src/analyses/dataset-profile/profile-thread-client.ts).
  entry: { main: 'src/main.ts', 'dataset-profile-thread': 'src/analyses/dataset-profile/profile-thread.ts' },
  format: ['esm'],
  platform: 'node',
  target: 'node20',
  outDir: 'dist',
  clean: true,
  sourcemap: true,
  splitting: false,
  noExternal: ['@longhaul/shared'],
});
