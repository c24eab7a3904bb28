import { Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupPrefix, redisUrl, uniquePrefix, watchCommands } from '../../../../tests/support/redis.ts';
import { startRedisServer } from '../../../../tests/support/redis-server.ts';
import { waitFor } from '../../../../tests/support/wait.ts';
import { loadConfig } from '../config.ts';
import { newJobId } from '../ids.ts';
import { createRedisConnection, type RedisConnection } from '../redis.ts';
import { getContract } from '../registry.ts';
import {
  addGate,
  addScript,
  addToMulti,
  addWith,
  addWithOnMulti,
  BULL_LUA,
  completionScript,
  execQueueMulti,
  gatedAddWith,
  layoutFor,
  NO_RESULT_LENGTH,
  OWN_FIELDS,
  QUEUES,
  queueMulti,
  rideOnCompletion,
  SOLO_BAND,
  STATUS_FIELDS,
  startOnTake,
  takeScriptOf,
} from './bullmq-layout.ts';
import { createChildRunStore } from './job-children.ts';
import { createJobStore, DEFAULT_PRIORITY, type JobData, jobData } from './job-store.ts';
import { indexOnMulti, isIndexed, listIndexed } from './tenant-index.ts';

/**
 * The contract between `bullmq-layout.ts` and the pinned BullMQ: for each state a job can be in,
 * the keys and fields the job store reads are where it expects them, with a real Queue and Worker.
 * A BullMQ upgrade that moves any of them fails here first.
 */

/** An add script of the test's: it records each job it ran after, and answers what it was given. */
const RECORD = addScript(
  'test_record',
  `redis.call('RPUSH', KEYS[1], added)
return { added, KEYS[1], ARGV[1], ARGV[2], #ARGV }`,
);

/** A gate of the test's: it records what it was given, and lets the add pass when told to. */
const GATE = addGate(
  'test_gate',
  1,
  `redis.call('RPUSH', KEYS[1], ARGV[1])
if ARGV[1] ~= 'pass' then return false, { 'refused', #ARGV } end
return true, { 'passed', #ARGV }, 'handed ' .. ARGV[2]`,
);

/** An add script of the test's: it answers what a gate handed it, and what it was given. */
const HANDED = addScript('test_handed', `return { added, handed or 'nothing', KEYS[1], ARGV[1], #ARGV }`);

/**
 * A completion script of the test's: it records the job's id, whether BullMQ had ended the job
 * when it ran, and how many arguments it was given.
 */
const RIDE = completionScript(
  'test_ride',
  2,
  `if ARGV[1] == 'boom' then error('a failing end script') end
redis.call('RPUSH', KEYS[1], ARGV[1], redis.call('HEXISTS', KEYS[2], 'finishedOn'), #ARGV)`,
);

/** A take script of the test's: it answers what it was given, and what it saw of the job. */
const TAKE = takeScriptOf(
  'test_take',
  `return { ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], KEYS[1], redis.call('HEXISTS', KEYS[1], 'processedOn'), taken_job['name'], taken_job['ats'] }`,
);

/** What the test worker does with a job, by its input's `mode`. */
type Mode = 'ok' | 'none' | 'gate' | 'fail' | 'retry' | 'ride' | 'ride-retry' | 'ride-boom' | 'ride-nul';

interface StreamEntry {
  event: string;
  jobId?: string;
  [field: string]: string | undefined;
}

describe('BullMQ layout contract (real Redis, the pinned BullMQ)', () => {
  const prefix = uniquePrefix();
  const layout = layoutFor(prefix);
  const analyses = QUEUES.analyses;
  const config = loadConfig(
    { REDIS_URL: redisUrl(), QUEUE_PREFIX: prefix, WEBHOOK_SECRETS: 'a:whsec-0123456789abcdef' },
    'worker',
  );
  let connection: RedisConnection;
  let queue: Queue<JobData>;
  let webhooks: Queue;
  let worker: Worker<JobData> | undefined;
  let store: ReturnType<typeof createJobStore>;
  const gates = new Map<string, () => void>();
  /** The rides that went alone (`rideOnCompletion`), by job id. */
  const alone: string[] = [];
  const rides = `${prefix}:test:rides`;

  beforeAll(() => {
    connection = createRedisConnection(redisUrl(), 'worker');
    queue = new Queue<JobData>(analyses, { connection, prefix });
    webhooks = new Queue(QUEUES.webhooks, { connection, prefix });
    store = createJobStore({ redis: connection, queue, webhooks, config });
  });
  afterAll(async () => {
    // A failed test may leave a job held: let it go, or closing the worker waits for it.
    for (const release of gates.values()) release();
    await worker?.close();
    await Promise.all([queue.close(), webhooks.close()]);
    await connection.quit();
    await cleanupPrefix(redisUrl(), prefix);
  });

  /** Starts the test worker once: it runs jobs as their `mode` says. */
  function startWorker(): Worker<JobData> {
    worker ??= new Worker<JobData>(
      analyses,
      async (job) => {
        const { mode } = job.data.input as { mode: Mode };
        if (mode === 'gate') await new Promise<void>((resolve) => gates.set(job.id ?? '', resolve));
        if (mode === 'fail') throw new UnrecoverableError('failed on purpose');
        if (mode === 'retry' && job.attemptsMade === 0) throw new Error('transient, retried later');
        await job.updateProgress({ percent: 100, step: 'done' });
        // As the processor returns: BullMQ ends the job in this turn of the event loop.
        if (mode === 'ride' || mode === 'ride-retry' || mode === 'ride-boom' || mode === 'ride-nul') {
          const id = job.id ?? '';
          const given = mode === 'ride-boom' ? 'boom' : mode === 'ride-nul' ? `${id}\0more` : id;
          rideOnCompletion(connection, RIDE, id, [rides, layout.job(analyses, id)], [given], () => alone.push(id));
        }
        if (mode === 'ride-retry' && job.attemptsMade === 0) throw new Error('transient, retried later');
        return mode === 'none' ? undefined : { encoding: 'json', value: { ok: true } };
      },
      { connection, prefix, concurrency: 4 },
    );
    return worker;
  }

  const hash = (id: string) => connection.hgetall(layout.job(analyses, id));

  async function accept(mode: Mode, extra: { delayMs?: number; priority?: number; webhookUrl?: string } = {}) {
    const id = newJobId();
    await store.accept({ tenant: 'a', id, contract: getContract('simulate'), input: { mode }, ...extra });
    return id;
  }

  async function events(id: string): Promise<StreamEntry[]> {
    const entries = (await connection.xrange(layout.events(analyses), '-', '+')) as [string, string[]][];
    return entries
      .map(([, fields]) => {
        const entry: Record<string, string> = {};
        for (let i = 0; i + 1 < fields.length; i += 2) entry[fields[i] as string] = fields[i + 1] as string;
        return entry as StreamEntry;
      })
      .filter((e) => e.jobId === id);
  }

  it('when a job is accepted, then it is a prioritized job hash whose data starts with its tenant and whose opts carry attempts and priority', async () => {
    const id = await accept('ok', { priority: 7 });
    expect(await connection.zscore(layout.prioritized(analyses), id)).not.toBeNull();
    const fields = await hash(id);
    expect(fields.data?.startsWith('{"tenant":"a"')).toBe(true);
    expect(JSON.parse(fields.opts ?? '{}')).toMatchObject({
      attempts: getContract('simulate').defaults.attempts,
      priority: 7,
    });
    expect(fields.name).toBe('simulate');
    expect(Number(fields.timestamp)).toBeGreaterThan(0);
    expect(Object.keys(fields)).toEqual(expect.arrayContaining(['name', 'data', 'opts', 'timestamp', 'priority']));
    // Our reads name only fields BullMQ writes or we add.
    const own = Object.values(OWN_FIELDS) as string[];
    expect(STATUS_FIELDS.filter((f) => own.includes(f))).toEqual([
      OWN_FIELDS.cancelledAt,
      OWN_FIELDS.webhookUrl,
      OWN_FIELDS.steps,
    ]);
    expect(await isIndexed(connection, layout, 'a', id)).toBe(true);
    expect((await events(id)).map((e) => e.event)).toContain('added');
    const owned = await store.snapshot('a', id);
    expect(owned.kind === 'job' && owned.snapshot.job).toMatchObject({
      name: 'simulate',
      priority: 7,
      hasResult: false,
    });
    expect(await store.snapshot('b', id)).toEqual({ kind: 'none' });
  });

  it('when a job is added without a priority, then it is in the wait list with a `waiting` event', async () => {
    const id = newJobId();
    const multi = await queueMulti(queue, connection);
    await addToMulti(multi, queue, { name: 'simulate', data: jobData('a', { mode: 'ok' }), opts: {}, id });
    await multi.exec();
    expect(await connection.lrange(layout.wait(analyses), 0, -1)).toContain(id);
    expect((await events(id)).map((e) => e.event)).toEqual(expect.arrayContaining(['added', 'waiting']));
    const owned = await store.snapshot('a', id);
    expect(owned.kind === 'job' && owned.snapshot.job.priority).toBe(DEFAULT_PRIORITY);
  });

  it('when jobs of each kind are added in a MULTI on a connection BullMQ never used, then each is where BullMQ puts it, and that connection has only the add scripts and ours', async () => {
    // queueMulti copies BullMQ's add scripts onto the connection the MULTI runs on: a BullMQ
    // upgrade that renames them, or adds with another one, fails here.
    const fresh = createRedisConnection(redisUrl(), 'worker') as Redis;
    try {
      const [plain, prioritized, delayed, parent] = [newJobId(), newJobId(), newJobId(), newJobId()];
      const multi = await queueMulti(queue, fresh);
      const add = (id: string, opts: { priority?: number; delay?: number }, link = {}) =>
        addToMulti(multi, queue, { name: 'simulate', data: jobData('a', { mode: 'ok' }), opts, id }, link);
      await add(plain, {});
      await add(prioritized, { priority: 5 });
      await add(delayed, { delay: 600_000 });
      await add(parent, {}, { asParent: true });
      for (const [err] of (await multi.exec()) ?? []) if (err) throw err;
      expect(await connection.lpos(layout.wait(analyses), plain)).not.toBeNull();
      expect(await connection.zscore(layout.prioritized(analyses), prioritized)).not.toBeNull();
      expect(await connection.zscore(layout.delayed(analyses), delayed)).not.toBeNull();
      expect(await connection.zscore(layout.waitingChildren(analyses), parent)).not.toBeNull();
      expect(Object.keys(fresh.scriptsSet).filter((name) => !name.startsWith('lh_'))).toEqual([
        expect.stringMatching(/^addStandardJob:/),
        expect.stringMatching(/^addPrioritizedJob:/),
        expect.stringMatching(/^addDelayedJob:/),
        expect.stringMatching(/^addParentJob:/),
      ]);
      for (const id of [plain, prioritized, delayed, parent]) await new Job(queue, '', {}, {}, id).remove();
    } finally {
      await fresh.quit();
    }
  });

  it('when jobs of each kind are added with an add script of ours, then each is where BullMQ puts it and ours runs after it in the same script, with its own key and arguments; a refused add runs none of ours', async () => {
    const fresh = createRedisConnection(redisUrl(), 'worker') as Redis;
    const key = `${prefix}:lh-test-record`;
    try {
      const [plain, prioritized, delayed, parent, inMulti] = [
        newJobId(),
        newJobId(),
        newJobId(),
        newJobId(),
        newJobId(),
      ];
      const job = (id: string, opts: { priority?: number; delay?: number }) => ({
        name: 'simulate',
        data: jobData('a', { mode: 'ok' }),
        opts,
        id,
      });
      expect(await addWith(fresh, queue, job(plain, {}), {}, RECORD, key, 'one', 'two')).toEqual([
        plain,
        key,
        'one',
        'two',
        2,
      ]);
      await addWith(fresh, queue, job(prioritized, { priority: 5 }), {}, RECORD, key, 'x', 'y');
      await addWith(fresh, queue, job(delayed, { delay: 600_000 }), {}, RECORD, key, 'x', 'y');
      await addWith(fresh, queue, job(parent, {}), { asParent: true }, RECORD, key, 'x', 'y');
      const multi = await queueMulti(queue, fresh);
      await addWithOnMulti(multi, queue, job(inMulti, { priority: 5 }), {}, RECORD, key, 'three', 'four');
      expect(await multi.exec()).toEqual([[null, [inMulti, key, 'three', 'four', 2]]]);
      expect(await connection.lpos(layout.wait(analyses), plain)).not.toBeNull();
      expect(await connection.zscore(layout.prioritized(analyses), prioritized)).not.toBeNull();
      expect(await connection.zscore(layout.delayed(analyses), delayed)).not.toBeNull();
      expect(await connection.zscore(layout.waitingChildren(analyses), parent)).not.toBeNull();
      expect((await events(plain)).map((e) => e.event)).toEqual(expect.arrayContaining(['added', 'waiting']));
      expect(await connection.lrange(key, 0, -1)).toEqual([plain, prioritized, delayed, parent, inMulti]);

      // A child of a parent that does not exist: BullMQ refuses it, and nothing of ours runs.
      const orphan = newJobId();
      await expect(
        addWith(fresh, queue, job(orphan, {}), { parent: { queue, id: 'no-such-parent' } }, RECORD, key, 'x', 'y'),
      ).rejects.toThrow(/BullMQ refused to add the job \(code -\d+\)/);
      expect(await connection.llen(key)).toBe(5);
      expect(await connection.exists(layout.job(analyses, orphan))).toBe(0);
      for (const id of [plain, prioritized, delayed, parent, inMulti]) await new Job(queue, '', {}, {}, id).remove();
    } finally {
      await fresh.quit();
    }
  });

  it('when a job is added behind a gate of ours, then the gate runs first with its own keys and arguments: refused, nothing is added; passed, the job is where BullMQ puts it and ours runs after it with what the gate handed on', async () => {
    const fresh = createRedisConnection(redisUrl(), 'worker') as Redis;
    const [key, gateKey] = [`${prefix}:lh-test-handed`, `${prefix}:lh-test-gate`];
    const job = (id: string, opts: { priority?: number }) => ({
      name: 'simulate',
      data: jobData('a', { mode: 'ok' }),
      opts,
      id,
    });
    const [refused, prioritized, parent, bare] = [newJobId(), newJobId(), newJobId(), newJobId()];
    try {
      const gate = (verdict: string) => [GATE, gateKey, verdict, 'x', 'y'] as const;
      expect(
        await gatedAddWith(fresh, [...gate('no')], queue, job(refused, { priority: 5 }), {}, HANDED, key, 'one'),
      ).toEqual({ added: false, gated: ['refused', 3] });
      expect(await connection.exists(layout.job(analyses, refused))).toBe(0);

      expect(
        await gatedAddWith(fresh, [...gate('pass')], queue, job(prioritized, { priority: 5 }), {}, HANDED, key, 'one'),
      ).toEqual({ added: true, gated: ['passed', 3], reply: [prioritized, 'handed x', key, 'one', 1] });
      expect(
        await gatedAddWith(fresh, [...gate('pass')], queue, job(parent, {}), { asParent: true }, HANDED, key, 'two'),
      ).toEqual({ added: true, gated: ['passed', 3], reply: [parent, 'handed x', key, 'two', 1] });
      expect(await connection.zscore(layout.prioritized(analyses), prioritized)).not.toBeNull();
      expect(await connection.zscore(layout.waitingChildren(analyses), parent)).not.toBeNull();
      expect(await connection.lrange(gateKey, 0, -1)).toEqual(['no', 'pass', 'pass']);

      // The same script with no gate: nothing handed.
      expect(await addWith(fresh, queue, job(bare, {}), {}, HANDED, key, 'three', 'four')).toEqual([
        bare,
        'nothing',
        key,
        'three',
        2,
      ]);
      for (const id of [prioritized, parent, bare]) await new Job(queue, '', {}, {}, id).remove();
    } finally {
      await fresh.quit();
    }
  });

  it('when Redis forgets its scripts while a connection stays open, then a queue MULTI loads them again and lands whole (a redis-server of its own)', async () => {
    const server = await startRedisServer();
    const own = createRedisConnection(server.url, 'worker') as Redis;
    const ownQueue = new Queue<JobData>(analyses, { connection: own, prefix });
    try {
      const add = (id: string) =>
        execQueueMulti(ownQueue, own, async (multi) => {
          await addToMulti(multi, ownQueue, { name: 'simulate', data: jobData('a', { mode: 'ok' }), opts: {}, id });
          indexOnMulti(multi, layout, 'a', [id], 60);
        });
      const [before, after] = [newJobId(), newJobId()];
      await add(before);
      await own.script('FLUSH');
      await add(after);
      for (const id of [before, after]) {
        expect(await own.lpos(layout.wait(analyses), id)).not.toBeNull();
        expect(await isIndexed(own, layout, 'a', id)).toBe(true);
      }
    } finally {
      await ownQueue.close();
      await own.quit().catch(() => own.disconnect());
      await server.destroy();
    }
  });

  it('when a job is delayed, then it is in the delayed set and the snapshot says so', async () => {
    const id = await accept('ok', { delayMs: 600_000 });
    expect(await connection.zscore(layout.delayed(analyses), id)).not.toBeNull();
    const owned = await store.snapshot('a', id);
    expect(owned.kind === 'job' && owned.snapshot.delayed).toBe(true);
  });

  it('when a waiting job is cancelled, then it carries the flag, moves to the head of the wait list and a `cancelled` entry is in the events stream', async () => {
    const id = await accept('ok', { delayMs: 600_000 });
    expect(await store.cancel('a', id)).toBe('cancelled');
    expect(await connection.zscore(layout.delayed(analyses), id)).toBeNull();
    // Taken from the right: the head of the queue.
    expect((await connection.lrange(layout.wait(analyses), -1, -1))[0]).toBe(id);
    expect(Number((await hash(id))[OWN_FIELDS.cancelledAt])).toBeGreaterThan(0);
    expect((await events(id)).map((e) => e.event)).toContain('cancelled');
    // Once taken, the job is failed (a worker of ours would fail it as cancelled): leave none behind.
    await new Job(queue, '', {}, {}, id).remove();
  });

  it("when a job is parked (born in waiting-children) and released by our copy of BullMQ's parent release, then a worker takes it in the order released, whatever its priority", async () => {
    // A queue of its own: no job of another test can be fetched here.
    const own = layoutFor(uniquePrefix());
    const ownQueue = new Queue<JobData>(analyses, { connection, prefix: own.prefix });
    const q = `${own.queueKey(analyses)}:`;
    const parked = async (priority: number) => {
      const id = newJobId();
      const multi = await queueMulti(ownQueue, connection);
      await addToMulti(
        multi,
        ownQueue,
        { name: 'simulate', data: jobData('a', { mode: 'ok' }), opts: { priority }, id },
        { asParent: true },
      );
      await multi.exec();
      return id;
    };
    const [later, first] = [await parked(20), await parked(3)];
    for (const id of [later, first]) {
      expect(await connection.zscore(own.waitingChildren(analyses), id)).not.toBeNull();
    }
    // Parked jobs are invisible to BullMQ's fetch: a worker with nothing else to do takes neither.
    const idle = new Worker(analyses, null, { connection, prefix: own.prefix, autorun: false });
    expect(await idle.getNextJob('t', { block: false })).toBeUndefined();
    const release = `${BULL_LUA}\nreturn bull_promote(ARGV[1], ARGV[2], ARGV[3]) and 1 or 0`;
    // Released in the dispatcher's order: the job at priority 20 first.
    for (const id of [later, first]) {
      expect(await connection.eval(release, 1, own.waitingChildren(analyses), q, id, '100')).toBe(1);
    }
    // A second release finds it gone from waiting-children and does nothing.
    expect(await connection.eval(release, 1, own.waitingChildren(analyses), q, first, '100')).toBe(0);
    expect(Number(await connection.zscore(own.prioritized(analyses), first))).toBeLessThan(2 ** 32);
    expect((await ownQueue.getJob(first))?.opts.priority).toBe(3);
    expect(await connection.xlen(own.events(analyses))).toBeGreaterThan(0);
    // Taken in the order released, and parked again from active: BullMQ then leaves it be.
    const taken = await idle.getNextJob('t', { block: false });
    expect(taken?.id).toBe(later);
    const park = `${BULL_LUA}\nreturn bull_park_active(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]) and 1 or 0`;
    expect(await connection.eval(park, 1, own.waitingChildren(analyses), q, later, 'not-its-token', '1', '100')).toBe(
      0,
    );
    const takenCount = Number(await connection.hget(`${q}${later}`, 'ats'));
    expect(takenCount).toBe(1);
    expect(await connection.eval(park, 1, own.waitingChildren(analyses), q, later, 't', '1', '100')).toBe(1);
    // The take that parked it is not counted among its starts.
    expect(Number(await connection.hget(`${q}${later}`, 'ats'))).toBe(takenCount - 1);
    expect(await connection.lpos(`${q}active`, later)).toBeNull();
    expect(await connection.exists(own.lock(analyses, later))).toBe(0);
    expect(await connection.zscore(own.waitingChildren(analyses), later)).not.toBeNull();
    expect((await idle.getNextJob('t', { block: false }))?.id).toBe(first);
    await idle.close();
    await ownQueue.close();
    await cleanupPrefix(redisUrl(), own.prefix);
  });

  it('when jobs are lowered into the solo band and one is raised to band 0, then a worker takes band 0, then any API priority, then the solo band in its priority order', async () => {
    const own = layoutFor(uniquePrefix());
    const ownQueue = new Queue<JobData>(analyses, { connection, prefix: own.prefix });
    const q = `${own.queueKey(analyses)}:`;
    const add = async (priority: number) =>
      (await ownQueue.add('simulate', jobData('a', { mode: 'ok' }), { priority, jobId: newJobId() })).id ?? '';
    const [soloLow, soloHigh, raised, other] = [await add(1), await add(2), await add(900), await add(1000)];
    const run = (fn: string, id: string) =>
      connection.eval(`${BULL_LUA}\nreturn ${fn}(ARGV[1], ARGV[2]) and 1 or 0`, 1, own.prioritized(analyses), q, id);
    for (const id of [soloLow, soloHigh, raised]) expect(await run('bull_lower', id)).toBe(1);
    expect(await run('bull_lower', 'not-a-job')).toBe(0);
    expect(await connection.zscore(own.prioritized(analyses), 'not-a-job')).toBeNull();
    // Every score is still an exact integer: the priority order inside the band holds.
    expect(Number(await connection.zscore(own.prioritized(analyses), soloLow))).toBe((SOLO_BAND + 1) * 2 ** 32 + 1);
    const head = `${BULL_LUA}\nreturn bull_solo_head(ARGV[1]) or false`;
    expect(await connection.eval(head, 1, own.prioritized(analyses), q)).toBe(soloLow);
    expect(await run('bull_raise', raised)).toBe(1);
    expect(await connection.eval(`${BULL_LUA}\nreturn bull_busy(ARGV[1])`, 1, own.prioritized(analyses), q)).toBe(1);
    const worker = new Worker(analyses, null, { connection, prefix: own.prefix, autorun: false });
    const order = [];
    for (
      let job = await worker.getNextJob('t', { block: false });
      job;
      job = await worker.getNextJob('t', { block: false })
    ) {
      order.push(job.id);
    }
    expect(order).toEqual([raised, other, soloLow, soloHigh]);
    await worker.close();
    await ownQueue.close();
    await cleanupPrefix(redisUrl(), own.prefix);
  });

  it('when a worker holds a job, then its lock key exists, processedOn is set and the snapshot says locked', async () => {
    const id = await accept('gate');
    startWorker();
    await waitFor(() => gates.has(id), { what: 'the worker to take the job' });
    expect(await connection.exists(layout.lock(analyses, id))).toBe(1);
    expect(Number((await hash(id)).processedOn)).toBeGreaterThan(0);
    const owned = await store.snapshot('a', id);
    expect(owned.kind === 'job' && owned.snapshot.locked).toBe(true);
    gates.get(id)?.();
    await waitFor(async () => (await hash(id)).finishedOn, { what: 'the job to complete' });
    expect(await connection.exists(layout.lock(analyses, id))).toBe(0);
  });

  it('when a job completes with or without a result, then finishedOn is set and returnvalue is longer than "no result" only with one', async () => {
    startWorker();
    const withResult = await accept('ok');
    const without = await accept('none');
    for (const id of [withResult, without]) {
      await waitFor(async () => (await hash(id)).finishedOn, { what: `job ${id} to complete` });
    }
    expect(await connection.hstrlen(layout.job(analyses, without), 'returnvalue')).toBe(NO_RESULT_LENGTH);
    expect(await connection.hstrlen(layout.job(analyses, withResult), 'returnvalue')).toBeGreaterThan(NO_RESULT_LENGTH);
    // Every BullMQ field a status read asks for is there, but those of a failure, a stall or a
    // job scheduler's run (`rjk`), or a child's parent (`parentKey`).
    const own = Object.values(OWN_FIELDS) as string[];
    const absent = ['failedReason', 'stc', 'rjk', 'parentKey'];
    const expected = STATUS_FIELDS.filter((f) => !own.includes(f) && !absent.includes(f));
    expect(Object.keys(await hash(withResult))).toEqual(expect.arrayContaining(expected));
    const owned = await store.snapshot('a', withResult);
    expect(owned.kind === 'job' && owned.snapshot.job).toMatchObject({ hasResult: true, attemptsMade: 1 });
    const names = (await events(withResult)).map((e) => e.event);
    expect(names).toEqual(expect.arrayContaining(['added', 'waiting', 'active', 'progress', 'completed']));
    const progress = (await events(withResult)).find((e) => e.event === 'progress');
    expect(JSON.parse(progress?.data ?? 'null')).toEqual({ percent: 100, step: 'done' });
  });

  it("when a processor ends a job with a ride, then our script runs inside BullMQ's completion, before it, in one command, and cannot fail it; when BullMQ retries the job instead, the ride goes alone", async () => {
    startWorker();
    const monitor = await watchCommands(redisUrl(), prefix);
    const ridden = await accept('ride');
    const retried = await accept('ride-retry');
    const failing = await accept('ride-boom');
    const unpackable = await accept('ride-nul');
    for (const id of [ridden, retried, failing, unpackable]) {
      await waitFor(async () => (await hash(id)).finishedOn, { what: `job ${id} to complete` });
    }
    const commands = await monitor.stop();
    // Ours saw the job not yet finished, and only its own argument: BullMQ's come before them.
    const recorded = await connection.lrange(rides, 0, -1);
    expect(recorded).toEqual(expect.arrayContaining([ridden, '0', '1']));
    expect(recorded.filter((v) => v === ridden)).toHaveLength(1);
    expect(JSON.parse((await hash(ridden)).returnvalue ?? 'null')).toEqual({ encoding: 'json', value: { ok: true } });
    // The first attempt of the retried job was moved by another BullMQ script: its ride went
    // alone; its second attempt completed and rode.
    expect(alone.filter((id) => id === retried)).toHaveLength(1);
    expect(alone).not.toContain(ridden);
    expect(recorded.filter((v) => v === retried)).toHaveLength(1);
    // An end script that fails does not fail BullMQ's completion with it.
    expect(JSON.parse((await hash(failing)).returnvalue ?? 'null')).toEqual({ encoding: 'json', value: { ok: true } });
    expect(alone).not.toContain(failing);
    // One script ended the ridden job, and it carried ours: BullMQ's own was not sent for it.
    const ends = commands.filter(
      ([name, ...args]) =>
        (name === 'EVALSHA' || name === 'EVAL') && args.includes(ridden) && args.includes('completed'),
    );
    expect(ends).toHaveLength(1);
    expect(ends[0]).toContain(rides);
    // Arguments that cannot be packed in one (a NUL) do not ride: the ride goes alone.
    expect(alone).toContain(unpackable);
    expect(recorded.some((v) => v.startsWith(unpackable))).toBe(false);
  });

  it('when a take is started on a connection, then each job its Worker takes, by moveToActive or as the next job of a completion, comes with the reply of our script, run on the job in the same script', async () => {
    await startWorker().waitUntilReady();
    const takes = new Map<string, unknown>();
    const started = startOnTake(
      connection,
      layout.wait(analyses),
      TAKE,
      () => ['given'],
      (id, reply) => {
        takes.set(id, reply);
      },
    );
    expect(started).toBe(true);
    // Four held jobs fill the worker's four slots (each taken by moveToActive); the two after them
    // are taken by the held jobs' completions (moveToFinished's next job).
    const held: string[] = [];
    for (let i = 0; i < 4; i++) held.push(await accept('gate'));
    await waitFor(() => held.every((id) => gates.has(id)), { what: 'the worker to take the held jobs' });
    const next = [await accept('ok'), await accept('ok')];
    for (const id of held) gates.get(id)?.();
    for (const id of [...held, ...next]) {
      await waitFor(async () => (await hash(id)).finishedOn, { what: `job ${id} to complete` });
    }
    for (const id of [...held, ...next]) {
      const { priority } = await hash(id);
      // Its tenant, id, priority and lock token after our argument; taken (processedOn) already;
      // and the job's hash as BullMQ read it in the same script, its attempt started counted.
      expect(takes.get(id)).toEqual([
        'given',
        'a',
        id,
        priority,
        expect.stringMatching(/.:\d+$/),
        layout.job(analyses, id),
        1,
        'simulate',
        '1',
      ]);
    }
  });

  it('when Redis forgets its scripts while a Worker runs, then its takes and rides load them again and go on (a redis-server of its own)', async () => {
    const server = await startRedisServer();
    const own = createRedisConnection(server.url, 'worker') as Redis;
    const ownQueue = new Queue<JobData>(analyses, { connection: own, prefix });
    const ended: string[] = [];
    const ownWorker = new Worker<JobData>(
      analyses,
      async (job) => {
        const id = job.id ?? '';
        rideOnCompletion(own, RIDE, id, [rides, layout.job(analyses, id)], [id], () => ended.push(`alone ${id}`));
        return { ok: true };
      },
      { connection: own, prefix },
    );
    const takes = new Map<string, unknown>();
    try {
      await ownWorker.waitUntilReady();
      expect(
        startOnTake(
          own,
          layout.wait(analyses),
          TAKE,
          () => ['given'],
          (id, r) => takes.set(id, r),
        ),
      ).toBe(true);
      const run = async () => {
        const id = newJobId();
        await ownQueue.add('simulate', jobData('a', { mode: 'ok' }), { jobId: id });
        await waitFor(async () => own.hget(layout.job(analyses, id), 'finishedOn'), { what: `job ${id} to complete` });
        return id;
      };
      const before = await run();
      await own.script('FLUSH');
      const after = await run();
      const recorded = await own.lrange(rides, 0, -1);
      for (const id of [before, after]) {
        expect(recorded).toContain(id);
        expect(takes.get(id)).toEqual(expect.arrayContaining(['given', 'a', id]));
      }
      expect(ended).toEqual([]);
    } finally {
      await ownWorker.close();
      await ownQueue.close();
      await own.quit().catch(() => own.disconnect());
      await server.destroy();
    }
  });

  it('when a ride is given for a job no Worker ends, then it goes alone in the next turn of the event loop', async () => {
    rideOnCompletion(connection, RIDE, 'job_never', [rides, layout.job(analyses, 'job_never')], ['job_never'], () =>
      alone.push('job_never'),
    );
    expect(alone).not.toContain('job_never');
    await new Promise((resolve) => setImmediate(resolve));
    expect(alone).toContain('job_never');
  });

  it('when a job fails for good, then failedReason, atm and finishedOn are set, our fields survive, and a `failed` event is written', async () => {
    startWorker();
    const id = await accept('fail', { webhookUrl: 'https://example.com/hook' });
    await waitFor(async () => (await hash(id)).finishedOn, { what: 'the job to fail' });
    const fields = await hash(id);
    expect(fields.failedReason).toBe('failed on purpose');
    expect(fields.atm).toBe('1');
    expect(fields[OWN_FIELDS.webhookUrl]).toBe('https://example.com/hook');
    const failed = (await events(id)).find((e) => e.event === 'failed');
    expect(failed?.failedReason).toBe('failed on purpose');
  });

  it('when an attempt fails and is retried after a backoff, then the job is delayed again and our fields survive the move', async () => {
    startWorker();
    const id = newJobId();
    const multi = await queueMulti(queue, connection);
    await addToMulti(multi, queue, {
      name: 'simulate',
      data: jobData('a', { mode: 'retry' }),
      opts: { attempts: 2, backoff: { type: 'fixed', delay: 600_000 }, priority: 3 },
      id,
    });
    multi.hset(layout.job(analyses, id), OWN_FIELDS.webhookUrl, 'https://example.com/hook');
    multi.hset(layout.job(analyses, id), OWN_FIELDS.checkpoint, '{"step":1}');
    await multi.exec();
    await waitFor(async () => (await connection.zscore(layout.delayed(analyses), id)) !== null, {
      what: 'the retry to be delayed',
    });
    const fields = await hash(id);
    expect(fields.atm).toBe('1');
    expect(fields.finishedOn).toBeUndefined();
    expect(fields[OWN_FIELDS.webhookUrl]).toBe('https://example.com/hook');
    expect(fields[OWN_FIELDS.checkpoint]).toBe('{"step":1}');
    expect((await events(id)).map((e) => e.event)).toContain('delayed');
    // The retry runs and completes: our fields are still there.
    await new Job(queue, '', {}, {}, id).promote();
    await waitFor(async () => (await hash(id)).finishedOn, { what: 'the retry to complete' });
    expect((await hash(id))[OWN_FIELDS.webhookUrl]).toBe('https://example.com/hook');
  });

  it('when a job has a webhook, then its delivery waits for it as its BullMQ parent and is released when it ends', async () => {
    const id = await accept('gate', { webhookUrl: 'https://example.com/hook' });
    const parentId = `${id}.webhook`;
    const parent = await Job.fromId(webhooks, parentId);
    expect(await parent?.getState()).toBe('waiting-children');
    expect((await hash(id)).parentKey).toBe(`${layout.queueKey(QUEUES.webhooks)}:${parentId}`);
    expect(JSON.parse((await hash(id)).parent ?? '{}')).toMatchObject({ id: parentId });
    expect(JSON.parse((await hash(id)).opts ?? '{}')).toMatchObject({ idof: true });
    startWorker();
    await waitFor(() => gates.has(id), { what: 'the worker to take the job' });
    gates.get(id)?.();
    await waitFor(async () => (await parent?.getState()) === 'waiting', { what: 'the delivery to be released' });
    await webhooks.remove(parentId);
  });

  it('when a parent has children, then BullMQ keeps them in its dependencies, processed and failed sets, releases it from waiting-children on a failure (continueParentOnFailure), and the snapshot counts them', async () => {
    const children = createChildRunStore({
      redis: connection,
      queue,
      layout,
      eventsMaxLen: 1000,
      indexTtlSeconds: 3600,
    });
    const parentId = newJobId();
    const multi = await queueMulti(queue, connection);
    const data = jobData('a', { mode: 'gate' });
    await addToMulti(multi, queue, { name: 'simulate', data, opts: {}, id: parentId }, { asParent: true });
    await multi.exec();
    const [ok, failing] = [newJobId(), newJobId()];
    const child = (id: string, mode: Mode) => ({
      id,
      name: 'simulate',
      data: jobData('a', { mode }),
      opts: { continueParentOnFailure: true },
    });
    await children.add(parentId, 'a', [[ok, failing]], [child(ok, 'ok'), child(failing, 'fail')]);
    // The worker of earlier tests may take the children at once: each is unfinished or finished.
    const keys = [layout.job(analyses, ok), layout.job(analyses, failing)];
    const unfinished = await connection.smembers(layout.dependencies(analyses, parentId));
    expect(unfinished.every((k) => keys.includes(k))).toBe(true);
    expect((await hash(ok)).parentKey).toBe(layout.job(analyses, parentId));
    expect(await isIndexed(connection, layout, 'a', ok)).toBe(true);
    let owned = await store.snapshot('a', parentId);
    expect(owned.kind === 'job' && owned.snapshot.children?.counts.total).toBe(2);
    owned = await store.snapshot('a', ok);
    expect(owned.kind === 'job' && owned.snapshot.job.parentId).toBe(parentId);

    startWorker();
    await waitFor(() => gates.has(parentId), { what: 'the failed child to release the parent' });
    await waitFor(async () => (await connection.hlen(layout.processed(analyses, parentId))) === 1, {
      what: 'the other child to complete',
    });
    expect(await connection.hget(layout.failedChildren(analyses, parentId), layout.job(analyses, failing))).toBe(
      'failed on purpose',
    );
    const outcomes = await children.outcomes(parentId, [ok, failing]);
    expect(outcomes.children).toEqual([
      { id: ok, status: 'completed', result: { ok: true } },
      { id: failing, status: 'failed', reason: 'failed on purpose' },
    ]);
    owned = await store.snapshot('a', parentId);
    expect(owned.kind === 'job' && owned.snapshot.children).toMatchObject({
      counts: { total: 2, queued: 0, active: 0, completed: 1, failed: 1, cancelled: 0 },
      percent: 100,
      waiting: false,
    });
    expect(await store.childIds(parentId)).toEqual([ok, failing]);
    gates.get(parentId)?.();
    await waitFor(async () => (await hash(parentId)).finishedOn, { what: 'the parent to complete' });
  });

  it("when our scripts run in queue MULTIs, then a socket gets a script's text once and only its SHA1 after, and the text again after a reconnect", async () => {
    // What `multiScript` relies on: ioredis 5 defines a command as BullMQ's add scripts are
    // defined, and writes it as EVAL the first time on each socket, EVALSHA after. Seen on the
    // connection's own commands (each command's name is what was written, once it was written).
    const own = createRedisConnection(redisUrl(), 'worker') as Redis;
    const ownQueue = new Queue(analyses, { connection: own, prefix });
    const tenant = `watched-${newJobId()}`;
    const key = layout.tenantIndex(tenant);
    const written: { name: string }[] = [];
    const send = own.sendCommand.bind(own);
    own.sendCommand = ((command: Parameters<Redis['sendCommand']>[0], ...rest: unknown[]) => {
      if (command.args.includes(key)) written.push(command);
      return (send as (...args: unknown[]) => unknown)(command, ...rest);
    }) as Redis['sendCommand'];
    try {
      const add = async () => {
        const multi = await queueMulti(ownQueue, own);
        indexOnMulti(multi, layout, tenant, [newJobId()], 60);
        for (const [err] of (await multi.exec()) ?? []) if (err) throw err;
      };
      await add();
      await add();
      const reconnected = new Promise((resolve) => own.once('ready', resolve));
      own.disconnect(true);
      await reconnected;
      await add();
      expect(written.map((command) => command.name)).toEqual(['eval', 'evalsha', 'eval']);
      expect(await listIndexed(connection, layout, tenant, undefined, 10)).toHaveLength(3);
    } finally {
      await ownQueue.close();
      await own.quit();
    }
  });
});
