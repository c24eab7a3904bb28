import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_A, simulate, startSystem, waitForJob } from '../e2e/fixtures.ts';
import { request } from '../support/http.ts';
import { type RedisServer, startRedisServer } from '../support/redis-server.ts';

const TOKEN = 'metrics-token-for-tests';
const WEBHOOK_SECRET = 'whsec-metrics-tests-0123456789';
/** Placed in a job's input (and so its result), and in a webhook URL's query: none may be logged. */
const INPUT_MARKER = 'inputmarker7f3a9c';
const URL_MARKER = 'urltokenmarker5b1e2d';
const markedJob = {
  type: 'dataset-profile',
  input: { source: { inline: `name\n${INPUT_MARKER}\n${INPUT_MARKER}\n` }, format: 'csv' },
  // Port 9 (discard) refuses: the delivery fails and is retried, which is logged too.
  webhook: { url: `http://127.0.0.1:9/hook?token=${URL_MARKER}` },
};

/** Prometheus text → `name{labels}` → value, for the series whose name starts with `longhaul_`. */
async function scrape(url: string): Promise<Map<string, number>> {
  const res = await request('GET', `${url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  const series = new Map<string, number>();
  for (const line of String(res.body).split('\n')) {
    const match = /^(longhaul_[a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!match) continue;
    // Drop the service label every series carries; `{}` left alone means no label.
    const labels = (match[2] ?? '')
      .replace(/,?service="[a-z]+"/, '')
      .replace('{,', '{')
      .replace('{}', '');
    series.set(`${match[1]}${labels}`, Number(match[3]));
  }
  return series;
}
const value = (m: Map<string, number>, key: string) => m.get(key) ?? 0;

describe('Prometheus metrics on the API and the worker', () => {
  let system: Awaited<ReturnType<typeof startSystem>>;
  // A private Redis: one test fills it up, which must not disturb other files' tests.
  let redis: RedisServer;

  beforeAll(async () => {
    redis = await startRedisServer();
    system = await startSystem(
      {
        METRICS_TOKEN: TOKEN,
        WORKER_CONCURRENCY: '4',
        WEBHOOK_SECRETS: `a:${WEBHOOK_SECRET}`,
        WEBHOOK_ALLOW_PRIVATE: 'true',
        RATE_LIMIT_PER_MINUTE: '0',
        // Off, so a refused submit reaches the write that carries the job's data and webhook URL.
        TENANT_BACKLOG_QUOTA: '0',
      },
      redis.url,
    );
  });
  afterAll(async () => {
    await system?.stop();
    await redis?.destroy();
  });

  it('when no bearer token is sent while METRICS_TOKEN is set, then both /metrics answer 401', async () => {
    expect((await request('GET', `${system.api.url}/metrics`)).status).toBe(401);
    expect((await request('GET', `${system.worker.url}/metrics`)).status).toBe(401);
    const wrong = { headers: { authorization: 'Bearer not-the-token' } };
    expect((await request('GET', `${system.api.url}/metrics`, wrong)).status).toBe(401);
  });

  it('when a batch of jobs runs, then submitted, completed, retried and failed counters move by exactly as much', async () => {
    const [apiBefore, workerBefore] = await Promise.all([scrape(system.api.url), scrape(system.worker.url)]);
    const bodies = [
      simulate({ durationMs: 20, steps: 2 }),
      simulate({ durationMs: 20, steps: 2 }),
      simulate({ durationMs: 20, steps: 2 }),
      simulate({ durationMs: 20, steps: 1, failTimes: 1 }),
      simulate({ durationMs: 20, steps: 1, fail: 'permanent' }),
    ];
    const ids: string[] = [];
    for (const body of bodies) {
      const res = await system.a.post('/v1/jobs', body);
      expect(res.status).toBe(202);
      ids.push(res.body.id);
    }
    await Promise.all(
      ids.map((id) => waitForJob(system.a, id, (v) => v.status === 'completed' || v.status === 'failed')),
    );
    await system.a.get(`/v1/jobs/${ids[0]}`);

    const [apiAfter, workerAfter] = await Promise.all([scrape(system.api.url), scrape(system.worker.url)]);
    const delta = (before: Map<string, number>, after: Map<string, number>, key: string) =>
      value(after, key) - value(before, key);

    expect(delta(apiBefore, apiAfter, 'longhaul_jobs_submitted_total{analysis="simulate"}')).toBe(5);
    expect(delta(workerBefore, workerAfter, 'longhaul_jobs_completed_total{analysis="simulate"}')).toBe(4);
    expect(delta(workerBefore, workerAfter, 'longhaul_jobs_retried_total{analysis="simulate"}')).toBe(1);
    expect(delta(workerBefore, workerAfter, 'longhaul_jobs_failed_total{analysis="simulate"}')).toBe(1);
    expect(
      delta(workerBefore, workerAfter, 'longhaul_job_run_seconds_count{analysis="simulate",outcome="completed"}'),
    ).toBe(4);
    // Durations are labelled by route template, never by the raw URL with its job id.
    expect(
      value(apiAfter, 'longhaul_http_request_duration_seconds_count{method="GET",route="/v1/jobs/:id",status="200"}'),
    ).toBeGreaterThan(0);
    expect([...apiAfter.keys()].some((k) => k.includes(ids[0] ?? 'job_'))).toBe(false);
    // Read on scrape: nothing is left waiting, Redis answered.
    expect(value(apiAfter, 'longhaul_queue_jobs{queue="analyses",state="completed"}')).toBeGreaterThanOrEqual(4);
    expect(value(apiAfter, 'longhaul_queue_jobs{queue="analyses",state="prioritized"}')).toBe(0);
    expect(value(apiAfter, 'longhaul_redis_up')).toBe(1);
  });

  it('when a job is scheduled for later, then the queue depth by state shows it and the oldest-waiting age is reported', async () => {
    const before = await scrape(system.api.url);
    const delayed = await system.a.post('/v1/jobs', { ...simulate({ durationMs: 10 }), delayMs: 600_000 });
    expect(delayed.status).toBe(202);
    const after = await scrape(system.api.url);
    const key = 'longhaul_queue_jobs{queue="analyses",state="delayed"}';
    expect(value(after, key) - value(before, key)).toBe(1);
    expect(after.has('longhaul_queue_oldest_waiting_age_seconds{queue="analyses"}')).toBe(true);
  });

  it('when a job with markers in its input and webhook URL runs, and then Redis refuses writes (maxmemory), then submits answer 503 with Retry-After', async () => {
    const accepted = await system.a.post('/v1/jobs', markedJob);
    expect(accepted.status).toBe(202);
    const done = await waitForJob(system.a, accepted.body.id, (v) => v.status === 'completed');
    expect(done.status).toBe('completed');
    expect(JSON.stringify((await system.a.get(`/v1/jobs/${accepted.body.id}/result`)).body)).toContain(INPUT_MARKER);

    const admin = new Redis(redis.url);
    try {
      await admin.config('SET', 'maxmemory', '1');
      for (let i = 0; i < 5; i++) {
        const refused = await system.a.post('/v1/jobs', markedJob);
        expect(refused.status).toBe(503);
        expect(refused.headers['retry-after']).toBeDefined();
      }
    } finally {
      await admin.config('SET', 'maxmemory', '0');
      admin.disconnect();
    }
    // The refusals were logged as errors: the log test below reads them.
    expect(system.api.jsonLogs().some((l) => l.level === 50 && l.err !== undefined)).toBe(true);
  });

  it('when jobs have run, then every request log line has a reqId, every job line a jobId and attempt, and no secret, input, result or webhook URL is logged, Redis errors included', () => {
    const apiLines = system.api.jsonLogs().filter((l) => l.req !== undefined);
    expect(apiLines.length).toBeGreaterThan(0);
    for (const line of apiLines) expect(typeof line.reqId).toBe('string');
    const jobLines = system.worker
      .jsonLogs()
      .filter((l) => l.msg === 'analysis started' || l.msg === 'analysis completed');
    expect(jobLines.length).toBeGreaterThan(0);
    for (const line of jobLines) {
      expect(typeof line.jobId).toBe('string');
      expect(typeof line.attempt).toBe('number');
    }
    const everything = system.api.logs() + system.worker.logs();
    expect(everything).not.toContain(KEY_A);
    expect(everything).not.toContain(TOKEN);
    expect(everything).not.toMatch(/"durationMs"/);
    expect(everything).not.toContain(INPUT_MARKER);
    expect(everything).not.toContain(URL_MARKER);
    expect(everything).not.toContain(WEBHOOK_SECRET);
  });
});
