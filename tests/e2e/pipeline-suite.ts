import { once } from 'node:events';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type JobViewBody, simulate, startSystem, waitForJob } from './fixtures.ts';

/**
 * The end-to-end pipeline suite, run against a single Redis here and against a Redis Cluster in
 * tests/cluster/. `url` is read when the suite starts.
 */
export function pipelineSuite(label: string, url?: () => string): void {
  describe(`the job pipeline, real api and worker processes (${label})`, () => {
    let sys: Awaited<ReturnType<typeof startSystem>>;
    beforeAll(async () => {
      sys = await startSystem({ WORKER_CONCURRENCY: '4' }, url?.());
    });
    afterAll(async () => {
      await sys?.stop();
    });

    it('when a job is submitted, then progress is seen, it completes, and its result is served', async () => {
      const res = await sys.a.post('/v1/jobs', simulate({ durationMs: 1500, steps: 5, resultBytes: 100 }));
      expect(res.status).toBe(202);
      const id = res.body.id as string;
      const seen = new Set<number>();
      const done = await waitForJob(sys.a, id, (v) => {
        if (v.progress && v.status === 'active') seen.add(v.progress.percent);
        return v.status === 'completed';
      });
      expect([...seen].some((p) => p > 0 && p < 100)).toBe(true);
      expect(done.attempts).toEqual({ made: 1, max: 3 });
      const result = await sys.a.get(`/v1/jobs/${id}/result`);
      expect(result.status).toBe(200);
      expect(result.body.result).toMatchObject({ steps: 5, attempt: 1 });
      expect(result.body.result.payload).toHaveLength(100);
    });

    it('when a job fails transiently twice, then it is retried with backoff and completes on attempt 3', async () => {
      const { body } = await sys.a.post('/v1/jobs', simulate({ durationMs: 0, steps: 1, failTimes: 2 }));
      const done = await waitForJob(sys.a, body.id, (v) => v.status === 'completed' || v.status === 'failed');
      expect(done.status).toBe('completed');
      expect(done.attempts.made).toBe(3);
      const result = await sys.a.get(`/v1/jobs/${body.id}/result`);
      expect(result.body.result.attempt).toBe(3);
    });

    it('when a durable job fails transiently in its last step, then its retry keeps the stored steps and its view lists them', async () => {
      const { body } = await sys.a.post('/v1/jobs', simulate({ durationMs: 0, steps: 3, durable: true, failTimes: 1 }));
      const done = await waitForJob(sys.a, body.id, (v) => v.status === 'completed' || v.status === 'failed');
      expect(done.status).toBe('completed');
      const view = (await sys.a.get(`/v1/jobs/${body.id}`)).body;
      expect(
        view.steps.map((s: { name: string; status: string; attempt: number }) => [s.name, s.status, s.attempt]),
      ).toEqual([
        ['step-1', 'completed', 1],
        ['step-2', 'completed', 1],
        ['step-3', 'completed', 2],
      ]);
      expect((await sys.a.get(`/v1/jobs/${body.id}/result`)).body.result.resumedFromStep).toBe(2);
    });

    it('when a job fails more often than its attempts, then it ends failed with the last error', async () => {
      const { body } = await sys.a.post('/v1/jobs', simulate({ durationMs: 0, steps: 1, failTimes: 5 }));
      const done = await waitForJob(sys.a, body.id, (v) => v.status === 'failed');
      expect(done.attempts).toEqual({ made: 3, max: 3 });
      expect(done.error?.message).toMatch(/transient failure on attempt 3/);
    });

    it('when a job fails permanently, then it fails at once, without retry', async () => {
      const { body } = await sys.a.post('/v1/jobs', simulate({ durationMs: 0, steps: 1, fail: 'permanent' }));
      const done = await waitForJob(sys.a, body.id, (v) => v.status === 'failed');
      expect(done.attempts.made).toBe(1);
      expect(done.error).toEqual({ code: 'analysis_failed', message: 'simulated permanent failure' });
      const result = await sys.a.get(`/v1/jobs/${body.id}/result`);
      expect(result.status).toBe(409);
      expect(result.body.error.details.status).toBe('failed');
    });

    it('when an active job is cancelled, then the worker aborts it and it ends cancelled, not retried', async () => {
      const { body } = await sys.a.post('/v1/jobs', simulate({ durationMs: 20_000, steps: 40 }));
      await waitForJob(sys.a, body.id, (v) => v.status === 'active' && (v.progress?.percent ?? 0) > 0);
      const cancel = await sys.a.delete(`/v1/jobs/${body.id}`);
      expect(cancel.status).toBe(202);
      const done = await waitForJob(sys.a, body.id, (v) => v.status === 'cancelled', 5_000);
      expect(done.attempts.made).toBe(1);
      expect(done.error?.code).toBe('cancelled');
      await sys.worker.waitForLog('analysis cancelled', 5_000);
    });

    it('when a queued job is cancelled, then it never runs', async () => {
      const { body } = await sys.a.post('/v1/jobs', simulate({ durationMs: 10, steps: 1 }, { delayMs: 2_000 }));
      const cancel = await sys.a.delete(`/v1/jobs/${body.id}`);
      expect(cancel.status).toBe(202);
      await new Promise((r) => setTimeout(r, 2_500));
      const view = (await sys.a.get(`/v1/jobs/${body.id}`)).body as JobViewBody;
      expect(view.status).toBe('cancelled');
      expect(view.startedAt).toBeNull();
      // The worker that drained it wrote its reason: the same the cancel's answer showed.
      expect(view.error).toEqual(cancel.body.error);
    });

    it('when a request is refused by the HTTP parser (headers over its limit), then the API answers 431 in its error shape, with X-Request-Id', async () => {
      const { hostname, port } = new URL(sys.api.url);
      const socket = connect(Number(port), hostname);
      await once(socket, 'connect');
      socket.end(`GET /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Padding: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
      let text = '';
      for await (const chunk of socket) text += String(chunk);
      const [head = '', body = ''] = text.split('\r\n\r\n');
      expect(head).toMatch(/^HTTP\/1\.1 431 /);
      expect(head).toMatch(/\r\nX-Request-Id: [0-9a-f-]{36}\r\n/);
      expect(JSON.parse(body)).toMatchObject({ error: { code: 'headers_too_large' } });
      // The API goes on answering.
      expect((await sys.a.get('/v1/jobs')).status).toBe(200);
    });

    it("when tenant B asks for tenant A's running job, then it answers 404", async () => {
      const { body } = await sys.a.post('/v1/jobs', simulate({ durationMs: 10, steps: 1 }));
      expect((await sys.b.get(`/v1/jobs/${body.id}`)).status).toBe(404);
      expect((await sys.b.delete(`/v1/jobs/${body.id}`)).status).toBe(404);
      expect((await sys.a.get(`/v1/jobs/${body.id}`)).status).toBe(200);
    });

    it('when a CPU-bound job runs, then the worker stays responsive and the job completes once', async () => {
      const { body } = await sys.a.post('/v1/jobs', simulate({ durationMs: 1_500, steps: 3, cpu: true }));
      await waitForJob(sys.a, body.id, (v) => v.status === 'active');
      const health = await fetch(`${sys.worker.url}/healthz`, { signal: AbortSignal.timeout(1_000) });
      expect(health.status).toBe(200);
      const done = await waitForJob(sys.a, body.id, (v) => v.status === 'completed');
      expect(done.attempts.made).toBe(1);
    });
  });
}
