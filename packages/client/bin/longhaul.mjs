#!/usr/bin/env node
// The `longhaul` command: the CLI built into dist/ (`pnpm --filter @longhaul/client build`).
await import('../dist/cli.js');
