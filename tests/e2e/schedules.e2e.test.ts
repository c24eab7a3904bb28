import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executionCounts, executionLogFile, readExecutions } from '../chaos/chaos-support.ts';
import { api } from '../support/http.ts';
import { startApi, startWorker } from '../support/processes.ts';
import { cleanupPrefix, redisUrl } from '../support/redis.ts';
import { waitFor } from '../support/wait.ts';
import { KEY_A, KEY_B, type ProcessHandle, systemEnv } from './fixtures.ts';

const EVERY_MS = 2_000;
const schedule = { type: 'simulate', input: { durationMs: 100, steps: 2 }, everyMs: EVERY_MS };

/** Run ids that started, in the order the execution log recorded them. */
const startedRuns = (log: string, scheduleId: string) =>
  readExecutions(log)
    .filter((e) => e.event === 'start' && e.jobId.startsWith(`repeat:${scheduleId}:`))
    .map((e) => e.jobId);

/** api and worker processes on one prefix, with an execution log; `stop` ends every one of them. */
async function startFleet(apis: number, workers: number) {
  const log = executionLogFile();
  const env: Record<string, string> = {
    ...systemEnv(),
    SCHEDULE_MIN_INTERVAL_MS: '1000',
    SIMULATE_EXECUTION_LOG: log,
    LOG_LEVEL: 'warn',
  };
  const processes: ProcessHandle[] = await Promise.all([
    ...Array.from({ length: apis }, () => startApi(env)),
    ...Array.from({ length: workers }, () => startWorker(env)),
  ]);
  const apiProcesses = processes.slice(0, apis);
  return {
    log,
    a: apiProcesses.map((p) => api(p.url, KEY_A)),
    b: apiProcesses.map((p) => api(p.url, KEY_B)),
    /** Starts one more worker on the same prefix; `stop` ends it with the rest. */
    async addWorker() {
      processes.push(await startWorker(env));
    },
    async stop() {
      await Promise.all(processes.map((p) => p.stop()));
      await cleanupPrefix(redisUrl(), env.QUEUE_PREFIX ?? '').catch(() => undefined);
    },
  };
}

type Fleet = Awaited<ReturnType<typeof startFleet>>;

/** A fleet started before the suite's tests and stopped after them. */
function suiteFleet(apis: number, workers: number): () => Fleet {
  let fleet: Fleet | undefined;
  beforeAll(async () => {
    fleet = await startFleet(apis, workers);
  });
  afterAll(async () => {
    await fleet?.stop();
  });
  return () => {
    if (!fleet) throw new Error('the fleet did not start');
    return fleet;
  };
}

describe('schedules against a real api and worker', () => {
  const fleet = suiteFleet(1, 1);

  it('when a schedule runs every 2 s, then its runs are listed under it, pause stops them, resume restarts them and delete ends them with 404', async () => {
    const {
      a: [a],
      b: [b],
      log,
    } = fleet();
    if (!a || !b) throw new Error('no api');
    const created = await a.post('/v1/schedules', schedule);
    expect(created.status).toBe(201);
    const id: string = created.body.id;

    // Runs happen and are listed under the schedule, each an ordinary job of the tenant.
    const page = await waitFor(
      async () => {
        const res = await a.get(`/v1/jobs?schedule=${id}`);
        const done = res.body.jobs?.filter((j: { status: string }) => j.status === 'completed') ?? [];
        return done.length >= 2 ? res.body : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'two completed runs' },
    );
    for (const job of page.jobs) expect(job).toMatchObject({ type: 'simulate', scheduleId: id });
    const runId: string = page.jobs[0].id;
    expect((await a.get(`/v1/jobs/${runId}`)).body).toMatchObject({ id: runId, scheduleId: id });
    expect((await b.get(`/v1/jobs/${runId}`)).status).toBe(404);
    expect((await b.get(`/v1/schedules/${id}`)).status).toBe(404);
    const view = (await a.get(`/v1/schedules/${id}`)).body;
    expect(view.runs).toBeGreaterThanOrEqual(2);
    expect(view.lastRun.id).toMatch(new RegExp(`^repeat:${id}:`));

    // Paused: once a run that was already due has finished, no new run starts.
    expect((await a.request('PATCH', `/v1/schedules/${id}`, { body: { paused: true } })).body.paused).toBe(true);
    await sleep(EVERY_MS);
    const atPause = startedRuns(log, id).length;
    await sleep(EVERY_MS * 3);
    expect(startedRuns(log, id).length).toBe(atPause);

    // Resumed: runs start again.
    expect(
      (await a.request('PATCH', `/v1/schedules/${id}`, { body: { paused: false } })).body.nextRunAt,
    ).not.toBeNull();
    await waitFor(() => startedRuns(log, id).length >= atPause + 2, {
      timeoutMs: 20_000,
      what: 'runs after resume',
    });

    // Deleted: 404, and no run starts after the one that may already have been due; its runs are
    // still listed under it, for its tenant only.
    expect((await a.delete(`/v1/schedules/${id}`)).status).toBe(200);
    expect((await a.get(`/v1/schedules/${id}`)).status).toBe(404);
    const afterDelete = await a.get(`/v1/jobs?schedule=${id}`);
    expect(afterDelete.status).toBe(200);
    expect(afterDelete.body.jobs.map((j: { id: string }) => j.id)).toContain(runId);
    expect((await b.get(`/v1/jobs?schedule=${id}`)).status).toBe(404);
    await sleep(EVERY_MS);
    const atDelete = startedRuns(log, id).length;
    await sleep(EVERY_MS * 3);
    expect(startedRuns(log, id).length).toBe(atDelete);
    // Runs already made stay readable as jobs of the tenant.
    expect((await a.get(`/v1/jobs/${runId}`)).status).toBe(200);
  });
});

describe('schedules with two api replicas and two workers', () => {
  const fleet = suiteFleet(2, 2);

  it('when two api replicas and two workers serve one schedule, then each run happens once', async () => {
    const {
      a: [a1, a2],
      log,
    } = fleet();
    if (!a1 || !a2) throw new Error('no api');
    const { body } = await a1.post('/v1/schedules', schedule);
    const id: string = body.id;
    await waitFor(() => startedRuns(log, id).length >= 3, { timeoutMs: 20_000, what: 'three runs' });
    // The other replica changes the input: the scheduler is replaced, not doubled.
    const changed = await a2.request('PATCH', `/v1/schedules/${id}`, { body: { input: { durationMs: 50, steps: 1 } } });
    expect(changed.status).toBe(200);
    const before = startedRuns(log, id).length;
    await waitFor(() => startedRuns(log, id).length >= before + 3, {
      timeoutMs: 20_000,
      what: 'three more runs',
    });
    expect((await a2.delete(`/v1/schedules/${id}`)).status).toBe(200);

    const runs = startedRuns(log, id);
    const executions = readExecutions(log).filter((e) => runs.includes(e.jobId));
    expect(executionCounts(executions).reExecuted).toEqual([]);
    // One run per due time, and due times at least the interval apart.
    const due = [...new Set(runs)].map((r) => Number(r.split(':').at(-1))).sort((x, y) => x - y);
    expect(due.length).toBe(runs.length);
    for (let i = 1; i < due.length; i++) expect((due[i] ?? 0) - (due[i - 1] ?? 0)).toBeGreaterThanOrEqual(EVERY_MS);
  });
});

describe('schedules while every worker is down', () => {
  const fleet = suiteFleet(1, 0);

  it('when no worker runs through several due times, then a worker that comes back makes at most one catch-up run', async () => {
    const {
      a: [a],
      log,
      addWorker,
    } = fleet();
    if (!a) throw new Error('no api');
    const every = 1_000;
    const created = await a.post('/v1/schedules', { ...schedule, everyMs: every });
    expect(created.status).toBe(201);
    const id: string = created.body.id;
    // Five due times pass with no worker to run them.
    await sleep(every * 5);
    const back = Date.now();
    await addWorker();
    await waitFor(() => startedRuns(log, id).length >= 3, { timeoutMs: 30_000, what: 'runs after the worker' });
    expect((await a.delete(`/v1/schedules/${id}`)).status).toBe(200);

    // A run's id carries its due time: only one of them was due before the worker came back.
    const due = startedRuns(log, id).map((r) => Number(r.split(':').at(-1)));
    expect(due.filter((d) => d < back)).toHaveLength(1);
    expect(new Set(due).size).toBe(due.length);
  });
});
