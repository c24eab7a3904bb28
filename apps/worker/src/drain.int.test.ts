import {
  createLogger,
  createRedisConnection,
  type JobData,
  layoutFor,
  loadConfig,
  OWN_FIELDS,
  QUEUES,
  type RedisConnection,
} from '@longhaul/shared';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../../../tests/support/redis.ts';
import { waitFor } from '../../../tests/support/wait.ts';
import { implementations } from './implementations.ts';
import { createAnalysisWorker } from './worker.ts';

/**
 * A worker that drains for a shutdown keeps running its attempts for the grace period. Its slots in
 * the fair-share dispatcher must then be those attempts only: the other workers' free slots count
 * in full, and none is handed out for it to take.
 */
describe('the fair-share slots of a draining worker (real Redis, BullMQ and the analysis worker)', () => {
  const prefix = uniquePrefix();
  const config = loadConfig({ REDIS_URL: redisUrl(), QUEUE_PREFIX: prefix, WORKER_CONCURRENCY: '3' }, 'worker');
  const log = createLogger({ name: 't', level: 'silent', pretty: false });
  const layout = layoutFor(prefix);
  const workersKey = `${prefix}:lh:fair:workers`;
  const slotsKey = `${prefix}:lh:fair:slots`;
  let admin: RedisConnection;
  let queue: Queue<JobData>;

  beforeAll(() => {
    admin = createRedisConnection(redisUrl(), 'worker');
    queue = new Queue<JobData>(QUEUES.analyses, { connection: admin, prefix });
  });
  afterAll(async () => {
    await queue.close();
    await admin.quit();
    await cleanupPrefix(redisUrl(), prefix);
  });

  /** This worker's registered slots (the only worker on the prefix), or null once it left. */
  async function registered(): Promise<number | null> {
    const entries = Object.values(await admin.hgetall(workersKey));
    return entries.length === 0 ? null : Number(String(entries[0]).split(':')[0]);
  }

  it('when a worker drains with one attempt running, then its slots are that one attempt until it ends, and none after', async () => {
    const connection = createRedisConnection(redisUrl(), 'worker');
    const subscriber = createRedisConnection(redisUrl(), 'worker');
    const worker = createAnalysisWorker({ config, log, connection, subscriber, implementations });
    await worker.start();
    try {
      expect(await registered()).toBe(3);
      const job = await queue.add('simulate', { tenant: 'a', input: { durationMs: 30_000, steps: 1 } });
      const id = job.id as string;
      await waitFor(async () => (await queue.getJobState(id)) === 'active', {
        timeoutMs: 10_000,
        what: 'the job to run',
      });

      const drained = worker.drain(20_000);
      await waitFor(async () => (await registered()) === 1, { timeoutMs: 5_000, what: 'slots of the running attempt' });
      expect(Number(await admin.get(slotsKey))).toBe(1);

      // The attempt ends (cancelled, as the cancel script does it): the worker leaves the dispatcher.
      await admin.hset(layout.job(QUEUES.analyses, id), OWN_FIELDS.cancelledAt, String(Date.now()));
      await admin.publish(layout.cancelChannel, id);
      await drained;
      expect(await registered()).toBeNull();
    } finally {
      await subscriber.quit();
      await connection.quit();
    }
  });
});
