import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../support/http.ts';
import { type AppProcess, startApi, startWorker } from '../support/processes.ts';
import { startRedisServer } from '../support/redis-server.ts';
import { withTimeout } from '../support/wait.ts';
import { KEY_A, simulate, startSystem, systemEnv, waitForJob } from './fixtures.ts';

describe('worker shutdown (SIGTERM), real processes', () => {
  let sys: Awaited<ReturnType<typeof startSystem>>;
  beforeAll(async () => {
    sys = await startSystem({ SHUTDOWN_GRACE_MS: '500' });
  });
  afterAll(async () => {
    await sys?.stop();
  });

  it('when SIGTERM arrives mid-job, then the job is handed back unharmed, resumes on another worker and completes', async () => {
    const { body } = await sys.a.post('/v1/jobs', simulate({ durationMs: 4_000, steps: 8 }));
    await waitForJob(sys.a, body.id, (v) => v.status === 'active' && (v.progress?.percent ?? 0) >= 25);
    const code = await sys.worker.stop();
    expect(code).toBe(0);
    const handedBack = (await sys.a.get(`/v1/jobs/${body.id}`)).body;
    expect(handedBack.status).toBe('queued');
    expect(handedBack.attempts.made).toBe(0);
    // The stopped attempt's progress is stale: not shown, and the view says why the job waits.
    expect(handedBack).toMatchObject({ progress: null, waiting: 'worker_lost' });
    expect(sys.worker.logs()).toContain('handing the job back');

    const next = await startWorker(sys.env);
    try {
      const done = await waitForJob(sys.a, body.id, (v) => v.status === 'completed' || v.status === 'failed');
      expect(done.status).toBe('completed');
      const result = (await sys.a.get(`/v1/jobs/${body.id}/result`)).body.result;
      expect(result.resumedFromStep).toBeGreaterThan(0);
    } finally {
      await next.stop();
    }
  });

  it('when one Ctrl-C reaches the worker three times (its process group, and pnpm relaying it), then it still drains, hands the job back and exits 0', async () => {
    const worker = await startWorker(sys.env);
    try {
      const { body } = await sys.a.post('/v1/jobs', simulate({ durationMs: 6_000, steps: 12 }));
      await waitForJob(sys.a, body.id, (v) => v.status === 'active');
      worker.signal('SIGINT');
      await worker.waitForLog('shutting down');
      worker.signal('SIGINT');
      worker.signal('SIGINT');
      const exit = await withTimeout(worker.exited, 30_000);
      expect(exit, worker.logs()).toEqual({ code: 0, signal: null });
      expect(worker.logs()).toContain('shut down cleanly');
      expect(worker.logs()).not.toContain('second signal');
      const handedBack = (await sys.a.get(`/v1/jobs/${body.id}`)).body;
      expect(handedBack).toMatchObject({ status: 'queued', attempts: { made: 0 } });
      // Not left for the next test's worker.
      expect((await sys.a.delete(`/v1/jobs/${body.id}`)).status).toBe(202);
    } finally {
      await worker.kill();
    }
  });

  it('when SIGTERM arrives and the job ends within the grace period, then it completes before the worker exits', async () => {
    const worker = await startWorker({ ...sys.env, SHUTDOWN_GRACE_MS: '10000' });
    const { body } = await sys.a.post('/v1/jobs', simulate({ durationMs: 1_500, steps: 3 }));
    await waitForJob(sys.a, body.id, (v) => v.status === 'active');
    expect(await worker.stop()).toBe(0);
    const view = (await sys.a.get(`/v1/jobs/${body.id}`)).body;
    expect(view.status).toBe('completed');
  });
});

describe('worker shutdown while Redis is paused or down (real processes, private redis-server)', () => {
  it('when SIGTERM arrives before the worker has finished starting, then it drains and exits 0 instead of dying of the signal', async () => {
    const redis = await startRedisServer();
    const admin = new Redis(redis.url);
    let worker: AppProcess | undefined;
    try {
      // Writes wait: the worker's start-up ends with its fair-share heartbeat, a write, so it
      // cannot finish. Its health server answers already, which is when startWorker returns.
      await admin.call('CLIENT', 'PAUSE', '60000', 'WRITE');
      worker = await startWorker(systemEnv(redis.url));
      worker.signal('SIGTERM');
      await worker.waitForLog('shutting down');
      await admin.call('CLIENT', 'UNPAUSE');
      const exit = await withTimeout(worker.exited, 30_000);
      expect(exit, worker.logs()).toEqual({ code: 0, signal: null });
      expect(worker.logs()).toContain('shut down cleanly');
    } finally {
      await admin.call('CLIENT', 'UNPAUSE').catch(() => undefined);
      await worker?.kill();
      admin.disconnect();
      await redis.destroy();
    }
  });

  it('when Redis is down and SIGTERM arrives at an idle worker, then it exits 0 within seconds instead of waiting out its deadline', async () => {
    const redis = await startRedisServer();
    let worker: AppProcess | undefined;
    try {
      // The default grace: the shutdown's deadline is 50 s, which the old drain waited out.
      worker = await startWorker({ ...systemEnv(redis.url), SHUTDOWN_GRACE_MS: '30000' });
      await worker.waitForLog('redis ready');
      await redis.stop();
      worker.signal('SIGTERM');
      const exit = await withTimeout(worker.exited, 15_000);
      expect(exit, worker.logs()).toEqual({ code: 0, signal: null });
      expect(worker.logs()).toContain('redis is unreachable');
    } finally {
      await worker?.kill();
      await redis.destroy();
    }
  }, 60_000);

  it('when Redis is down and SIGTERM arrives mid-job, then the job gets its grace period, and the worker exits without waiting for Redis', async () => {
    const redis = await startRedisServer();
    const env = systemEnv(redis.url);
    let apiProcess: AppProcess | undefined;
    let worker: AppProcess | undefined;
    try {
      [apiProcess, worker] = await Promise.all([startApi(env), startWorker({ ...env, SHUTDOWN_GRACE_MS: '1000' })]);
      const client = api(apiProcess.url, KEY_A);
      const { body } = await client.post('/v1/jobs', simulate({ durationMs: 60_000, steps: 60 }));
      await waitForJob(client, body.id, (v) => v.status === 'active');
      await redis.stop();
      worker.signal('SIGTERM');
      const exit = await withTimeout(worker.exited, 20_000);
      expect(exit, worker.logs()).toEqual({ code: 0, signal: null });
      const logs = worker.logs();
      expect(logs).toContain('grace period over');
      expect(logs).toContain('redis is unreachable');
    } finally {
      await worker?.kill();
      await apiProcess?.kill();
      await redis.destroy();
    }
  }, 60_000);
});
