#!/usr/bin/env node
// The `longhaul` command: the CLI built into dist/ by `pnpm --filter @longhaul/client build`.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('longhaul: the CLI is not built; run `pnpm --filter @longhaul/client build`\n');
  process.exit(1);
}
await import(cli.href);
