import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../support/http.ts';
import { startApi, startWorker } from '../support/processes.ts';
import { type RedisServer, startRedisServer } from '../support/redis-server.ts';
import { waitFor } from '../support/wait.ts';
import { KEY_A, simulate, systemEnv, waitForJob } from './fixtures.ts';

/**
 * Waits until a submit is accepted: the precondition "Redis is healthy" of a test. A machine this
 * busy can stall a fresh redis-server past the liveness bound once, and the API answers 503 then.
 */
async function acceptsJobs(client: ReturnType<typeof api>): Promise<void> {
  await waitFor(async () => (await client.post('/v1/jobs', simulate({ durationMs: 10 }))).status === 202, {
    timeoutMs: 10_000,
    intervalMs: 100,
    what: 'the API to accept a job',
  });
}

describe('Redis outages, real processes and a private redis-server', () => {
  let redis: RedisServer;
  let env: Record<string, string>;
  let apiProcess: Awaited<ReturnType<typeof startApi>>;
  let worker: Awaited<ReturnType<typeof startWorker>>;

  beforeAll(async () => {
    // No test here SIGKILLs Redis, so `everysec` is enough; `always` fsyncs on Redis' own thread
    // and, on a busy disk, stalls it past the liveness bound, which the API rightly answers 503 to.
    redis = await startRedisServer({ appendonly: true, appendfsync: 'everysec' });
    env = systemEnv(redis.url);
    [apiProcess, worker] = await Promise.all([startApi(env), startWorker(env)]);
  });
  afterAll(async () => {
    await Promise.all([apiProcess?.stop(), worker?.stop()]);
    await redis?.destroy?.();
  });

  it('when Redis is healthy but slow to answer (writes paused for 1.5 s), then submit waits and answers 202, not 503', async () => {
    const client = api(apiProcess.url, KEY_A);
    await acceptsJobs(client);
    const admin = new Redis(redis.url);
    try {
      // Reads and PING still answer: Redis is alive, only slower than the outage bound for writes.
      await admin.call('CLIENT', 'PAUSE', '1500', 'WRITE');
      const slow = await client.post('/v1/jobs', simulate({ durationMs: 10 }));
      expect(slow.status).toBe(202);
    } finally {
      await admin.call('CLIENT', 'UNPAUSE').catch(() => undefined);
      admin.disconnect();
    }
  });

  it('when Redis stops, then submit answers 503 with Retry-After within a second, and 202 again once it returns', async () => {
    const client = api(apiProcess.url, KEY_A);
    await acceptsJobs(client);
    await redis.stop();
    const started = Date.now();
    const down = await client.post('/v1/jobs', simulate({ durationMs: 10 }));
    expect(down.status).toBe(503);
    expect(down.headers['retry-after']).toBeDefined();
    expect(down.body.error.code).toBe('redis_unavailable');
    expect(Date.now() - started).toBeLessThan(1_000);
    expect((await client.get('/readyz')).status).toBe(503);

    await redis.restart();
    const back = await waitFor(
      async () => {
        const res = await client.post('/v1/jobs', simulate({ durationMs: 10, steps: 1 }));
        return res.status === 202 ? res : undefined;
      },
      { timeoutMs: 5_000, intervalMs: 100, what: 'the API to accept jobs again' },
    );
    // The worker reconnected by itself too: the job runs.
    const done = await waitForJob(client, back.body.id, (v) => v.status === 'completed', 15_000);
    expect(done.status).toBe('completed');
  });

  it('when the API is idle, then it probes Redis every 2 s, not every 200 ms', async () => {
    const admin = new Redis(redis.url);
    try {
      const pings = async () => Number(/cmdstat_ping:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0);
      const before = await pings();
      await new Promise((resolve) => setTimeout(resolve, 4_000));
      // At the busy pace, 20; at the idle pace, 2 or 3 (a slower machine only sends fewer).
      expect((await pings()) - before).toBeLessThanOrEqual(4);
    } finally {
      admin.disconnect();
    }
  });

  it('when Redis is frozen (SIGSTOP) after an idle spell, then submit and /readyz answer 503 within a second', async () => {
    const client = api(apiProcess.url, KEY_A);
    // Idle for longer than the slow probe's interval: the submit starts the fast pace itself.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    await redis.freeze();
    try {
      const started = Date.now();
      const [submit, ready] = await Promise.all([
        client.post('/v1/jobs', simulate({ durationMs: 10 })),
        client.get('/readyz'),
      ]);
      expect(submit.status).toBe(503);
      expect(submit.headers['retry-after']).toBeDefined();
      expect(ready.status).toBe(503);
      expect(Date.now() - started).toBeLessThan(1_500);
    } finally {
      await redis.thaw();
    }
    await waitFor(async () => (await client.get('/readyz')).status === 200, { timeoutMs: 5_000, what: 'ready again' });
  });

  it('when the API starts while Redis is down, then it answers 503 and becomes ready by itself when Redis starts', async () => {
    const cold = await startRedisServer({ appendonly: true, appendfsync: 'everysec' });
    await cold.stop();
    const coldApi = await startApi(systemEnv(cold.url), { ready: false });
    try {
      const client = api(coldApi.url, KEY_A);
      expect((await client.get('/readyz')).status).toBe(503);
      expect((await client.post('/v1/jobs', simulate({ durationMs: 10 }))).status).toBe(503);
      await cold.restart();
      await waitFor(async () => (await client.get('/readyz')).status === 200, { timeoutMs: 5_000, what: 'API ready' });
      await acceptsJobs(client);
    } finally {
      await coldApi.stop();
      await cold.destroy?.();
    }
  });
});
