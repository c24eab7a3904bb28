import { readFile } from 'node:fs/promises';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { LonghaulClient } from '../client.ts';
import { ApiError, ConflictError, ConnectionError } from '../errors.ts';
import type { AnalysisName, JobStatus, JobView, ScheduleView } from '../types.ts';
import { createProgressDisplay, formatEta } from './progress-display.ts';

/**
 * Exit codes, for scripts: the job's outcome, or how the command itself went. `interrupted` is the
 * shells' 128 + SIGINT, for a Ctrl-C while following a job (the job itself goes on).
 */
export const EXIT = { completed: 0, failed: 1, usage: 2, cancelled: 3, interrupted: 130 } as const;

export interface CliIo {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  stdin: NodeJS.ReadStream;
  /** `LONGHAUL_URL`, `LONGHAUL_API_KEY`. */
  env: Record<string, string | undefined>;
  /** The package's version, for `--version`. */
  version: string;
}

/** A problem with how the command was called (exit 2). */
class UsageError extends Error {}

function exitFor(status: JobStatus): number {
  if (status === 'completed') return EXIT.completed;
  if (status === 'cancelled') return EXIT.cancelled;
  return EXIT.failed;
}

function int(name: string) {
  return (raw: string) => {
    const n = Number(raw);
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer`);
    return n;
  };
}

/** `--input`: inline JSON, `@file.json`, or `@-` for stdin. */
async function readInput(raw: string, stdin: NodeJS.ReadStream): Promise<unknown> {
  let text = raw;
  if (raw === '@-') {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(Buffer.from(chunk));
    text = Buffer.concat(chunks).toString('utf8');
  } else if (raw.startsWith('@')) {
    text = await readFile(raw.slice(1), 'utf8').catch((err: Error) => {
      throw new UsageError(`cannot read ${raw.slice(1)}: ${err.message}`);
    });
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError('--input is not valid JSON (give JSON, @file.json or @- for stdin)');
  }
}

function summary(view: JobView): string {
  const pct = view.progress ? ` ${Math.round(view.progress.percent)}%` : '';
  const step = view.progress?.step
    ? ` ${view.progress.step}${view.progress.message ? `: ${view.progress.message}` : ''}`
    : '';
  const eta = view.etaSeconds !== null ? `  ETA ${formatEta(view.etaSeconds)}` : '';
  const lines = [
    `${view.id}  ${view.type}  ${view.status}${pct}${step}${eta}  attempts ${view.attempts.made}/${view.attempts.max}`,
  ];
  if (view.error) lines.push(`  error: ${view.error.code}: ${view.error.message}`);
  if (view.parentId) lines.push(`  parent: ${view.parentId}`);
  if (view.children) {
    const c = view.children;
    lines.push(
      `  children: ${c.total} (queued ${c.queued}, active ${c.active}, completed ${c.completed}, failed ${c.failed}, cancelled ${c.cancelled})`,
    );
  }
  if (view.webhook) {
    const last = view.webhook.deliveries[0];
    lines.push(
      `  webhook: ${view.webhook.url}${last ? ` (attempt ${last.attempt}: ${last.ok ? 'delivered' : (last.error ?? 'failed')})` : ' (not sent yet)'}`,
    );
  }
  return lines.join('\n');
}

function outcome(view: JobView): string {
  const took =
    view.startedAt && view.finishedAt
      ? ` in ${((Date.parse(view.finishedAt) - Date.parse(view.startedAt)) / 1000).toFixed(1)}s`
      : '';
  if (view.status === 'completed') return `completed ${view.id}${took}`;
  const why = view.error ? `: ${view.error.code}: ${view.error.message}` : '';
  return `${view.status} ${view.id}${why}`;
}

function scheduleLine(s: ScheduleView): string {
  const when = s.cron ? `cron "${s.cron}" ${s.timezone}` : `every ${s.everyMs} ms`;
  const state = s.paused ? 'paused' : `next ${s.nextRunAt ?? '-'}`;
  return `${s.id}  ${s.type}  ${when}  ${state}  runs ${s.runs}  skipped ${s.skipped}`;
}

/**
 * The `longhaul` command line, on the SDK. Resolves with the exit code; never calls process.exit,
 * so it can be driven in-process.
 */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const { stdout, stderr, env } = io;
  let code: number = EXIT.completed;

  const program = new Command('longhaul')
    .description('Submit and follow longhaul analysis jobs.')
    .version(io.version, '-V, --version', 'print the version')
    .addOption(
      new Option('--url <url>', 'API base URL').default(
        env.LONGHAUL_URL || 'http://localhost:3000',
        '$LONGHAUL_URL or http://localhost:3000',
      ),
    )
    // The description stands in for the value, so --help never prints the key.
    .addOption(new Option('--api-key <key>', 'API key').default(env.LONGHAUL_API_KEY || undefined, '$LONGHAUL_API_KEY'))
    .option('--json', 'print JSON for scripts instead of text')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => stdout.write(s),
      writeErr: (s) => stderr.write(s),
    });

  const globals = () => program.opts<{ url: string; apiKey?: string; json?: boolean }>();
  const client = () => {
    const { url, apiKey } = globals();
    if (!apiKey) throw new UsageError('no API key: set LONGHAUL_API_KEY or pass --api-key');
    if (!URL.canParse(url)) throw new UsageError(`--url is not a URL: ${url}`);
    return new LonghaulClient({ baseUrl: url, apiKey });
  };
  const print = (json: unknown, text: string) =>
    stdout.write(`${globals().json ? JSON.stringify(json, null, 2) : text}\n`);

  /** Follows a job to its end with a progress bar (TTY) or lines; returns the exit code. */
  async function follow(c: LonghaulClient, id: string): Promise<number> {
    const display = createProgressDisplay({ tty: Boolean(stderr.isTTY) && !globals().json, stream: stderr });
    const abort = new AbortController();
    const onSigint = () => abort.abort();
    process.once('SIGINT', onSigint);
    try {
      const view = await c.waitFor(id, {
        signal: abort.signal,
        onEvent: (event) => {
          if (!globals().json) display.show(event);
        },
      });
      display.stop();
      print(view, outcome(view));
      return exitFor(view.status);
    } catch (err) {
      if (!abort.signal.aborted) throw err;
      // Ctrl-C stops following, not the job: say so, and exit as an interrupted command does.
      display.stop();
      stderr.write(`\nlonghaul: interrupted; ${id} goes on (longhaul watch ${id} to follow it again)\n`);
      return EXIT.interrupted;
    } finally {
      display.stop();
      process.off('SIGINT', onSigint);
    }
  }

  program
    .command('submit')
    .description('submit a job; with --wait, follow it to the end')
    .argument('<analysis>', 'the analysis to run (see GET /v1/analyses)')
    .requiredOption('-i, --input <json|@file>', 'the input: JSON, @file.json, or @- for stdin')
    .option('-w, --wait', 'follow the job and exit with its outcome')
    .option('--priority <n>', '1 (first) to 1000 (last)', int('--priority'))
    .option('--delay-ms <ms>', 'run no earlier than this many ms from now', int('--delay-ms'))
    .option('--idempotency-key <key>', 'makes the submission safe to retry')
    .option('--webhook <url>', 'POST the job view here when the job ends')
    .action(async (analysis: string, opts) => {
      const input = await readInput(opts.input, io.stdin);
      const c = client();
      const view = await c.submit(analysis as AnalysisName, input as never, {
        ...(opts.priority !== undefined ? { priority: opts.priority } : {}),
        ...(opts.delayMs !== undefined ? { delayMs: opts.delayMs } : {}),
        ...(opts.idempotencyKey ? { idempotencyKey: opts.idempotencyKey } : {}),
        ...(opts.webhook ? { webhook: { url: opts.webhook } } : {}),
      });
      if (!opts.wait) {
        print(view, view.id);
        return;
      }
      if (!globals().json) stderr.write(`submitted ${view.id}\n`);
      code = await follow(c, view.id);
    });

  program
    .command('status')
    .description("show a job's status, progress, attempts and webhook deliveries")
    .argument('<id>')
    .action(async (id: string) => {
      const view = await client().get(id);
      print(view, summary(view));
    });

  program
    .command('result')
    .description("print a completed job's result (exit 1 if it failed, 3 if cancelled)")
    .argument('<id>')
    .action(async (id: string) => {
      try {
        const result = await client().result(id);
        stdout.write(`${JSON.stringify(globals().json ? result : result.result, null, 2)}\n`);
      } catch (err) {
        if (err instanceof ConflictError && err.code === 'not_completed') {
          const view = err.details as JobView;
          stderr.write(`${err.message}\n`);
          code = view?.status === 'cancelled' ? EXIT.cancelled : EXIT.failed;
          return;
        }
        throw err;
      }
    });

  program
    .command('cancel')
    .description('cancel a queued or running job')
    .argument('<id>')
    .action(async (id: string) => {
      const view = await client().cancel(id);
      print(view, view.status === 'cancelled' ? `cancelled ${view.id}` : `cancellation requested for ${view.id}`);
    });

  program
    .command('list')
    .description("list the tenant's jobs, newest first")
    .option('--status <status>', 'queued, delayed, active, completed, failed or cancelled')
    .option('--type <analysis>', 'only this analysis')
    .option('--limit <n>', 'jobs per page (1-100)', int('--limit'))
    .option('--cursor <cursor>', 'nextCursor of the previous page')
    .option('--schedule <id>', 'only the runs of this schedule')
    .action(async (opts) => {
      const page = await client().list({
        ...(opts.schedule ? { schedule: opts.schedule } : {}),
        ...(opts.status ? { status: opts.status } : {}),
        ...(opts.type ? { type: opts.type } : {}),
        ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
        ...(opts.cursor ? { cursor: opts.cursor } : {}),
      });
      const lines = page.jobs.map((j) => `${j.id}  ${j.type.padEnd(16)} ${j.status.padEnd(10)} ${j.createdAt}`);
      if (page.nextCursor) lines.push(`more: --cursor ${page.nextCursor}`);
      print(page, lines.join('\n') || 'no jobs');
    });

  program
    .command('children')
    .description('list the children a job started (fan-out), in order')
    .argument('<id>')
    .option('--limit <n>', 'children per page (1-100)', int('--limit'))
    .option('--cursor <cursor>', 'nextCursor of the previous page')
    .action(async (id: string, opts) => {
      const page = await client().children(id, {
        ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
        ...(opts.cursor ? { cursor: opts.cursor } : {}),
      });
      const lines = page.children.map((j) => `${j.id}  ${j.type.padEnd(16)} ${j.status.padEnd(10)} ${j.createdAt}`);
      if (page.nextCursor) lines.push(`more: --cursor ${page.nextCursor}`);
      print(page, lines.join('\n') || 'no children');
    });

  program
    .command('watch')
    .description('follow a job to its end (exit 0 completed, 1 failed, 3 cancelled)')
    .argument('<id>')
    .action(async (id: string) => {
      code = await follow(client(), id);
    });

  const schedules = program.command('schedules').description('recurring analyses: each run is a job of yours');
  schedules
    .command('create')
    .description('create a schedule (give --cron or --every-ms)')
    .argument('<analysis>', 'the analysis to run')
    .requiredOption('-i, --input <json|@file>', 'the input: JSON, @file.json, or @- for stdin')
    .option('--cron <expression>', 'cron: 5 fields (minute first) or 6 (second first)')
    .option('--every-ms <ms>', 'run every this many ms', int('--every-ms'))
    .option('--timezone <tz>', 'IANA time zone of --cron (default UTC)')
    .option('--limit <n>', 'runs at most', int('--limit'))
    .option('--priority <n>', '1 (first) to 1000 (last)', int('--priority'))
    .option('--overlap <policy>', 'skip (default) or queue a run due while the previous one is active')
    .action(async (analysis: string, opts) => {
      const input = await readInput(opts.input, io.stdin);
      const view = await client().schedules.create({
        type: analysis as AnalysisName,
        input: input as never,
        ...(opts.cron ? { cron: opts.cron } : {}),
        ...(opts.everyMs !== undefined ? { everyMs: opts.everyMs } : {}),
        ...(opts.timezone ? { timezone: opts.timezone } : {}),
        ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
        ...(opts.priority !== undefined ? { priority: opts.priority } : {}),
        ...(opts.overlap ? { overlap: opts.overlap } : {}),
      });
      print(view, view.id);
    });
  schedules
    .command('list')
    .description("list the tenant's schedules")
    .action(async () => {
      const list = await client().schedules.list();
      print({ schedules: list }, list.map(scheduleLine).join('\n') || 'no schedules');
    });
  schedules
    .command('get')
    .description('show a schedule')
    .argument('<id>')
    .action(async (id: string) => {
      const view = await client().schedules.get(id);
      print(view, scheduleLine(view));
    });
  for (const [name, paused] of [
    ['pause', true],
    ['resume', false],
  ] as const) {
    schedules
      .command(name)
      .description(`${name} a schedule`)
      .argument('<id>')
      .action(async (id: string) => {
        const view = await client().schedules.update(id, { paused });
        print(view, scheduleLine(view));
      });
  }
  schedules
    .command('delete')
    .description('delete a schedule (its past runs stay readable)')
    .argument('<id>')
    .action(async (id: string) => {
      const view = await client().schedules.delete(id);
      print(view, `deleted ${view.id}`);
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here too, successfully.
      return err.exitCode === 0 ? 0 : EXIT.usage;
    }
    if (err instanceof UsageError) {
      stderr.write(`longhaul: ${err.message}\n`);
      return EXIT.usage;
    }
    if (err instanceof ApiError) {
      const details = err.details && err.status === 400 ? `\n${JSON.stringify(err.details, null, 2)}` : '';
      stderr.write(`longhaul: ${err.message} (${err.code}, HTTP ${err.status})${details}\n`);
      // A request the API refuses as malformed is a usage problem; anything else failed.
      return err.status === 400 ? EXIT.usage : EXIT.failed;
    }
    if (err instanceof ConnectionError) {
      stderr.write(`longhaul: ${err.message}\n`);
      return EXIT.failed;
    }
    throw err;
  }
}
