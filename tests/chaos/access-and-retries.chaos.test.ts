import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, request } from '../support/http.ts';
import { type AppProcess, startApi, startWorker } from '../support/processes.ts';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../support/redis.ts';
import {
  chaosEnv,
  executionLogFile,
  FAULT_TIMEOUT,
  leakedSecrets,
  readExecutions,
  recordFigures,
  SECRETS,
  submitJobs,
  waitAllFinal,
} from './chaos-support.ts';

const job = (input: Record<string, unknown> = { durationMs: 10, steps: 1 }) => ({ type: 'simulate', input });

describe('G10/G12 retries, authentication, tenant isolation, rate limit and backlog quota, real processes', () => {
  const prefix = uniquePrefix();
  const ratePrefix = uniquePrefix();
  const quotaPrefix = uniquePrefix();
  const log = executionLogFile();
  const env = chaosEnv(redisUrl(), prefix, { SIMULATE_EXECUTION_LOG: log, WORKER_CONCURRENCY: '4' });
  const all: AppProcess[] = [];
  let main: AppProcess;
  let rateReplicas: AppProcess[];
  let quotaApi: AppProcess;

  beforeAll(async () => {
    const rateEnv = chaosEnv(redisUrl(), ratePrefix, { RATE_LIMIT_PER_MINUTE: '5' });
    const quotaEnv = chaosEnv(redisUrl(), quotaPrefix, { TENANT_BACKLOG_QUOTA: '3' });
    const started = await Promise.all([
      startApi(env),
      startWorker(env),
      startApi(rateEnv),
      startApi(rateEnv),
      startApi(quotaEnv),
    ]);
    all.push(...started);
    [main, , , , quotaApi] = started as [AppProcess, AppProcess, AppProcess, AppProcess, AppProcess];
    rateReplicas = [started[2] as AppProcess, started[3] as AppProcess];
  });
  afterAll(async () => {
    await Promise.all(all.map((p) => p.stop().catch(() => undefined)));
    await Promise.all([prefix, ratePrefix, quotaPrefix].map((p) => cleanupPrefix(redisUrl(), p)));
  });

  it(
    'G10: when a job fails transiently twice, then it completes on attempt 3 after a backoff between attempts',
    async () => {
      const client = api(main.url, SECRETS.keyA);
      // Accepted for sure (a 503 shed under CPU contention is sent again), so its id is known.
      const [id = ''] = await submitJobs(client, 1, { durationMs: 0, steps: 1, failTimes: 2 });
      const [status] = (await waitAllFinal(client, [id], 30_000)).values();
      expect(status).toBe('completed');
      expect((await client.get(`/v1/jobs/${id}/result`)).body.result.attempt).toBe(3);
      const starts = readExecutions(log).filter((e) => e.jobId === id && e.event === 'start');
      expect(starts.map((s) => s.attempt)).toEqual([1, 2, 3]);
      // simulate's backoff: 500 ms doubling, jitter 0.5, so at least 250 ms then 500 ms.
      const gaps = starts.slice(1).map((s, i) => s.at - (starts[i]?.at ?? 0));
      expect(gaps[0]).toBeGreaterThanOrEqual(250);
      expect(gaps[1]).toBeGreaterThanOrEqual(500);
      recordFigures('G10', { attempts: 3, backoffGapsMs: gaps });
    },
    FAULT_TIMEOUT,
  );

  it(
    'G10: when a job exhausts its attempts, then it stays failed with its last error and stack',
    async () => {
      const client = api(main.url, SECRETS.keyA);
      // Accepted for sure (a 503 shed under CPU contention is sent again), so its id is known.
      const [id = ''] = await submitJobs(client, 1, { durationMs: 0, steps: 1, failTimes: 5 });
      const [status] = (await waitAllFinal(client, [id], 30_000)).values();
      expect(status).toBe('failed');
      const view = (await client.get(`/v1/jobs/${id}`)).body;
      expect(view.attempts).toEqual({ made: 3, max: 3 });
      expect(view.error.message).toMatch(/transient failure on attempt 3/);
      const redis = new Redis(redisUrl());
      try {
        const stack = JSON.parse((await redis.hget(`${prefix}:analyses:${id}`, 'stacktrace')) ?? '[]') as string[];
        expect(stack.length).toBeGreaterThan(0);
        expect(stack.at(-1)).toMatch(/transient failure on attempt 3[\s\S]*at /);
      } finally {
        redis.disconnect();
      }
    },
    FAULT_TIMEOUT,
  );

  it(
    'G12: when the API key is missing or wrong, then every route answers 401 with WWW-Authenticate',
    async () => {
      const headerSets: Record<string, string>[] = [
        {},
        { authorization: 'Bearer nope' },
        { authorization: `Bearer ${SECRETS.keyA}x` },
        { authorization: `Bearer ${SECRETS.keyA.slice(0, -1)}` },
        { authorization: `Basic ${Buffer.from(`a:${SECRETS.keyA}`).toString('base64')}` },
      ];
      for (const headers of headerSets) {
        for (const [method, path] of [
          ['POST', '/v1/jobs'],
          ['GET', '/v1/jobs'],
          ['GET', '/v1/jobs/job_01ARZ3NDEKTSV4RRFFQ69G5FAV'],
          ['GET', '/v1/analyses'],
        ] as const) {
          const res = await request(method, `${main.url}${path}`, {
            headers,
            body: method === 'POST' ? job() : undefined,
          });
          expect(res.status, `${method} ${path} ${JSON.stringify(headers)}`).toBe(401);
          expect(res.body.error.code).toBe('unauthorized');
          expect(res.headers['www-authenticate']).toBe('Bearer');
        }
      }
    },
    FAULT_TIMEOUT,
  );

  it(
    "G12: when tenant B names tenant A's job, then every route answers 404, exactly like a missing job",
    async () => {
      const a = api(main.url, SECRETS.keyA);
      const b = api(main.url, SECRETS.keyB);
      const { body } = await a.post('/v1/jobs', job({ durationMs: 5_000, steps: 5 }));
      const missing = 'job_01ARZ3NDEKTSV4RRFFQ69G5FAV';
      for (const [method, path] of [
        ['GET', ''],
        ['GET', '/result'],
        ['GET', '/events'],
        ['DELETE', ''],
      ] as const) {
        const theirs = await b.request(method, `/v1/jobs/${body.id}${path}`, { timeoutMs: 3_000 });
        const none = await b.request(method, `/v1/jobs/${missing}${path}`, { timeoutMs: 3_000 });
        expect(theirs.status, `${method} ${path}`).toBe(404);
        expect(theirs.body).toEqual(none.body);
      }
      const listed = (await b.get('/v1/jobs?limit=100')).body.jobs.map((j: { id: string }) => j.id);
      expect(listed).not.toContain(body.id);
      // Still A's, still running: B's cancel did nothing.
      expect((await a.get(`/v1/jobs/${body.id}`)).body.status).not.toBe('cancelled');
    },
    FAULT_TIMEOUT,
  );

  it(
    'G12: when Bull Board is asked without (or with wrong) credentials, then it answers 401',
    async () => {
      const wrong = `Basic ${Buffer.from(`chaos-admin:not-${SECRETS.adminPassword}`).toString('base64')}`;
      const right = `Basic ${Buffer.from(`chaos-admin:${SECRETS.adminPassword}`).toString('base64')}`;
      for (const path of ['/admin/queues', '/admin/queues/api/queues']) {
        expect((await request('GET', `${main.url}${path}`)).status).toBe(401);
        expect((await request('GET', `${main.url}${path}`, { headers: { authorization: wrong } })).status).toBe(401);
      }
      expect((await request('GET', `${main.url}/admin/queues`, { headers: { authorization: right } })).status).toBe(
        200,
      );
    },
    FAULT_TIMEOUT,
  );

  it(
    'G12: when a tenant passes its submit rate across two API replicas, then it gets 429 with Retry-After; another tenant does not',
    async () => {
      const [one, two] = rateReplicas.map((r) => api(r.url, SECRETS.keyA)) as [
        ReturnType<typeof api>,
        ReturnType<typeof api>,
      ];
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await (i % 2 ? two : one).post('/v1/jobs', job())).status);
      expect(statuses).toEqual([202, 202, 202, 202, 202]);
      const limited = await two.post('/v1/jobs', job());
      expect(limited.status).toBe(429);
      expect(limited.body.error.code).toBe('rate_limited');
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
      expect((await one.post('/v1/jobs', job())).status).toBe(429);
      // Reads are not counted, and another tenant has its own budget.
      expect((await one.get('/v1/jobs')).status).toBe(200);
      expect((await api(rateReplicas[0]?.url ?? '', SECRETS.keyB).post('/v1/jobs', job())).status).toBe(202);
      recordFigures('G12-rate', {
        limitPerMinute: 5,
        replicas: 2,
        retryAfterSeconds: Number(limited.headers['retry-after']),
      });
    },
    FAULT_TIMEOUT,
  );

  it(
    'G12: when a tenant has as many unfinished jobs as its backlog quota, then the next submit answers 429 backlog_quota_exceeded',
    async () => {
      const a = api(quotaApi.url, SECRETS.keyA);
      for (let i = 0; i < 3; i++) expect((await a.post('/v1/jobs', job())).status).toBe(202);
      const first = await a.post('/v1/jobs', job(), { headers: { 'idempotency-key': 'quota-1' } });
      expect(first.status).toBe(429);
      expect(first.body.error.code).toBe('backlog_quota_exceeded');
      expect(first.headers['retry-after']).toBeDefined();
      // Tenant B has its own quota.
      expect((await api(quotaApi.url, SECRETS.keyB).post('/v1/jobs', job())).status).toBe(202);
      // Cancelling a queued job frees its slot at once.
      const { jobs } = (await a.get('/v1/jobs')).body as { jobs: { id: string }[] };
      expect((await a.delete(`/v1/jobs/${jobs[0]?.id}`)).status).toBe(202);
      expect((await a.post('/v1/jobs', job())).status).toBe(202);
      expect((await a.post('/v1/jobs', job())).status).toBe(429);
    },
    FAULT_TIMEOUT,
  );

  it('G12: when the run is over, then no API key, password, token or job input appears in any process log', () => {
    expect(leakedSecrets(all)).toEqual([]);
  });
});
