import { defineConfig } from 'tsup';

/**
 * The published package: ESM and `.d.ts` in `dist/`.
 * - `index` is for browsers and Node alike: its one dependency (an SSE parser) is bundled in, so
 *   the file imports nothing and a page can load it as it is.
 * - `node` holds webhook verification (node:crypto). Its source is the worker's signer in
 *   @longhaul/shared, bundled in (code and types) so the package does not depend on server code.
 * - `cli` is the `longhaul` command (bin/longhaul.mjs); commander and cli-progress stay dependencies.
 */
/** What the two Node entries share: ESM for Node 20, `node:` imports kept as written. */
const nodeEntry = {
  format: ['esm'],
  platform: 'node',
  target: 'node20',
  removeNodeProtocol: false,
  outDir: 'dist',
  sourcemap: true,
} as const;

export default defineConfig([
  {
    entry: { index: 'src/index.ts' },
    format: ['esm'],
    platform: 'browser',
    target: 'es2022',
    outDir: 'dist',
    sourcemap: true,
    dts: true,
    noExternal: ['eventsource-parser'],
  },
  {
    entry: { node: 'src/node.ts' },
    ...nodeEntry,
    // The declarations are bundled too: TypeScript otherwise treats the linked workspace package as
    // an external library and leaves an import of it in node.d.ts.
    dts: {
      compilerOptions: { paths: { '@longhaul/shared/webhook-signature': ['../shared/src/webhook-signature.ts'] } },
    },
    noExternal: ['@longhaul/shared'],
  },
  {
    entry: { cli: 'src/main.ts' },
    ...nodeEntry,
    noExternal: ['eventsource-parser'],
  },
]);
