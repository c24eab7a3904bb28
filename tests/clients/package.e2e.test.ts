import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { signWebhook } from '@longhaul/shared/webhook-signature';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/processes.ts';

const run = promisify(execFile);
const require = createRequire(import.meta.url);
/** The workspace's own versions, so the consumer checks against what the SDK is built with. */
const TYPESCRIPT = (require('typescript/package.json') as { version: string }).version;
const TYPES_NODE = (require('@types/node/package.json') as { version: string }).version;

/** A consumer's code: every call typed from the package's .d.ts alone. */
const CONSUMER = `import { createClient, NotFoundError, type JobView } from '@longhaul/client';
import { verifyWebhook } from '@longhaul/client/node';

const client = createClient({ baseUrl: 'https://longhaul.example.com', apiKey: 'key' });

export async function profile(): Promise<number> {
  const job: JobView = await client.submit('simulate', { durationMs: 1000, steps: 5 }, { idempotencyKey: 'k1' });
  for await (const event of client.events(job.id)) {
    if (event.type === 'progress') console.log(event.data.progress.percent);
  }
  const { result } = await client.result<'simulate'>(job.id);
  try {
    await client.get('job_missing');
  } catch (err) {
    if (err instanceof NotFoundError) console.log(err.code, err.requestId);
  }
  verifyWebhook('secret', 'header', 'body');
  return result.elapsedMs;
}
`;

/** The same consumer getting an input wrong: tsc must refuse it, or the check above proves nothing. */
const WRONG = `import { createClient } from '@longhaul/client';
await createClient({ baseUrl: 'x', apiKey: 'k' }).submit('simulate', { durationMs: 'one second' });
`;

const tsconfig = (compilerOptions: object, files: string[]) =>
  JSON.stringify({
    compilerOptions: {
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      strict: true,
      noEmit: true,
      skipLibCheck: false,
      ...compilerOptions,
    },
    files,
  });

/** A tsc run takes seconds on a quiet machine and much longer on a busy one: it bounds a failure only. */
const TSC_TIMEOUT_MS = 120_000;

describe('the packed @longhaul/client installed outside the workspace', () => {
  let dir: string;
  let tarball: string;
  let app: string;

  beforeAll(async () => {
    // tmpdir() is outside the repository: no workspace node_modules above it to fall back on.
    dir = await mkdtemp(join(tmpdir(), 'longhaul-client-pack-'));
    await run('pnpm', ['--filter', '@longhaul/client', 'pack', '--pack-destination', dir], { cwd: REPO_ROOT });
    const packed = (await readdir(dir)).find((f) => f.endsWith('.tgz'));
    if (!packed) throw new Error(`pnpm pack wrote no tarball into ${dir}`);
    tarball = join(dir, packed);
    app = join(dir, 'app');
    await mkdir(app);
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    await run(
      'npm',
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        '--loglevel=error',
        tarball,
        `typescript@${TYPESCRIPT}`,
        `@types/node@${TYPES_NODE}`,
      ],
      { cwd: app, timeout: 170_000 },
    );
  }, 180_000);
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('when packed, then the manifest is publishable and the tarball holds the built files, not the sources', async () => {
    const { stdout } = await run('tar', ['-tzf', tarball]);
    const files = stdout.split('\n').filter(Boolean);
    expect(files).toEqual(
      expect.arrayContaining([
        'package/package.json',
        'package/README.md',
        'package/bin/longhaul.mjs',
        'package/dist/index.js',
        'package/dist/index.d.ts',
        'package/dist/node.js',
        'package/dist/node.d.ts',
        'package/dist/cli.js',
      ]),
    );
    expect(files.filter((f) => f.startsWith('package/src/'))).toEqual([]);
    const manifest = JSON.parse(await readFile(join(app, 'node_modules/@longhaul/client/package.json'), 'utf8'));
    expect(manifest.private).toBeUndefined();
    expect(manifest.engines.node).toBe('>=20.19');
    expect(manifest.exports['.'].types).toBe('./dist/index.d.ts');
    expect(Object.keys(manifest.dependencies ?? {})).not.toContain('@longhaul/shared');
    expect(JSON.stringify(manifest)).not.toContain('workspace:');
  });

  it('when Node imports the package, then createClient is there and the main entry imports nothing', async () => {
    const { stdout } = await run(
      process.execPath,
      ['-e', "import('@longhaul/client').then((m) => console.log(typeof m.createClient, typeof m.LonghaulClient))"],
      { cwd: app },
    );
    expect(stdout.trim()).toBe('function function');
    const main = await readFile(join(app, 'node_modules/@longhaul/client/dist/index.js'), 'utf8');
    expect(main).not.toMatch(/^\s*import\s/m);
    expect(main).not.toMatch(/\brequire\(|node:|process\./);
  });

  it("when the worker signs a webhook, then the installed @longhaul/client/node's verifyWebhook accepts it", async () => {
    const body = '{"id":"job_1","status":"completed"}';
    const header = signWebhook('whsec-0123456789abcdef', body);
    const script = `import('@longhaul/client/node').then(({ verifyWebhook }) => {
      verifyWebhook('whsec-0123456789abcdef', process.argv[1], process.argv[2]);
      try { verifyWebhook('another-secret-0123', process.argv[1], process.argv[2]); } catch (e) { console.log(e.reason); }
    })`;
    const { stdout } = await run(process.execPath, ['-e', script, header, body], { cwd: app });
    expect(stdout.trim()).toBe('signature_mismatch');
  });

  it(
    'when a Node TypeScript project uses createClient, then it typechecks against the package alone',
    async () => {
      await writeFile(join(app, 'consumer.ts'), CONSUMER);
      await writeFile(join(app, 'tsconfig.json'), tsconfig({ lib: ['ES2022'], types: ['node'] }, ['consumer.ts']));
      // tsc exits non-zero, and so rejects with its errors on stdout, when anything does not check.
      await run(process.execPath, ['node_modules/typescript/bin/tsc', '-p', '.'], { cwd: app });
    },
    TSC_TIMEOUT_MS,
  );

  it(
    'when a browser TypeScript project uses the main entry, then it typechecks with the DOM library and no Node types',
    async () => {
      await writeFile(
        join(app, 'browser.ts'),
        CONSUMER.replace(/^.*@longhaul\/client\/node.*$|^\s*verifyWebhook.*$/gm, ''),
      );
      await writeFile(
        join(app, 'tsconfig.browser.json'),
        tsconfig({ lib: ['ES2022', 'DOM'], types: [] }, ['browser.ts']),
      );
      await run(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.browser.json'], { cwd: app });
    },
    TSC_TIMEOUT_MS,
  );

  it(
    'when the input does not match the analysis, then tsc refuses the consumer',
    async () => {
      await writeFile(join(app, 'wrong.ts'), WRONG);
      await writeFile(join(app, 'tsconfig.wrong.json'), tsconfig({ lib: ['ES2022'], types: ['node'] }, ['wrong.ts']));
      const failed = await run(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.wrong.json'], {
        cwd: app,
      }).then(
        () => null,
        (err: { stdout: string }) => err,
      );
      expect(failed?.stdout).toMatch(/wrong\.ts.*error TS2322/);
    },
    TSC_TIMEOUT_MS,
  );

  it('when the installed CLI is asked for help, then it answers from its bin', async () => {
    const { stdout } = await run(join(app, 'node_modules/.bin/longhaul'), ['--help'], { cwd: app });
    expect(stdout).toMatch(/Usage: longhaul/);
  });
});
