import {
  createLogger,
  createRedisConnection,
  decodeFailure,
  type JobData,
  layoutFor,
  loadConfig,
  OWN_FIELDS,
  QUEUES,
  type RedisConnection,
} from '@longhaul/shared';
import { Queue } from 'bullmq';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../../../tests/support/redis.ts';
import { waitFor } from '../../../tests/support/wait.ts';
import { implementations } from './implementations.ts';
import { createAnalysisWorker } from './worker.ts';

/**
 * A cancel's pub/sub message reaches only a connected subscriber. These tests set the cancel flag
 * as the cancel script does, without its message, as if the message had been published while the
 * worker's subscriber was away, and watch the worker find it.
 */
describe('cancels whose message the worker missed (real Redis, BullMQ and the analysis worker)', () => {
  const prefix = uniquePrefix();
  const config = loadConfig({ REDIS_URL: redisUrl(), QUEUE_PREFIX: prefix, WORKER_CONCURRENCY: '2' }, 'worker');
  const log = createLogger({ name: 't', level: 'silent', pretty: false });
  const subscriberName = `cancels-${prefix.replace(/\W/g, '')}`;
  let admin: RedisConnection;
  let queue: Queue<JobData>;
  let stop: (() => Promise<void>) | undefined;

  beforeAll(() => {
    admin = createRedisConnection(redisUrl(), 'worker');
    queue = new Queue<JobData>(QUEUES.analyses, { connection: admin, prefix });
  });
  afterEach(async () => {
    await stop?.();
    stop = undefined;
  });
  afterAll(async () => {
    await queue.close();
    await admin.quit();
    await cleanupPrefix(redisUrl(), prefix);
  });

  async function startWorker(cancelRecheckMs: number) {
    const connection = createRedisConnection(redisUrl(), 'worker');
    const subscriber = createRedisConnection(redisUrl(), 'worker', { name: subscriberName });
    const analysisWorker = createAnalysisWorker({
      config,
      log,
      connection,
      subscriber,
      implementations,
      cancelRecheckMs,
    });
    await analysisWorker.start();
    let drained: Promise<void> | undefined;
    const drain = (graceMs: number) => {
      drained ??= analysisWorker.drain(graceMs);
      return drained;
    };
    stop = async () => {
      await drain(5_000);
      await subscriber.quit();
      await connection.quit();
    };
    return { drain };
  }

  /** A job that runs for 30 s unless cancelled, once a worker holds it. */
  async function running(): Promise<string> {
    const job = await queue.add('simulate', { tenant: 'a', input: { durationMs: 30_000, steps: 1 } });
    const id = job.id as string;
    await waitFor(async () => (await queue.getJobState(id)) === 'active', {
      timeoutMs: 10_000,
      what: 'the job to run',
    });
    return id;
  }

  /** The cancel script's flag, without its message. */
  const flag = (id: string) =>
    admin.hset(layoutFor(prefix).job(QUEUES.analyses, id), OWN_FIELDS.cancelledAt, String(Date.now()));

  async function cancelledFailure(id: string): Promise<string> {
    await waitFor(async () => (await queue.getJobState(id)) === 'failed', {
      timeoutMs: 10_000,
      what: 'the job to end',
    });
    const job = await queue.getJob(id);
    return decodeFailure(job?.failedReason ?? '').code;
  }

  it('when a cancel flag is set and its message never comes, then the periodic read cancels the job', async () => {
    await startWorker(300);
    const id = await running();
    await flag(id);
    expect(await cancelledFailure(id)).toBe('cancelled');
  });

  it('when a cancel arrives while the worker drains for a shutdown, then the job is cancelled, not run to its end', async () => {
    // No periodic read: the cancel's message alone must reach the draining worker.
    const worker = await startWorker(3_600_000);
    const id = await running();
    const drained = worker.drain(20_000);
    // As the cancel script does: the flag, then the message.
    await flag(id);
    await admin.publish(layoutFor(prefix).cancelChannel, id);
    expect(await cancelledFailure(id)).toBe('cancelled');
    await drained;
  });

  it('when the subscriber reconnects, then it reads the flags of the running jobs and cancels those set', async () => {
    // No periodic read within the test: only the reconnection can find the flag.
    await startWorker(3_600_000);
    const id = await running();
    await flag(id);
    const clients = String(await admin.call('CLIENT', 'LIST'))
      .split('\n')
      .filter((line) => line.includes(` name=${subscriberName} `));
    expect(clients).toHaveLength(1);
    const clientId = /\bid=(\d+)/.exec(clients[0] ?? '')?.[1] as string;
    await admin.call('CLIENT', 'KILL', 'ID', clientId);
    expect(await cancelledFailure(id)).toBe('cancelled');
  });
});
