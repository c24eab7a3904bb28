import {
  createJobRunStore,
  createLogger,
  createRedisConnection,
  decodeFailure,
  getContract,
  type JobData,
  loadConfig,
  OWN_FIELDS,
  QUEUES,
  type RedisConnection,
} from '@longhaul/shared';
import { type Job, Queue, QueueEvents, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../../../tests/support/redis.ts';
import { waitFor } from '../../../tests/support/wait.ts';
import { type Analysis, defineAnalysis } from './define-analysis.ts';
import { ABORT, createProcessor } from './run-job.ts';

const simulate = getContract('simulate');
const started = new Set<string>();

/** Stand-in analyses, one per job name, each on the `simulate` contract. */
const implementations: Record<string, Analysis> = {
  oversized: defineAnalysis({
    ...simulate,
    async run(_input, ctx) {
      // An analysis that swallows the refusal still fails: the cap is not advisory.
      await ctx.checkpoint({ blob: 'x'.repeat(4096) }).catch(() => undefined);
      return { steps: 1, attempt: ctx.attempt, resumedFromStep: 0, elapsedMs: 0, payload: '' };
    },
  }),
  flaky: defineAnalysis({
    ...simulate,
    async run(_input, ctx) {
      await ctx.checkpoint({ attempt: ctx.attempt, restored: ctx.restored ?? null });
      throw new Error('transient trouble');
    },
  }),
  patient: defineAnalysis({
    ...simulate,
    async run(_input, ctx) {
      await ctx.checkpoint({ at: 'half way' });
      started.add(ctx.jobId);
      await new Promise((_resolve, reject) => {
        ctx.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
      });
      return { steps: 1, attempt: ctx.attempt, resumedFromStep: 0, elapsedMs: 0, payload: '' };
    },
  }),
};

describe('checkpoints: a size cap, and none kept by a job that ended (real Redis and BullMQ)', () => {
  const prefix = uniquePrefix();
  const config = loadConfig({ REDIS_URL: redisUrl(), QUEUE_PREFIX: prefix, CHECKPOINT_MAX_BYTES: '1024' }, 'worker');
  let connection: RedisConnection;
  let queue: Queue<JobData>;
  let events: QueueEvents;
  let worker: Worker<JobData>;
  let processor: ReturnType<typeof createProcessor>;
  const store = () => createJobRunStore({ redis: connection, prefix });

  beforeAll(async () => {
    connection = createRedisConnection(redisUrl(), 'worker');
    queue = new Queue<JobData>(QUEUES.analyses, { connection, prefix });
    events = new QueueEvents(QUEUES.analyses, { connection: connection.duplicate(), prefix });
    const log = createLogger({ name: 't', level: 'silent', pretty: false });
    processor = createProcessor({ config, log, store: store(), implementations });
    worker = new Worker<JobData>(QUEUES.analyses, processor.process, { connection, prefix, concurrency: 4 });
    await events.waitUntilReady();
  });
  afterAll(async () => {
    await worker.close();
    await events.close();
    await queue.close();
    await connection.quit();
    await cleanupPrefix(redisUrl(), prefix);
  });

  const add = (name: string, attempts = 1) =>
    queue.add(name, { tenant: 'a', input: { durationMs: 1 } }, { attempts, backoff: { type: 'fixed', delay: 10 } });
  const checkpointOf = (job: Job) =>
    connection.hget(store().layout.job(QUEUES.analyses, job.id ?? ''), OWN_FIELDS.checkpoint);
  const failedReason = async (job: Job) => {
    await job.waitUntilFinished(events).catch(() => undefined);
    return (await queue.getJob(job.id ?? ''))?.failedReason;
  };

  it('G25: when a checkpoint is over CHECKPOINT_MAX_BYTES, then the job fails for good, saying so, without a retry', async () => {
    const job = await add('oversized', 3);
    const failure = decodeFailure(await failedReason(job));
    expect(failure.code).toBe('checkpoint_too_large');
    expect(failure.message).toMatch(/CHECKPOINT_MAX_BYTES/);
    expect((await queue.getJob(job.id ?? ''))?.attemptsMade).toBe(1);
    expect(await checkpointOf(job)).toBeNull();
  });

  it('G25: when a job that checkpointed fails on its last attempt, then it keeps no checkpoint', async () => {
    const job = await add('flaky', 2);
    expect(await failedReason(job)).toMatch(/transient trouble/);
    expect(await checkpointOf(job)).toBeNull();
  });

  it('G25: when an active job that checkpointed is cancelled, then it fails as cancelled and keeps no checkpoint', async () => {
    const job = await add('patient', 3);
    await waitFor(async () => started.has(job.id ?? '') || undefined, { what: 'the job to checkpoint' });
    expect(await checkpointOf(job)).not.toBeNull();
    await connection.hset(store().layout.job(QUEUES.analyses, job.id ?? ''), OWN_FIELDS.cancelledAt, Date.now());
    expect(processor.cancel(job.id ?? '', ABORT.cancel)).toBe(true);
    expect(decodeFailure(await failedReason(job)).code).toBe('cancelled');
    expect(await checkpointOf(job)).toBeNull();
  });
});
