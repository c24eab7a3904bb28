import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { api } from '../support/http.ts';
import type { AppProcess } from '../support/processes.ts';
import { redisUrl } from '../support/redis.ts';
import { waitFor } from '../support/wait.ts';
import {
  countBy,
  executionCounts,
  FAULT_TIMEOUT,
  inFlightOf,
  leakedSecrets,
  mapLimit,
  readExecutions,
  recordFigures,
  retried503,
  SECRETS,
  size,
  submitJobs,
  useFleet,
  waitAllFinal,
} from './chaos-support.ts';

const JOBS = 1_000;
const DURATION_MS = size(100, 400);
const CONCURRENCY = 8;

describe('G1/G8 worker killed with SIGKILL mid-run, real processes', () => {
  const fleet = useFleet({
    WORKER_CONCURRENCY: String(CONCURRENCY),
  });
  const { log, prefix } = fleet;

  it(
    `G1: when one of 3 workers is SIGKILLed while ${JOBS} jobs run, then every job completes and each result is stored once`,
    async () => {
      const client = api(fleet.api.url, SECRETS.keyA);
      const victim = fleet.workers[0] as AppProcess;
      const submitting = submitJobs(client, JOBS, { durationMs: DURATION_MS, steps: 2 });
      // Awaited below; until then a failure must not surface as an unhandled rejection.
      submitting.catch(() => undefined);

      // Kill once the victim is busy and a fair share of the run is done.
      await waitFor(
        () => {
          const ex = readExecutions(log);
          return ex.filter((e) => e.event === 'finish').length >= JOBS * 0.25 && inFlightOf(ex, victim.pid).length >= 3;
        },
        { timeoutMs: 120_000, intervalMs: 20, what: 'a quarter of the jobs done and the victim busy' },
      );
      const killedAt = Date.now();
      await victim.kill();
      const inFlight = inFlightOf(readExecutions(log), victim.pid);
      const ids = await submitting;
      expect(new Set(ids).size).toBe(JOBS);

      const final = await waitAllFinal(client, ids, size(120_000, 600_000));
      expect(countBy(final.values())).toEqual({ completed: JOBS });
      const doneAt = Date.now();

      // Each result once: BullMQ's completed set holds every job exactly once, and each result reads back.
      const redis = new Redis(redisUrl());
      try {
        expect(await redis.zcard(`${prefix}:analyses:completed`)).toBe(JOBS);
      } finally {
        redis.disconnect();
      }
      const results = await mapLimit(ids, 16, async (id) => (await client.get(`/v1/jobs/${id}/result`)).status);
      expect(countBy(results.map(String))).toEqual({ '200': JOBS });

      // G8: the only re-executions are of jobs the dead worker held, so at most its in-flight jobs.
      const executions = readExecutions(log);
      const { reExecuted, extraStarts, finishes } = executionCounts(executions);
      expect(ids.every((id) => (finishes.get(id) ?? 0) >= 1)).toBe(true);
      const victimStarted = new Set(executions.filter((e) => e.pid === victim.pid).map((e) => e.jobId));
      expect(reExecuted.filter((id) => !victimStarted.has(id))).toEqual([]);
      expect(extraStarts).toBeLessThanOrEqual(CONCURRENCY);

      // Recovery: from the kill until the last job the victim held starts again elsewhere.
      const restarts = executions.filter(
        (e) => e.event === 'start' && e.pid !== victim.pid && inFlight.includes(e.jobId),
      );
      const recoveredAt = restarts.length > 0 ? Math.max(...restarts.map((e) => e.at)) : killedAt;
      recordFigures('G1', {
        jobs: JOBS,
        workers: 3,
        concurrencyPerWorker: CONCURRENCY,
        jobDurationMs: DURATION_MS,
        lockDurationMs: 2000,
        stalledIntervalMs: 1000,
        inFlightOnKilledWorker: inFlight.length,
        reExecutions: extraStarts,
        recoveryMs: recoveredAt - killedAt,
        killToAllDoneMs: doneAt - killedAt,
        submitsRetriedAfter503: retried503.count,
      });
    },
    FAULT_TIMEOUT,
  );

  it('G12: when the run is over, then no API key, password, token or job input appears in any process log', () => {
    expect(leakedSecrets(fleet.all)).toEqual([]);
  });
});
