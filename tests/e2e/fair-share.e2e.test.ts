import { afterEach, describe, expect, it } from 'vitest';
import { type Execution, executionLogFile, readExecutions } from '../chaos/chaos-support.ts';
import { type ApiClient, api } from '../support/http.ts';
import { startApi, startWorker } from '../support/processes.ts';
import { cleanupPrefix, redisUrl } from '../support/redis.ts';
import { waitFor } from '../support/wait.ts';
import { KEY_A, KEY_B, type ProcessHandle, systemEnv } from './fixtures.ts';

/**
 * Fair share between tenants, against real api and worker processes. Order is read from the
 * workers' execution log, never from timings: a loaded machine slows every job alike.
 */

/** One api and `workers` worker processes on one prefix, with an execution log. */
async function startFleet(workers: number, extra: Record<string, string>) {
  const log = executionLogFile();
  const env: Record<string, string> = { ...systemEnv(), SIMULATE_EXECUTION_LOG: log, LOG_LEVEL: 'warn', ...extra };
  const processes: ProcessHandle[] = await Promise.all([
    startApi(env),
    ...Array.from({ length: workers }, () => startWorker(env)),
  ]);
  const url = processes[0]?.url ?? '';
  return {
    log,
    a: api(url, KEY_A),
    b: api(url, KEY_B),
    metrics: () => api(url).get('/metrics'),
    async stop() {
      await Promise.all(processes.map((p) => p.stop()));
      await cleanupPrefix(redisUrl(), env.QUEUE_PREFIX ?? '').catch(() => undefined);
    },
  };
}

async function submit(client: ApiClient, durationMs: number, priority?: number): Promise<string> {
  const res = await client.post('/v1/jobs', {
    type: 'simulate',
    input: { durationMs, steps: 2 },
    ...(priority ? { priority } : {}),
  });
  expect(res.status).toBe(202);
  return res.body.id as string;
}

function startsOf(log: string): Execution[] {
  return readExecutions(log).filter((e) => e.event === 'start');
}

/** The most jobs of `ids` running at once, from the execution log's starts and finishes. */
function peakConcurrency(log: string, ids: Set<string>): number {
  const events = readExecutions(log)
    .filter((e) => ids.has(e.jobId) && (e.event === 'start' || e.event === 'finish'))
    .sort((x, y) => x.at - y.at || (x.event === 'finish' ? -1 : 1));
  let now = 0;
  let peak = 0;
  for (const e of events) {
    now += e.event === 'start' ? 1 : -1;
    peak = Math.max(peak, now);
  }
  return peak;
}

async function waitCompleted(client: ApiClient, ids: string[], timeoutMs = 60_000): Promise<void> {
  await waitFor(
    async () => {
      for (const id of ids) if ((await client.get(`/v1/jobs/${id}`)).body.status !== 'completed') return false;
      return true;
    },
    { timeoutMs, intervalMs: 250, what: `${ids.length} jobs to complete` },
  );
}

describe('fair share between tenants (real api and workers)', () => {
  let fleet: Awaited<ReturnType<typeof startFleet>> | undefined;
  afterEach(async () => {
    await fleet?.stop();
    fleet = undefined;
  });

  /**
   * A flood from one tenant at priority 1, then another tenant's single job. B's job must take
   * the next slot that frees: the A jobs that start between its submission and its start can only
   * be ones already handed to a worker when it arrived, at most one per slot.
   */
  async function floodThenOne(workers: number, concurrency: number) {
    fleet = await startFleet(workers, { WORKER_CONCURRENCY: String(concurrency) });
    const slots = workers * concurrency;
    const flood: string[] = [];
    for (let i = 0; i < slots * 5; i++) flood.push(await submit(fleet.a, 1_500, 1));
    const log = fleet.log;
    await waitFor(async () => startsOf(log).length >= slots, { timeoutMs: 30_000, what: "a's jobs to start" });
    const submittedAt = Date.now();
    const single = await submit(fleet.b, 1_500);
    await waitCompleted(fleet.b, [single]);
    await waitCompleted(fleet.a, flood, 90_000);

    const starts = startsOf(log);
    const bStart = starts.find((e) => e.jobId === single);
    if (!bStart) throw new Error("b's job never started");
    const aBefore = starts.filter((e) => flood.includes(e.jobId) && e.at > submittedAt && e.at < bStart.at);
    expect(aBefore.length).toBeLessThanOrEqual(slots);
    // Without fair share it would start last, behind the whole flood at priority 1.
    const aAfter = starts.filter((e) => flood.includes(e.jobId) && e.at > bStart.at);
    expect(aAfter.length).toBeGreaterThanOrEqual(flood.length - 3 * slots);
  }

  it("when tenant A floods at priority 1 and tenant B submits one job, then B's job takes the next free slot", async () => {
    await floodThenOne(1, 2);
  });

  it('when the flood runs on 2 workers, then the fair order still holds', async () => {
    await floodThenOne(2, 1);
  });

  it('when a tenant has a cap, then it never exceeds it, its waiting jobs say why, and other tenants use the free slots', async () => {
    fleet = await startFleet(2, { WORKER_CONCURRENCY: '2', TENANT_MAX_ACTIVE_OVERRIDES: 'a:2' });
    const flood: string[] = [];
    for (let i = 0; i < 8; i++) flood.push(await submit(fleet.a, 1_000));
    const others: string[] = [];
    for (let i = 0; i < 2; i++) others.push(await submit(fleet.b, 1_000));

    // The last of a's jobs waits for a's cap, and says so; the metrics count a's share.
    const last = flood.at(-1) ?? '';
    const waiting = (await fleet.a.get(`/v1/jobs/${last}`)).body;
    expect(waiting).toMatchObject({ status: 'queued', waiting: 'tenant_concurrency' });
    const metrics = String((await fleet.metrics()).body);
    expect(metrics).toMatch(/longhaul_tenant_jobs\{tenant="a",state="waiting"[^}]*\} [1-9]/);
    const active = Number(/longhaul_tenant_jobs\{tenant="a",state="active"[^}]*\} (\d+)/.exec(metrics)?.[1]);
    expect(active).toBeLessThanOrEqual(2);

    // b's jobs run beside a's capped two, not after the whole of a's backlog.
    await waitCompleted(fleet.b, others);
    await waitCompleted(fleet.a, flood, 90_000);
    const starts = startsOf(fleet.log);
    const lastOther = Math.max(...starts.filter((s) => others.includes(s.jobId)).map((s) => s.at));
    const aAfter = starts.filter((e) => flood.includes(e.jobId) && e.at > lastOther);
    expect(aAfter.length).toBeGreaterThanOrEqual(4);
    expect(peakConcurrency(fleet.log, new Set(flood))).toBe(2);
  });
});
