import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trackDir } from '../support/child-registry.ts';
import { api } from '../support/http.ts';
import { type AppProcess, startApi, startWorker } from '../support/processes.ts';
import { cleanupPrefix } from '../support/redis.ts';
import { KEY_A, simulate, systemEnv, waitForJob } from './fixtures.ts';

interface StepLine {
  event: 'step';
  jobId: string;
  step: number;
  run: number;
  pid: number;
}

function stepLines(file: string, jobId: string): StepLine[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as StepLine | { event: string; jobId: string })
    .filter((line): line is StepLine => line.event === 'step' && line.jobId === jobId);
}

describe('durable steps across a worker killed with SIGKILL, real processes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lh-steps-'));
  trackDir(dir);
  const executionLog = join(dir, 'executions.jsonl');
  writeFileSync(executionLog, '');
  const env: Record<string, string> = {
    ...systemEnv(),
    SIMULATE_ALLOW_CRASH: 'true',
    SIMULATE_EXECUTION_LOG: executionLog,
    LOCK_DURATION_MS: '2000',
    STALLED_INTERVAL_MS: '1000',
  };
  let apiProcess: AppProcess;

  beforeAll(async () => {
    apiProcess = await startApi(env);
  });
  afterAll(async () => {
    await apiProcess?.stop();
    await cleanupPrefix(env.REDIS_URL as string, env.QUEUE_PREFIX as string);
  });

  it('when the worker is killed -9 inside step 3 of 5, then steps 1-2 do not run again, the job completes and its steps show attempts 1,1,2,2,2', async () => {
    const client = api(apiProcess.url, KEY_A);
    const first = await startWorker(env);
    let second: AppProcess | undefined;
    try {
      const res = await client.post(
        '/v1/jobs',
        simulate({ durationMs: 1_000, steps: 5, durable: true, crashAtStep: 3 }),
      );
      expect(res.status).toBe(202);
      const id = res.body.id as string;

      // The worker kills itself inside step 3, on the job's first start.
      const exit = await first.exited;
      expect(exit.signal).toBe('SIGKILL');
      const midway = await client.get(`/v1/jobs/${id}`);
      expect(midway.body.steps.map((s: { status: string }) => s.status)).toEqual(['completed', 'completed', 'running']);

      second = await startWorker(env);
      const done = await waitForJob(client, id, (v) => v.status === 'completed' || v.status === 'failed', 60_000);
      expect(done.status).toBe('completed');

      const lines = stepLines(executionLog, id);
      const runsOf = (step: number) => lines.filter((l) => l.step === step).map((l) => l.run);
      expect(runsOf(1)).toEqual([1]);
      expect(runsOf(2)).toEqual([1]);
      expect(runsOf(3)).toEqual([1, 2]);
      expect(runsOf(4)).toEqual([2]);
      expect(runsOf(5)).toEqual([2]);
      expect(lines.filter((l) => l.run === 1).every((l) => l.pid === first.pid)).toBe(true);

      const view = (await client.get(`/v1/jobs/${id}`)).body;
      expect(view.steps).toEqual(
        [1, 2, 3, 4, 5].map((n, i) => ({
          name: `step-${n}`,
          status: 'completed',
          attempt: [1, 1, 2, 2, 2][i],
          startedAt: expect.any(String),
          finishedAt: expect.any(String),
        })),
      );
      const result = (await client.get(`/v1/jobs/${id}/result`)).body.result;
      expect(result.resumedFromStep).toBe(2);
    } finally {
      await first.kill();
      await second?.stop();
    }
  }, 120_000);

  it('when a durable job fails transiently in its last step, then its retry runs only that step again', async () => {
    const client = api(apiProcess.url, KEY_A);
    const worker = await startWorker(env);
    try {
      // With durable, failTimes throws inside the last step.
      const res = await client.post('/v1/jobs', simulate({ durationMs: 0, steps: 3, durable: true, failTimes: 1 }));
      const id = res.body.id as string;
      const done = await waitForJob(client, id, (v) => v.status === 'completed' || v.status === 'failed', 30_000);
      expect(done.status).toBe('completed');
      expect(stepLines(executionLog, id).map((l) => [l.step, l.run])).toEqual([
        [1, 1],
        [2, 1],
        [3, 1],
        [3, 2],
      ]);
      const view = (await client.get(`/v1/jobs/${id}`)).body;
      expect(view.steps.map((s: { attempt: number }) => s.attempt)).toEqual([1, 1, 2]);
    } finally {
      await worker.stop();
    }
  }, 60_000);
});
