import { describe, expect, it } from 'vitest';
import { api } from '../support/http.ts';
import { type AppProcess, startWorker } from '../support/processes.ts';
import { waitFor } from '../support/wait.ts';
import {
  countBy,
  executionCounts,
  FAULT_TIMEOUT,
  inFlightOf,
  leakedSecrets,
  readExecutions,
  recordFigures,
  SECRETS,
  size,
  submitJobs,
  useFleet,
  waitAllFinal,
} from './chaos-support.ts';

describe('G2/G6 deploys: rolling SIGTERM, and SIGTERM followed at once by SIGKILL', () => {
  const fleet = useFleet({
    WORKER_CONCURRENCY: '4',
    SHUTDOWN_GRACE_MS: '300',
  });
  const { env, log } = fleet;

  it(
    'G2: when each of 3 workers gets SIGTERM in turn while jobs run, then no job fails and none is lost',
    async () => {
      const client = api(fleet.api.url, SECRETS.keyA);
      const jobs = size(90, 400);
      const ids = await submitJobs(client, jobs, { durationMs: size(1_500, 3_000), steps: 6 });
      const handedBack: number[] = [];
      for (let i = 0; i < 3; i++) {
        const old = fleet.workers[i] as AppProcess;
        await waitFor(() => inFlightOf(readExecutions(log), old.pid).length > 0, {
          timeoutMs: 20_000,
          intervalMs: 20,
          what: `worker ${old.pid} busy`,
        });
        // Stop the old one mid-job while its replacement starts, as a rolling deploy does.
        const [code, next] = await Promise.all([old.stop(30_000), startWorker(env)]);
        expect(code).toBe(0);
        fleet.track(next);
        fleet.workers.push(next);
        handedBack.push((old.logs().match(/handing the job back/g) ?? []).length);
      }
      const final = await waitAllFinal(client, ids, size(120_000, 600_000));
      expect(countBy(final.values())).toEqual({ completed: jobs });
      // The hand-backs really happened (the grace period is shorter than a job), and spent no attempt.
      expect(handedBack.reduce((a, n) => a + n, 0)).toBeGreaterThan(0);
      const { extraStarts } = executionCounts(readExecutions(log));
      recordFigures('G2', { jobs, workersRestarted: 3, handedBack, reExecutions: extraStarts, failed: 0 });
    },
    FAULT_TIMEOUT,
  );

  it(
    'G6: when SIGTERM is followed at once by SIGKILL (0 s draining), then the job runs again at most once and completes',
    async () => {
      const client = api(fleet.api.url, SECRETS.keyA);
      const victim = await startWorker(env);
      fleet.track(victim);
      // Only the victim may take the job: stop the others.
      const others = fleet.workers.filter((w) => w.pid !== victim.pid);
      await Promise.all(others.map((w) => w.stop(30_000).catch(() => undefined)));
      const { body } = await client.post('/v1/jobs', { type: 'simulate', input: { durationMs: 3_000, steps: 6 } });
      await waitFor(() => inFlightOf(readExecutions(log), victim.pid).includes(body.id), {
        timeoutMs: 10_000,
        intervalMs: 20,
        what: 'the job to start on the victim',
      });
      victim.signal('SIGTERM');
      victim.signal('SIGKILL');
      await victim.exited;
      const rescuer = await startWorker(env);
      fleet.track(rescuer);
      const [status] = (await waitAllFinal(client, [body.id], 30_000)).values();
      expect(status).toBe('completed');
      const starts = readExecutions(log).filter((e) => e.jobId === body.id && e.event === 'start');
      expect(starts.length).toBeLessThanOrEqual(2);
      const view = (await client.get(`/v1/jobs/${body.id}`)).body;
      expect(view.error).toBeNull();
      recordFigures('G6', { starts: starts.length, attemptsMade: view.attempts.made, status });
    },
    FAULT_TIMEOUT,
  );

  it('G12: when the run is over, then no API key, password, token or job input appears in any process log', () => {
    expect(leakedSecrets(fleet.all)).toEqual([]);
  });
});
