import {
  createJobRunStore,
  createLogger,
  createRedisConnection,
  decodeFailure,
  getContract,
  type JobData,
  loadConfig,
  QUEUES,
  type RedisConnection,
} from '@longhaul/shared';
import { type Job, Queue, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../../../tests/support/redis.ts';
import { waitFor } from '../../../tests/support/wait.ts';
import { type Analysis, type AnalysisContext, defineAnalysis } from './define-analysis.ts';
import { ABORT, createProcessor } from './run-job.ts';

const simulate = getContract('simulate');
/** The last percent the `chatty` analysis reported. */
let chattyLast = 0;

/** Waits until the attempt's signal is aborted, then rejects with its reason. */
async function untilAborted(signal: AbortSignal): Promise<never> {
  signal.throwIfAborted();
  return new Promise((_resolve, reject) => {
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

/** The result every analysis below returns. */
const done = (ctx: AnalysisContext) => ({
  steps: 1,
  attempt: ctx.attempt,
  resumedFromStep: 0,
  elapsedMs: 0,
  payload: '',
});

const implementations: Record<string, Analysis> = {
  /** Stops as soon as its signal is aborted, whenever that is, with the reason. */
  watchful: defineAnalysis({
    ...simulate,
    async run(_input, ctx) {
      await untilAborted(ctx.signal);
      return done(ctx);
    },
  }),
  /** Reports 10 % at once; then returns at once (`durationMs` 0) or waits for its signal. */
  reporting: defineAnalysis({
    ...simulate,
    async run(input, ctx) {
      ctx.progress(10, 'running', 'first');
      if (input.durationMs > 0) await untilAborted(ctx.signal);
      return done(ctx);
    },
  }),
  /** Reports a rising percent in one step every 10 ms for `durationMs`, then returns. */
  chatty: defineAnalysis({
    ...simulate,
    async run(input, ctx) {
      const started = Date.now();
      let percent = 0;
      while (Date.now() - started < input.durationMs) {
        percent = Math.min(99, percent + 1);
        ctx.progress(percent, 'running');
        chattyLast = percent;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return done(ctx);
    },
  }),
};

/**
 * The processor's own way in for cancels and the shutdown (BullMQ makes no signal for it), with a
 * Worker in manual mode, so the test calls the processor exactly when it wants to.
 */
describe('the processor: cancels, the shutdown and held progress (real Redis and BullMQ)', () => {
  const prefix = uniquePrefix();
  const config = loadConfig({ REDIS_URL: redisUrl(), QUEUE_PREFIX: prefix }, 'worker');
  const token = 'test-token';
  let connection: RedisConnection;
  let queue: Queue<JobData>;
  let worker: Worker<JobData>;
  let processor: ReturnType<typeof createProcessor>;

  beforeAll(() => {
    connection = createRedisConnection(redisUrl(), 'worker');
    queue = new Queue<JobData>(QUEUES.analyses, { connection, prefix });
    worker = new Worker<JobData>(QUEUES.analyses, null, { connection, prefix, autorun: false });
    const log = createLogger({ name: 't', level: 'silent', pretty: false });
    const store = createJobRunStore({ redis: connection, prefix });
    processor = createProcessor({ config, log, store, implementations });
  });
  afterAll(async () => {
    await worker.close();
    await queue.close();
    await connection.quit();
    await cleanupPrefix(redisUrl(), prefix);
  });

  /** Adds a job and takes it as a worker would (jobs an earlier test handed back are dropped first). */
  async function taken(analysis = 'watchful', durationMs = 1): Promise<Job<JobData>> {
    await queue.drain();
    await queue.add(analysis, { tenant: 'a', input: { durationMs } });
    const job = (await worker.getNextJob(token, { block: false })) as Job<JobData> | undefined;
    if (!job?.id) throw new Error('nothing taken');
    return job;
  }

  it('when a cancel arrives while an attempt is still starting, then the attempt ends cancelled as soon as it can abort', async () => {
    const job = await taken();
    const attempt = processor.process(job, token);
    // Its start is still on its way to Redis: the attempt has no signal yet.
    expect(processor.attemptOf(job.id ?? '')).toEqual({ analysis: job.name, attempt: 1 });
    expect(processor.cancel(job.id ?? '', ABORT.cancel)).toBe(true);
    const err = await attempt.catch((e: unknown) => e);
    expect(decodeFailure((err as Error).message).code).toBe('cancelled');
  });

  it('when the shutdown reaches a running attempt, then it aborts with the shutdown reason; a job not running here cannot be cancelled', async () => {
    const [first, second] = [await taken(), await taken()];
    const attempts = [first, second].map((job) => processor.process(job, token).catch((e: unknown) => e));
    processor.cancelAll(ABORT.shutdown);
    // Handed back to the queue untouched: BullMQ's WaitingError, no attempt spent.
    for (const err of await Promise.all(attempts)) expect((err as Error).name).toBe('WaitingError');
    expect(processor.cancel(first.id ?? '', ABORT.cancel)).toBe(false);
    expect(processor.cancel('no-such-job', ABORT.cancel)).toBe(false);
  });

  it('when a job reports progress and ends within its first interval, then no progress is written; when it runs on, then its held progress is', async () => {
    const quick = await taken('reporting', 0);
    await processor.process(quick, token);
    const running = await taken('reporting', 1);
    const attempt = processor.process(running, token).catch((e: unknown) => e);
    await waitFor(
      async () => ((await queue.getJob(running.id ?? ''))?.progress as { percent?: number })?.percent === 10,
      {
        what: 'the held progress of the job that runs on',
      },
    );
    expect((await queue.getJob(running.id ?? ''))?.progress).toEqual({
      percent: 10,
      step: 'running',
      message: 'first',
    });
    // Well past the quick job's hold, which ended with the job: it never wrote its progress.
    expect((await queue.getJob(quick.id ?? ''))?.progress).toBe(0);
    processor.cancel(running.id ?? '', ABORT.cancel);
    await attempt;
  });

  it('when a job reports progress within one step many times a second, then at most one write a second reaches Redis, and the last report is written', async () => {
    const job = await taken('chatty', 2_500);
    const started = Date.now();
    await processor.process(job, token);
    const seconds = (Date.now() - started) / 1000;
    const events = (await connection.xrange(`${prefix}:${QUEUES.analyses}:events`, '-', '+')) as [string, string[]][];
    const progress = events
      .filter(([, f]) => f[1] === 'progress' && f[f.indexOf('jobId') + 1] === job.id)
      .map(([, f]) => JSON.parse(f[f.indexOf('data') + 1] ?? 'null') as { percent: number });
    // The held first write, one a second after it, and the last report at the end: a slower
    // machine reports less often, never more. At 200 ms, this job wrote about 13.
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(progress.length).toBeLessThanOrEqual(Math.ceil(seconds) + 2);
    expect(progress.at(-1)?.percent).toBe(chattyLast);
    expect((await queue.getJob(job.id ?? ''))?.progress).toMatchObject({ percent: chattyLast });
  });
});
