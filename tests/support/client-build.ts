import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** packages/client: the SDK, whose built files the CLI, package and browser tests use. */
export const CLIENT_DIR = join(ROOT, 'packages/client');
export const CLIENT_DIST = join(CLIENT_DIR, 'dist');
const STAMP = join(CLIENT_DIST, '.inputs-sha256');

/** Everything the client's build reads: its sources, its build config, and the signer it bundles. */
function inputs(): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else files.push(path);
    }
  };
  walk(join(CLIENT_DIR, 'src'));
  files.push(
    join(CLIENT_DIR, 'package.json'),
    join(CLIENT_DIR, 'tsup.config.ts'),
    join(CLIENT_DIR, 'tsconfig.json'),
    join(ROOT, 'packages/shared/src/webhook-signature.ts'),
  );
  return files.sort();
}

function digest(): string {
  const hash = createHash('sha256');
  for (const file of inputs()) hash.update(relative(ROOT, file)).update('\0').update(readFileSync(file)).update('\0');
  return hash.digest('hex');
}

/**
 * Builds packages/client (`pnpm --filter @longhaul/client build`) unless dist/ was already built
 * from the same inputs. Run once, from the global setup, so no two test files build at once.
 */
export function ensureClientBuilt(): void {
  const want = digest();
  if (existsSync(STAMP) && readFileSync(STAMP, 'utf8') === want) return;
  const build = spawnSync('pnpm', ['--filter', '@longhaul/client', 'build'], { cwd: ROOT, encoding: 'utf8' });
  if (build.status !== 0) {
    throw new Error(
      `building @longhaul/client failed (${build.error?.message ?? `exit ${build.status}`}):\n${build.stdout}${build.stderr}`,
    );
  }
  writeFileSync(STAMP, want);
}
