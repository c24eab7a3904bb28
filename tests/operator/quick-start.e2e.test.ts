import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { KEY_A, simulate, systemEnv, waitForJob } from '../e2e/fixtures.ts';
import { trackChild } from '../support/child-registry.ts';
import { api } from '../support/http.ts';
import { freePort } from '../support/ports.ts';
import { REPO_ROOT } from '../support/processes.ts';
import { cleanupPrefix, redisUrl } from '../support/redis.ts';
import { waitFor, withTimeout } from '../support/wait.ts';

/**
 * Pids of the processes whose environment holds `QUEUE_PREFIX=prefix`: the API and the worker
 * that `pnpm start` launched in process groups of their own (Linux /proc; none elsewhere).
 */
function processesOf(prefix: string): number[] {
  const found: number[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return found;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(`QUEUE_PREFIX=${prefix}`)) {
        found.push(Number(entry));
      }
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

describe("the README's start command (`pnpm start`), real processes", () => {
  const prefixes: string[] = [];
  const trees: ChildProcess[] = [];

  afterAll(async () => {
    // A failed test may leave a tree running: its group first, then the apps in theirs.
    for (const tree of trees) {
      if (tree.pid === undefined || tree.exitCode !== null || tree.signalCode !== null) continue;
      try {
        process.kill(-tree.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    for (const prefix of prefixes) {
      for (const pid of processesOf(prefix)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await cleanupPrefix(redisUrl(), prefix);
    }
  });

  /**
   * `pnpm start` against the test Redis, up, with a job run through it. A terminal signals its
   * foreground process group (pnpm, and the script it runs): `detached` gives the tree such a
   * group of its own.
   */
  async function quickStart() {
    const env = systemEnv();
    const prefix = env.QUEUE_PREFIX as string;
    prefixes.push(prefix);
    const [port, workerPort] = [await freePort(), await freePort()];
    const child = spawn('pnpm', ['start'], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        ...env,
        PORT: String(port),
        WORKER_PORT: String(workerPort),
        // Set, so that the script writes no development secrets into the checkout.
        ADMIN_USER: 'admin',
        ADMIN_PASSWORD: 'quick-start-admin-password',
        SHUTDOWN_GRACE_MS: '5000',
      },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    trees.push(child);
    // Killed if this test process ends before afterAll runs, as every process the harness starts.
    trackChild(child);
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );

    await Promise.race([
      waitFor(() => output.includes('Ctrl-C stops everything'), { timeoutMs: 90_000, what: 'pnpm start to be up' }),
      exited.then((exit) => {
        throw new Error(`pnpm start exited (${JSON.stringify(exit)}) before it was up:\n${output}`);
      }),
    ]);
    const client = api(`http://127.0.0.1:${port}`, KEY_A);
    const submitted = await client.post('/v1/jobs', simulate({ durationMs: 200, steps: 2 }));
    expect(submitted.status).toBe(202);
    const done = await waitForJob(client, submitted.body.id, (v) => v.status === 'completed');
    expect(done.status).toBe('completed');
    // The script itself, not a launcher of it (the `tsx` command's relay was one, see scripts/start.ts).
    const script = processesOf(prefix).filter((pid) => {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
      return cmdline.includes('scripts/start.ts') && !cmdline.some((arg) => arg.includes('tsx/dist/cli'));
    });
    expect(script).toHaveLength(1);
    return { group: child.pid as number, script: script[0] as number, prefix, exited, output: () => output };
  }

  it('when it runs against a Redis and gets Ctrl-C while briefly kept off the CPU, then the API and a worker run a job, and everything stops cleanly with exit code 0', async () => {
    const run = await quickStart();
    // A busy machine can keep the script off the CPU just as the Ctrl-C arrives: it is stopped for
    // a moment around the signal, so it can only act on the Ctrl-C a while later. Whatever runs it
    // must wait for it, not kill it (the `tsx` command's relay did, see scripts/start.ts).
    process.kill(run.script, 'SIGSTOP');
    process.kill(-run.group, 'SIGINT');
    await sleep(300);
    try {
      process.kill(run.script, 'SIGCONT');
    } catch {
      // killed meanwhile: the exit below says by whom
    }
    const exit = await withTimeout(run.exited, 45_000);
    if (exit === undefined) throw new Error(`pnpm start did not stop within 45 s:\n${run.output()}`);
    // pnpm reports a script that ends by a signal as failed (ELIFECYCLE) and dies by it: the
    // shell between them must not re-raise the Ctrl-C once the script has exited 0.
    expect({ exit, failed: run.output().includes('ELIFECYCLE') }).toEqual({
      exit: { code: 0, signal: null },
      failed: false,
    });
    expect(run.output().match(/shut down cleanly/g)).toHaveLength(2);
    expect(processesOf(run.prefix)).toEqual([]);
  }, 150_000);

  it('when its terminal goes away (SIGHUP), then the API and the worker stop cleanly too, and nothing is left running', async () => {
    const run = await quickStart();
    // A closed terminal window hangs up its foreground process group. The API and the worker run
    // in groups of their own, so only the script can stop them.
    process.kill(-run.group, 'SIGHUP');
    await waitFor(() => processesOf(run.prefix).length === 0, {
      timeoutMs: 45_000,
      what: "pnpm start's processes to end after SIGHUP",
    }).catch((err: Error) => {
      throw new Error(`${err.message}\n${run.output()}`);
    });
    expect(run.output().match(/shut down cleanly/g)).toHaveLength(2);
  }, 150_000);
});
