import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../../../../tests/support/redis.ts';
import { loadConfig } from '../config.ts';
import { newJobId } from '../ids.ts';
import { createRedisConnection, type RedisConnection } from '../redis.ts';
import { getContract } from '../registry.ts';
import { QUEUES } from './bullmq-layout.ts';
import { createJobRunStore, createJobStore, type JobRunStore, type JobStore } from './job-store.ts';

describe('the per-tenant backlog quota (real Redis)', () => {
  const prefix = uniquePrefix();
  let redis: RedisConnection;
  let queue: Queue;
  let store: JobStore;
  let runs: JobRunStore;

  beforeAll(() => {
    redis = createRedisConnection(redisUrl(), 'worker');
    queue = new Queue(QUEUES.analyses, { connection: redis, prefix });
    const config = loadConfig({ REDIS_URL: redisUrl(), QUEUE_PREFIX: prefix }, 'worker');
    store = createJobStore({ redis, queue, config, backlogQuota: 2 });
    runs = createJobRunStore({ redis, prefix });
  });
  afterAll(async () => {
    await queue.close();
    await redis.quit();
    await cleanupPrefix(redisUrl(), prefix);
  });

  /** Admits and, when admitted, adds one job, as the API does; a refused job is never added. */
  async function submit(tenant: string) {
    const id = newJobId();
    const submission = { tenant, id, contract: getContract('simulate'), input: { durationMs: 1 } };
    const { admission, accepted } = await store.submit(submission, undefined, 10);
    expect(accepted?.id).toBe(admission.kind === 'new' ? id : undefined);
    expect(await redis.exists(store.layout.job(QUEUES.analyses, id))).toBe(admission.kind === 'new' ? 1 : 0);
    return { id, kind: admission.kind };
  }

  it('when a job completes or fails for good, then its place in the backlog is free at once, and not before', async () => {
    const first = await submit('a');
    const second = await submit('a');
    expect((await submit('a')).kind).toBe('backlog_full');

    // An attempt to be retried, or one that waits for its children, keeps its place.
    await runs.finish('a', first.id, { ended: false, stillActive: true }, { done: false });
    await runs.finish('a', second.id, { ended: true, stillActive: false });
    expect((await submit('a')).kind).toBe('backlog_full');

    // Its job hash does not say it finished yet (BullMQ's completion follows): the quota frees
    // the place from the attempt's end alone, with no entry left for a later admission to find.
    await runs.finish('a', first.id, { ended: true, stillActive: true }, { done: true });
    expect(await redis.zscore(store.layout.backlog('a'), first.id)).toBeNull();
    expect((await submit('a')).kind).toBe('new');
    expect((await submit('a')).kind).toBe('backlog_full');
  });
});
