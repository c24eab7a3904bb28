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
import { afterAll, afterEach, beforeAll } from 'vitest';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../../../tests/support/redis.ts';
import { waitFor } from '../../../tests/support/wait.ts';
import { implementations } from './implementations.ts';
import { createAnalysisWorker } from './worker.ts';

/**
 * For integration tests of the analysis worker (real Redis, BullMQ and the worker): a prefix of
 * its own, an admin connection and the analyses queue on it, workers started on it (drained and
 * closed after each test), and a long job to keep one busy. Call it inside a `describe`: it
 * registers its own hooks.
 */
export function analysisWorkerBed(concurrency: number) {
  const prefix = uniquePrefix();
  const layout = layoutFor(prefix);
  const config = loadConfig(
    { REDIS_URL: redisUrl(), QUEUE_PREFIX: prefix, WORKER_CONCURRENCY: String(concurrency) },
    'worker',
  );
  const log = createLogger({ name: 't', level: 'silent', pretty: false });
  let admin: RedisConnection | undefined;
  let queue: Queue<JobData> | undefined;
  let stops: (() => Promise<void>)[] = [];

  beforeAll(() => {
    admin = createRedisConnection(redisUrl(), 'worker');
    queue = new Queue<JobData>(QUEUES.analyses, { connection: admin, prefix });
  });
  afterEach(async () => {
    await Promise.all(stops.map((stop) => stop()));
    stops = [];
  });
  afterAll(async () => {
    await queue?.close();
    await admin?.quit();
    await cleanupPrefix(redisUrl(), prefix);
  });

  const bed = {
    prefix,
    layout,
    get admin(): RedisConnection {
      if (!admin) throw new Error('the bed is not open yet (use it inside a test)');
      return admin;
    },
    get queue(): Queue<JobData> {
      if (!queue) throw new Error('the bed is not open yet (use it inside a test)');
      return queue;
    },

    /** A started analysis worker; `drain` starts its drain once, and the test's end awaits it. */
    async startWorker({ cancelRecheckMs, subscriberName }: { cancelRecheckMs?: number; subscriberName?: string } = {}) {
      const connection = createRedisConnection(redisUrl(), 'worker');
      const subscriber = createRedisConnection(redisUrl(), 'worker', subscriberName ? { name: subscriberName } : {});
      const worker = createAnalysisWorker({
        config,
        log,
        connection,
        subscriber,
        implementations,
        ...(cancelRecheckMs === undefined ? {} : { cancelRecheckMs }),
      });
      await worker.start();
      let drained: Promise<void> | undefined;
      const drain = (graceMs: number) => {
        drained ??= worker.drain(graceMs);
        return drained;
      };
      stops.push(async () => {
        await drain(5_000);
        await subscriber.quit();
        await connection.quit();
      });
      return { drain };
    },

    /** A job that runs for 30 s unless cancelled, once a worker holds it. */
    async running(): Promise<string> {
      const job = await bed.queue.add('simulate', { tenant: 'a', input: { durationMs: 30_000, steps: 1 } });
      const id = job.id as string;
      await waitFor(async () => (await bed.queue.getJobState(id)) === 'active', {
        timeoutMs: 10_000,
        what: 'the job to run',
      });
      return id;
    },

    /** The cancel script's flag, without its message. */
    flag: (id: string) => bed.admin.hset(layout.job(QUEUES.analyses, id), OWN_FIELDS.cancelledAt, String(Date.now())),
  };
  return bed;
}
