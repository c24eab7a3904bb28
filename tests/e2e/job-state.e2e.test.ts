import {
  createJobStore,
  createRedisConnection,
  getContract,
  isIndexed,
  type JobData,
  layoutFor,
  listIndexed,
  loadConfig,
  newJobId,
  OWN_FIELDS,
  QUEUES,
  type RedisConnection,
  TRIM_EVERY,
} from '@longhaul/shared';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executionCounts, executionLogFile, readExecutions } from '../chaos/chaos-support.ts';
import { openSse } from '../clients/sse-reader.ts';
import { type ApiClient, api } from '../support/http.ts';
import { type AppProcess, startApi, startWorker } from '../support/processes.ts';
import { cleanupPrefix, redisUrl, uniquePrefix, watchCommands } from '../support/redis.ts';
import { waitFor } from '../support/wait.ts';
import { KEY_A, KEY_B, simulate, systemEnv, waitForJob } from './fixtures.ts';

describe('idempotent replays never enqueue a job again (real api and worker, COMPLETED_RETENTION_COUNT=1)', () => {
  const log = executionLogFile();
  const prefix = uniquePrefix();
  const env = { ...systemEnv(redisUrl(), prefix), COMPLETED_RETENTION_COUNT: '1', SIMULATE_EXECUTION_LOG: log };
  const layout = layoutFor(prefix);
  let apiProcess: AppProcess;
  let worker: AppProcess;
  let client: ApiClient;
  let redis: RedisConnection;

  beforeAll(async () => {
    [apiProcess, worker] = await Promise.all([startApi(env), startWorker(env)]);
    client = api(apiProcess.url, KEY_A);
    redis = createRedisConnection(redisUrl(), 'worker');
  });
  afterAll(async () => {
    await Promise.all([apiProcess?.stop(), worker?.stop()]);
    await redis?.quit();
    await cleanupPrefix(redisUrl(), prefix);
  });

  it('when retention removed a completed job, then replaying its Idempotency-Key answers 410 and the job ran once', async () => {
    const body = simulate({ durationMs: 10, steps: 1 });
    const headers = { 'idempotency-key': `removed-${prefix}` };
    const a = await client.post('/v1/jobs', body, { headers });
    expect(a.status).toBe(202);
    const id = a.body.id as string;
    await waitForJob(client, id, (v) => v.status === 'completed');
    // Another completion: with a count of 1, BullMQ removes A in the same script.
    const b = await client.post('/v1/jobs', simulate({ durationMs: 10, steps: 1 }));
    await waitForJob(client, b.body.id, (v) => v.status === 'completed');
    expect((await client.get(`/v1/jobs/${id}`)).status).toBe(410);

    const replay = await client.post('/v1/jobs', body, { headers });
    expect(replay.status).toBe(410);
    expect(replay.body.error.code).toBe('gone');
    expect(await redis.exists(layout.job(QUEUES.analyses, id))).toBe(0);
    expect((await client.get(`/v1/jobs/${id}`)).status).toBe(410);
    // A cancel of the removed job is told the same (the OpenAPI document lists it).
    const cancel = await client.delete(`/v1/jobs/${id}`);
    expect(cancel.status).toBe(410);
    expect(cancel.body.error.code).toBe('gone');
    // B's start is logged after A's finish: the log is complete for A.
    expect(executionCounts(readExecutions(log)).starts.get(id)).toBe(1);
  });

  it("when a small job runs from submit to its end, then its tenant's storage budget is read once and not written, and its start reads the job from BullMQ's own fetch; a large result is counted", async () => {
    const key = layout.storageBytes('a');
    const watch = await watchCommands(redisUrl(), prefix);
    const small = await client.post('/v1/jobs', simulate({ durationMs: 0, steps: 1 }));
    expect(small.status).toBe(202);
    await waitForJob(client, small.body.id, (v) => v.status === 'completed');
    const all = await watch.stop();
    // The admission's check of the budget; its input and result are within the free bytes, and
    // on a first attempt there is no earlier result's figure for the end to replace.
    expect(all.filter(([, k]) => k === key)).toEqual([['HMGET', key, 'total', small.body.id]]);
    // The cancel flag, checkpoint and steps come from the HGETALL of BullMQ's take, in the same
    // script: the job's hash is read once as it starts.
    const jobKey = layout.job(QUEUES.analyses, small.body.id);
    const reads = all.filter(([name, k]) => k === jobKey && (name === 'HGETALL' || name === 'HMGET'));
    expect(reads.filter(([name]) => name === 'HGETALL')).toHaveLength(1);
    expect(reads.filter(([, , ...fields]) => fields.includes(OWN_FIELDS.checkpoint))).toEqual([]);

    const large = await client.post('/v1/jobs', simulate({ durationMs: 0, steps: 1, resultBytes: 4000 }));
    await waitForJob(client, large.body.id, (v) => v.status === 'completed');
    expect(await redis.hexists(key, large.body.id)).toBe(1);
  });

  it('when a delayed job was cancelled, then replaying its Idempotency-Key answers 200 cancelled and adds no job', async () => {
    const body = simulate({ durationMs: 10, steps: 1 }, { delayMs: 60_000 });
    const headers = { 'idempotency-key': `cancelled-${prefix}` };
    const first = await client.post('/v1/jobs', body, { headers });
    expect(first.status).toBe(202);
    expect(first.body.status).toBe('delayed');
    const id = first.body.id as string;
    expect((await client.delete(`/v1/jobs/${id}`)).status).toBe(202);
    await waitForJob(client, id, (v) => v.status === 'cancelled');
    // The flag is the cancel; a worker then fails the job without running it.
    await waitFor(async () => (await redis.hexists(layout.job(QUEUES.analyses, id), 'finishedOn')) === 1, {
      what: 'a worker to fail the cancelled job',
    });
    const indexed = (await listIndexed(redis, layout, 'a', undefined, 1_000_000)).length;

    const replay = await client.post('/v1/jobs', body, { headers });
    expect(replay.status).toBe(200);
    expect(replay.body).toMatchObject({ id, status: 'cancelled' });
    expect(replay.body.error.code).toBe('cancelled');
    expect((await listIndexed(redis, layout, 'a', undefined, 1_000_000)).length).toBe(indexed);
    expect(await redis.zscore(layout.delayed(QUEUES.analyses), id)).toBeNull();
    expect(await redis.hget(layout.job(QUEUES.analyses, id), 'finishedOn')).not.toBeNull();
    expect((await client.get(`/v1/jobs/${id}`)).body.status).toBe('cancelled');
    expect(executionCounts(readExecutions(log)).starts.get(id)).toBeUndefined();
  });
});

describe('a job outlives a short tombstone setting (real api, TOMBSTONE_TTL_SECONDS=60)', () => {
  const prefix = uniquePrefix();
  const env = {
    ...systemEnv(redisUrl(), prefix),
    TOMBSTONE_TTL_SECONDS: '60',
    COMPLETED_RETENTION_SECONDS: '60',
    FAILED_RETENTION_SECONDS: '60',
    RATE_LIMIT_PER_MINUTE: '0',
  };
  const layout = layoutFor(prefix);
  let apiProcess: AppProcess;
  let client: ApiClient;
  let connection: RedisConnection;
  let queue: Queue<JobData>;
  let store: ReturnType<typeof createJobStore>;

  beforeAll(async () => {
    // No worker: the jobs stay delayed or waiting as long as the test needs them.
    apiProcess = await startApi(env);
    client = api(apiProcess.url, KEY_A);
    connection = createRedisConnection(redisUrl(), 'worker');
    queue = new Queue<JobData>(QUEUES.analyses, { connection, prefix });
    store = createJobStore({ redis: connection, queue, config: loadConfig(env, 'api') });
  });
  afterAll(async () => {
    await apiProcess?.stop();
    await queue?.close();
    await connection?.quit();
    await cleanupPrefix(redisUrl(), prefix);
  });

  it('when a job’s index entry is far older than the tombstone, then every route answers for it while it exists, 410 once removed and 404 once trimmed', async () => {
    // A job accepted two hours ago (its id's time), delayed for two minutes more: without the
    // job's own lifetime deciding, a 60 s tombstone would have dropped it long ago.
    const old = newJobId(Date.now() - 2 * 3_600_000);
    await store.accept({
      tenant: 'a',
      id: old,
      contract: getContract('simulate'),
      input: { durationMs: 10, steps: 1 },
      delayMs: 120_000,
    });
    // Submits trim the tenant's index of entries older than the tombstone (one in TRIM_EVERY does).
    for (let i = 0; i < 5 * TRIM_EVERY; i++) {
      const res = await client.post('/v1/jobs', simulate({ durationMs: 10 }, { delayMs: 120_000 }));
      expect(res.status).toBe(202);
    }
    expect(await isIndexed(connection, layout, 'a', old)).toBe(true);

    const view = await client.get(`/v1/jobs/${old}`);
    expect(view.status).toBe(200);
    expect(view.body.status).toBe('delayed');
    const events = await openSse(`${apiProcess.url}/v1/jobs/${old}/events`, KEY_A);
    try {
      expect(events.status).toBe(200);
      expect((await events.next())?.data).toMatchObject({ id: old, status: 'delayed' });
    } finally {
      events.close();
    }
    expect((await client.delete(`/v1/jobs/${old}`)).status).toBe(202);

    // Gone from BullMQ: its index entry is the tombstone (410) until a trim finds it.
    await queue.remove(old);
    expect((await client.get(`/v1/jobs/${old}`)).status).toBe(410);
    // One submit in TRIM_EVERY trims: all of 100 missing it would be a chance of 0.75^100.
    for (let i = 0; i < 100 && (await isIndexed(connection, layout, 'a', old)); i++) {
      expect((await client.post('/v1/jobs', simulate({ durationMs: 10 }, { delayMs: 120_000 }))).status).toBe(202);
    }
    expect(await isIndexed(connection, layout, 'a', old)).toBe(false);
    expect((await client.get(`/v1/jobs/${old}`)).status).toBe(404);
  });

  it('when the oldest index entries belong to long-delayed jobs, then an old entry of a removed job behind them is still trimmed', async () => {
    const tenant = 'b';
    const accept = async (ageMs: number) => {
      const id = newJobId(Date.now() - ageMs);
      await store.accept({
        tenant,
        id,
        contract: getContract('simulate'),
        input: { durationMs: 10, steps: 1 },
        delayMs: 120_000,
      });
      return id;
    };
    // Four jobs accepted three hours ago and still delayed: the oldest entries, alive for long.
    const alive = [];
    for (let i = 0; i < 4; i++) alive.push(await accept(3 * 3_600_000));
    const removed = await accept(2 * 3_600_000);
    await queue.remove(removed);
    const other = api(apiProcess.url, KEY_B);
    expect((await other.get(`/v1/jobs/${removed}`)).status).toBe(410);
    // One submit in TRIM_EVERY trims (the chance that 100 all miss: 0.75^100).
    for (let i = 0; i < 100 && (await isIndexed(connection, layout, tenant, removed)); i++) {
      expect((await other.post('/v1/jobs', simulate({ durationMs: 10 }, { delayMs: 120_000 }))).status).toBe(202);
    }
    expect(await isIndexed(connection, layout, tenant, removed)).toBe(false);
    expect((await other.get(`/v1/jobs/${removed}`)).status).toBe(404);
    for (const id of alive) expect((await other.get(`/v1/jobs/${id}`)).status).toBe(200);
  });

  it('when TOMBSTONE_TTL_SECONDS is shorter than the retention, then the API refuses to start and says why', async () => {
    const refused = await startApi({ ...env, COMPLETED_RETENTION_SECONDS: '120' }, { readyTimeoutMs: 10_000 }).then(
      async (p) => {
        await p.stop();
        return null;
      },
      (err: Error) => err.message,
    );
    expect(refused).toMatch(/exited \(code 1/);
    expect(refused).toMatch(/TOMBSTONE_TTL_SECONDS: must be at least the longest retention of finished jobs \(120 s\)/);
  });
});
