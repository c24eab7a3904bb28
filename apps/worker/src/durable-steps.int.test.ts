import {
  createJobReads,
  createJobRunStore,
  createLogger,
  jobData,
  QUEUES,
  stepResultField,
  toJobView,
} from '@longhaul/shared';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../../../tests/support/redis.ts';
import { createDurableSteps } from './durable-steps.ts';
import { PermanentError } from './errors/permanent-error.ts';

const RETENTION = {
  completedSeconds: 86_400,
  completedCount: 100,
  failedSeconds: 86_400,
  failedCount: 100,
  tombstoneSeconds: 86_400,
};

describe('durable steps against a real Redis and a real BullMQ job', () => {
  const prefix = uniquePrefix();
  const log = createLogger({ name: 'test', level: 'silent', pretty: false });
  let redis: Redis;
  let queue: Queue;
  let store: ReturnType<typeof createJobRunStore>;
  let reads: ReturnType<typeof createJobReads>;
  let n = 0;

  beforeAll(() => {
    redis = new Redis(redisUrl());
    queue = new Queue(QUEUES.analyses, { connection: redis, prefix });
    store = createJobRunStore({ redis, prefix });
    reads = createJobReads({ redis, prefix });
  });
  afterAll(async () => {
    await queue.close();
    redis.disconnect();
    await cleanupPrefix(redisUrl(), prefix);
  });

  async function newJob(): Promise<string> {
    const id = `job_steps_${++n}`;
    await queue.add('simulate', jobData('t1', { durationMs: 0 }), { jobId: id });
    return id;
  }

  async function attempt(id: string, run: number, maxResultBytes = 1024 * 1024) {
    const start = await store.start(id, 't1', 500);
    return {
      start,
      step: createDurableSteps({ store, jobId: id, attempt: run, stored: start.steps, maxResultBytes, log }),
    };
  }

  it('when an attempt completed steps, then the next attempt gets their results back without running them', async () => {
    const id = await newJob();
    const ran: string[] = [];
    const first = await attempt(id, 1);
    const body = (name: string, value: unknown) => () => {
      ran.push(name);
      return value;
    };
    expect(await first.step('a', body('a', { rows: 3, at: new Date(0) }))).toEqual({
      rows: 3,
      at: '1970-01-01T00:00:00.000Z',
    });
    await first.step('b', body('b', [1, 2]));
    await expect(first.step('c', () => Promise.reject(new Error('transient')))).rejects.toThrow('transient');

    const second = await attempt(id, 2);
    expect([...second.start.steps.keys()]).toEqual(['a', 'b']);
    expect(await second.step('a', body('a again', null))).toEqual({ rows: 3, at: '1970-01-01T00:00:00.000Z' });
    expect(await second.step('b', body('b again', null))).toEqual([1, 2]);
    expect(await second.step('c', body('c', 'ok'))).toBe('ok');
    expect(ran).toEqual(['a', 'b', 'c']);

    const owned = await reads.snapshot('t1', id);
    if (owned.kind !== 'job') throw new Error(`expected the job, got ${owned.kind}`);
    const view = toJobView(owned.snapshot, RETENTION);
    expect(view.steps?.map((s) => [s.name, s.status, s.attempt])).toEqual([
      ['a', 'completed', 1],
      ['b', 'completed', 1],
      ['c', 'completed', 2],
    ]);
    expect(view.steps?.every((s) => s.finishedAt !== null && s.startedAt <= (s.finishedAt ?? ''))).toBe(true);
  });

  it('when a step is running or failed, then the job view says so with the attempt', async () => {
    const id = await newJob();
    const { step } = await attempt(id, 1);
    await expect(step('x', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    let release: () => void = () => undefined;
    let running: Promise<unknown> = Promise.resolve();
    // The body runs only once the step is stored as running.
    const entered = new Promise<void>((inside) => {
      running = step(
        'y',
        () =>
          new Promise<void>((resolve) => {
            release = resolve;
            inside();
          }),
      );
    });
    await entered;
    const owned = await reads.snapshot('t1', id);
    if (owned.kind !== 'job') throw new Error('expected the job');
    expect(toJobView(owned.snapshot, RETENTION).steps?.map((s) => [s.name, s.status, s.attempt, s.finishedAt])).toEqual(
      [
        ['x', 'failed', 1, expect.any(String)],
        ['y', 'running', 1, null],
      ],
    );
    release();
    await running;
  });

  it('when two workers finish the same step, then the first stored result wins and both return it', async () => {
    const id = await newJob();
    const zombie = await attempt(id, 1);
    const next = await attempt(id, 2);
    expect(await next.step('s', () => 'from attempt 2')).toBe('from attempt 2');
    expect(await zombie.step('s', () => 'from attempt 1')).toBe('from attempt 2');
    expect(await redis.hget(`${prefix}:${QUEUES.analyses}:${id}`, stepResultField('s'))).toBe('"from attempt 2"');
  });

  it('when a step name repeats in one attempt, then the job fails permanently', async () => {
    const id = await newJob();
    const { step } = await attempt(id, 1);
    await step('once', () => 1);
    await expect(step('once', () => 2)).rejects.toBeInstanceOf(PermanentError);
    await expect(step('', () => 2)).rejects.toBeInstanceOf(PermanentError);
  });

  it('when a step result is over the cap, then the job fails permanently with result_too_large and nothing is stored', async () => {
    const id = await newJob();
    const { step } = await attempt(id, 1, 100);
    const err = await step('big', () => 'x'.repeat(200)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).code).toBe('result_too_large');
    expect((err as Error).message).toMatch(/STEP_RESULT_MAX_BYTES/);
    expect((await store.start(id, 't1', 500)).steps.size).toBe(0);
  });

  it('when the job is gone, then a step refuses to run its body', async () => {
    const id = await newJob();
    const { step } = await attempt(id, 1);
    await queue.remove(id);
    let ran = false;
    await expect(
      step('late', () => {
        ran = true;
      }),
    ).rejects.toThrow(/removed/);
    expect(ran).toBe(false);
    expect(await redis.exists(`${prefix}:${QUEUES.analyses}:${id}`)).toBe(0);
  });
});
