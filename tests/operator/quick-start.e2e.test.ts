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
  const env = systemEnv();
  const prefix = env.QUEUE_PREFIX as string;
  let started: ChildProcess | undefined;

  afterAll(async () => {
    // A failed test may leave the tree running: its group first, then the apps in theirs.
    if (started?.pid !== undefined && started.exitCode === null && started.signalCode === null) {
      try {
        process.kill(-started.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    for (const pid of processesOf(prefix)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await cleanupPrefix(redisUrl(), prefix);
  });

  it('when it runs against a Redis and gets Ctrl-C while briefly kept off the CPU, then the API and a worker run a job, and everything stops cleanly with exit code 0', async () => {
    const [port, workerPort] = [await freePort(), await freePort()];
    // A terminal's Ctrl-C signals its foreground process group: pnpm, the shell it runs the script
    // in, and the script. `detached` gives this tree such a group of its own.
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
    started = child;
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

    // A busy machine can keep the script off the CPU just as the Ctrl-C arrives: it is stopped for
    // a moment around the signal, so it can only act on the Ctrl-C a while later. Whatever runs it
    // must wait for it, not kill it (the `tsx` command's relay did, see scripts/start.ts).
    const script = processesOf(prefix).filter((pid) => {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
      return cmdline.includes('scripts/start.ts') && !cmdline.some((arg) => arg.includes('tsx/dist/cli'));
    });
    expect(script).toHaveLength(1);
    const [scriptPid] = script as [number];
    process.kill(scriptPid, 'SIGSTOP');
    process.kill(-(child.pid as number), 'SIGINT');
    await sleep(300);
    try {
      process.kill(scriptPid, 'SIGCONT');
    } catch {
      // killed meanwhile: the exit below says by whom
    }
    const exit = await withTimeout(exited, 45_000);
    if (exit === undefined) throw new Error(`pnpm start did not stop within 45 s:\n${output}`);
    // pnpm reports a script that ends by a signal as failed (ELIFECYCLE) and dies by it: the
    // shell between them must not re-raise the Ctrl-C once the script has exited 0.
    expect({ exit, failed: output.includes('ELIFECYCLE') }).toEqual({ exit: { code: 0, signal: null }, failed: false });
    expect(output.match(/shut down cleanly/g)).toHaveLength(2);
    expect(processesOf(prefix)).toEqual([]);
  }, 150_000);
});
