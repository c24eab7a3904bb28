import { createJobReader, createRedisConnection, keysFor, loadConfig, type RedisConnection } from '@longhaul/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../../../../tests/support/redis.ts';
import { createBacklogQuota } from './backlog-quota.ts';

describe('backlog quota against a real Redis', () => {
  const prefix = uniquePrefix();
  const keys = keysFor(prefix);
  let redis: RedisConnection;

  beforeAll(async () => {
    redis = createRedisConnection(redisUrl(), 'producer', { commandTimeoutMs: 1_000 });
    if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
  });
  afterAll(async () => {
    await redis.quit();
    await cleanupPrefix(redisUrl(), prefix);
  });

  const quotaOf = (quota: number, settleMs = 0) => {
    const config = loadConfig({ REDIS_URL: redisUrl(), QUEUE_PREFIX: prefix }, 'worker');
    const reader = createJobReader({ redis, keys, retention: config.retention });
    return createBacklogQuota({ redis, reader, prefix, quota, settleMs });
  };
  /** A job as BullMQ leaves it: finished (`finishedOn`), or waiting. */
  const writeJob = (id: string, finished: boolean) =>
    redis.hset(keys.job('analyses', id), {
      name: 'simulate',
      timestamp: '1',
      ...(finished ? { finishedOn: '2' } : {}),
    });

  it('when a tenant is at its quota, then the next reservation answers 429 backlog_quota_exceeded; another tenant is unaffected', async () => {
    const quota = quotaOf(2, 60_000);
    await quota.reserve('t1', 'job_a');
    await quota.reserve('t1', 'job_b');
    await expect(quota.reserve('t1', 'job_c')).rejects.toMatchObject({ status: 429, code: 'backlog_quota_exceeded' });
    // The same id again (an idempotent replay) is not a new job.
    await expect(quota.reserve('t1', 'job_a')).resolves.toBeUndefined();
    await expect(quota.reserve('t2', 'job_d')).resolves.toBeUndefined();
  });

  it('when jobs in the set have finished or vanished, then a full set is repaired and the reservation goes through', async () => {
    const quota = quotaOf(2);
    await writeJob('job_e', true);
    await writeJob('job_f', false);
    await writeJob('job_g', false);
    await quota.reserve('t3', 'job_e');
    await quota.reserve('t3', 'job_f');
    await quota.reserve('t3', 'job_g'); // job_e finished: repaired away
    await expect(quota.reserve('t3', 'job_h')).rejects.toMatchObject({ status: 429 });
    await writeJob('job_f', true);
    await quota.release('t3', 'job_g');
    await expect(quota.reserve('t3', 'job_h')).resolves.toBeUndefined();
  });

  it('when the quota is 0, then nothing is counted', async () => {
    const quota = quotaOf(0);
    for (let i = 0; i < 5; i++) await quota.reserve('t4', `job_${i}`);
    expect(await redis.exists(`${prefix}:lh:tenant:t4:backlog`)).toBe(0);
  });
});
