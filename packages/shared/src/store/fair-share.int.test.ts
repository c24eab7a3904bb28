import { type Job, Queue, Worker } from 'bullmq';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cleanupPrefix, redisUrl, uniquePrefix, watchCommands } from '../../../../tests/support/redis.ts';
import { loadConfig } from '../config.ts';
import { newJobId } from '../ids.ts';
import { createRedisConnection, type RedisConnection } from '../redis.ts';
import { getContract } from '../registry.ts';
import { QUEUES } from './bullmq-layout.ts';
import { createJobRunStore, createJobStore, type JobData } from './job-store.ts';

/**
 * The fair-share dispatcher against a real Redis and the pinned BullMQ: a Worker in manual mode
 * takes jobs exactly when the test says, so the order slots are handed out in is deterministic.
 */
describe('fair share (real Redis, the pinned BullMQ)', () => {
  let connection: RedisConnection;
  let prefix: string;
  let queue: Queue<JobData>;
  let worker: Worker<JobData>;
  let store: ReturnType<typeof createJobStore>;
  let runs: ReturnType<typeof createJobRunStore>;
  const token = 'test-token';
  const limits = (caps: Record<string, number>, jobs = 0) => ({
    tenantMaxActive: { jobs, overrides: new Map(Object.entries(caps)) },
  });

  beforeAll(() => {
    connection = createRedisConnection(redisUrl(), 'worker');
  });
  afterAll(async () => {
    await connection.quit();
  });
  afterEach(async () => {
    await worker?.close();
    await queue?.close();
    await cleanupPrefix(redisUrl(), prefix);
  });

  /** A fresh queue, a store with these caps, and `slots` worker slots registered. */
  async function setUp(slots: number, caps: Record<string, number> = {}, defaultCap = 0) {
    prefix = uniquePrefix();
    const config = loadConfig({ REDIS_URL: redisUrl(), QUEUE_PREFIX: prefix }, 'worker');
    queue = new Queue<JobData>(QUEUES.analyses, { connection, prefix });
    worker = new Worker<JobData>(QUEUES.analyses, null, { connection, prefix, autorun: false });
    store = createJobStore({ redis: connection, queue, config, fairLimits: limits(caps, defaultCap) });
    runs = createJobRunStore({ redis: connection, prefix, fairLimits: limits(caps, defaultCap) });
    await runs.fair.heartbeat('test-worker', slots);
  }

  /** A submission as the API makes it: admitted and added, most often in one script. */
  async function submit(tenant: string, priority = 500): Promise<string> {
    const id = newJobId();
    const submission = { tenant, id, contract: getContract('simulate'), input: { durationMs: 0 }, priority };
    const { admission } = await store.submit(submission, undefined, 0);
    if (admission.kind !== 'new') throw new Error(`not admitted: ${admission.kind}`);
    return id;
  }

  /**
   * Adds a job of `tenant` straight to BullMQ at the default priority, past the dispatcher, as a
   * client delay that ran out, a retry or a schedule's run reaches the queue.
   */
  async function addPastDispatcher(tenant: string): Promise<string> {
    const id = newJobId();
    await queue.add('simulate', { tenant, input: { durationMs: 0 } }, { jobId: id, priority: 500 });
    return id;
  }

  /** Adds a job of `tenant` past the dispatcher, then takes the next job: that one, through the gate. */
  async function takePastDispatcher(tenant: string, park: boolean): Promise<void> {
    const id = await addPastDispatcher(tenant);
    const taken = await take();
    expect(taken?.job.id).toBe(id);
    expect(taken?.park).toBe(park);
  }

  /** `count` jobs of `tenant`, submitted one after another. */
  async function submitMany(tenant: string, count: number, priority = 500): Promise<string[]> {
    const ids = [];
    for (let i = 0; i < count; i++) ids.push(await submit(tenant, priority));
    return ids;
  }

  /** Takes the next job as a worker would, and runs the start gate on it. */
  async function take(): Promise<{ job: Job<JobData>; park: boolean } | undefined> {
    const job = (await worker.getNextJob(token, { block: false })) as Job<JobData> | undefined;
    if (!job?.id) return undefined;
    const { park } = await runs.start(job.id, job.data.tenant, job.opts.priority ?? 500);
    return { job, park };
  }

  /** Finishes a taken job as the processor does: hand the slot on, then complete it. */
  async function finish(job: Job<JobData>): Promise<void> {
    await runs.finish(job.data.tenant, job.id ?? '', { ended: true, stillActive: true });
    await job.moveToCompleted({ ok: true }, token, false);
  }

  async function parked(id: string): Promise<boolean> {
    const [waiting, ...lanes] = await Promise.all([
      connection.zscore(`${prefix}:${QUEUES.analyses}:waiting-children`, id),
      ...['a', 'b', 'c'].map((t) => connection.zscore(`${prefix}:lh:fair:lane:${t}`, id)),
    ]);
    return waiting !== null && lanes.some((lane) => lane !== null);
  }

  it("when slots are free and nobody waits, then a job goes straight to BullMQ's queue", async () => {
    await setUp(2);
    const id = await submit('a');
    expect(await parked(id)).toBe(false);
    const taken = await take();
    expect(taken?.job.id).toBe(id);
    expect(taken?.park).toBe(false);
  });

  it('when one tenant alone queues more jobs than there are slots, then none is parked and they run in its priority order', async () => {
    await setUp(2);
    const low = [await submit('a', 900), await submit('a', 900), await submit('a', 900)];
    const high = await submit('a', 5);
    for (const id of [...low, high]) expect(await parked(id)).toBe(false);
    // All four wait in the queue, and take their share as they start.
    expect((await runs.fair.shares()).tenants).toEqual([{ tenant: 'a', running: 0, waiting: 4 }]);
    // BullMQ serves them as it would without fair share: in the tenant's own priority order.
    const order = [];
    for (let t = await take(); t; t = await take()) {
      expect(t.park).toBe(false);
      order.push(t.job.id);
    }
    expect(order).toEqual([high, low[0], low[1], low[2]]);
  });

  it('when a tenant floods at priority 1, then a later tenant takes the next free slot, and then they take turns', async () => {
    await setUp(2);
    const flood = await submitMany('a', 6, 1);
    const first = await take();
    const second = await take();
    expect([first?.job.id, second?.job.id]).toEqual(flood.slice(0, 2));
    // Every slot is busy: b's jobs wait parked for a turn.
    const b = [await submit('b', 500), await submit('b', 500)];
    for (const id of b) expect(await parked(id)).toBe(true);
    expect((await store.snapshot('b', b[0] ?? '')).kind).toBe('job');

    if (!first || !second) throw new Error('nothing taken');
    await finish(first.job);
    const next = await take();
    expect(next?.job.id).toBe(b[0]);
    expect(next?.park).toBe(false);
    // a's turn: its next queued job, in its own order.
    await finish(second.job);
    const turn = await take();
    expect(turn?.job.id).toBe(flood[2]);
    expect(turn?.park).toBe(false);
    // Then b's second job, on the next freed slot.
    if (!next) throw new Error('nothing taken');
    await finish(next.job);
    expect((await take())?.job.id).toBe(b[1]);
  });

  it("when a tenant holds the queue and another tenant's job comes due in BullMQ, then it runs before the queued ones", async () => {
    await setUp(1);
    const queued = await submitMany('a', 3, 1);
    expect((await take())?.job.id).toBe(queued[0]);
    await takePastDispatcher('b', false);
  });

  it('when the tenant that held the queue was served before the newcomer last was, then the newcomer still goes first', async () => {
    await setUp(1);
    const queued = await submitMany('a', 3, 1);
    const first = await take();
    expect(first?.job.id).toBe(queued[0]);
    // b's delayed job comes due while a's flood queues: it runs next, and b was served last.
    const due = await addPastDispatcher('b');
    if (!first) throw new Error('nothing taken');
    await finish(first.job);
    const running = await take();
    expect(running?.job.id).toBe(due);
    // b submits again while the slot is busy: parked, and a joins the turns behind it.
    const b = await submit('b');
    expect(await parked(b)).toBe(true);
    if (!running) throw new Error('nothing taken');
    await finish(running.job);
    expect((await take())?.job.id).toBe(b);
  });

  it('when one tenant waits alone after others, then a few of its jobs go out as spares, and a tenant that arrives takes them back', async () => {
    await setUp(0);
    // b's job holds the queue, so a's jobs are parked; a worker with 2 slots then releases a's
    // first job and b's, and two more of a's as spares.
    const b = await submit('b');
    const flood = await submitMany('a', 8);
    for (const id of flood) expect(await parked(id)).toBe(true);
    await runs.fair.heartbeat('another', 2);
    const first = await take();
    const second = await take();
    expect([first?.job.id, second?.job.id]).toEqual([flood[0], b]);
    if (!first) throw new Error('nothing taken');
    await finish(first.job);
    // a waits alone now: one job for the free slot, and two spares (at most the slots) behind it.
    const band0 = () => connection.zcount(`${prefix}:${QUEUES.analyses}:prioritized`, '-inf', `(${2 ** 32}`);
    expect(await band0()).toBe(3);
    const c = await submit('c');
    // c's arrival took the spares back: only the job released for the free slot is still out.
    expect(await band0()).toBe(1);
    expect(await connection.zcard(`${prefix}:lh:fair:spares`)).toBe(0);
    const third = await take();
    expect(third?.job.id).toBe(flood[3]);
    // The next slot that frees is c's, ahead of the rest of a's backlog.
    if (!third) throw new Error('nothing taken');
    await finish(third.job);
    expect((await take())?.job.id).toBe(c);
  });

  it('when a worker takes a spare, then it leaves the spares', async () => {
    await setUp(0);
    await submit('b');
    const flood = await submitMany('a', 4);
    await runs.fair.heartbeat('another', 2);
    const first = await take();
    await take();
    if (!first) throw new Error('nothing taken');
    await finish(first.job);
    // a waits alone: one job for the free slot and two spares.
    const spares = `${prefix}:lh:fair:spares`;
    expect(await connection.zcard(spares)).toBe(2);
    const taken = [await take(), await take(), await take()];
    expect(taken.map((t) => t?.job.id)).toEqual(flood.slice(1));
    expect(taken.map((t) => t?.park)).toEqual([false, false, false]);
    expect(await connection.zcard(spares)).toBe(0);
  });

  it("when a job ended without telling its tenant's share, then a repairing heartbeat drops its entry, and the others read no share", async () => {
    await setUp(2);
    const fair = `${prefix}:lh:fair:`;
    // A share left by a job that is gone (its worker died and retention removed it), past the settle time.
    await connection.zadd(`${fair}running:a`, Date.now() - 60_000, newJobId());
    await connection.sadd(`${fair}busy`, 'a');
    const watch = await watchCommands(redisUrl(), prefix);
    await runs.fair.heartbeat('test-worker', 2, { repair: false });
    const all = await watch.stop();
    expect(all.filter(([, key]) => key === `${fair}running:a` || key === `${fair}busy`)).toEqual([]);
    expect(await connection.zcard(`${fair}running:a`)).toBe(1);
    await runs.fair.heartbeat('test-worker', 2);
    expect(await connection.zcard(`${fair}running:a`)).toBe(0);
    expect(await connection.sismember(`${fair}busy`, 'a')).toBe(0);
  });

  it('when no tenant waits for a turn, then a worker heartbeat refreshes the slots and runs no dispatch', async () => {
    await setUp(2);
    const fair = `${prefix}:lh:fair:`;
    const watch = await watchCommands(redisUrl(), prefix);
    await runs.fair.heartbeat('test-worker', 2);
    const all = await watch.stop();
    expect(all.some(([name, key]) => name === 'SET' && key === `${fair}slots`)).toBe(true);
    // One look at the turns; none of a dispatch's reads of the slots, the queue or the spares.
    expect(all.filter(([, key]) => key === `${fair}ready`).map(([name]) => name)).toEqual(['ZCARD']);
    expect(all.filter(([name, key]) => key === `${fair}spares` || (name === 'GET' && key === `${fair}slots`))).toEqual(
      [],
    );
  });

  it("when a tenant with no cap is alone, then its job goes from submit to end with no command about caps, and only its admission's look for spares; with a cap, the cap is checked", async () => {
    let all: string[][] = [];
    const run = async () => {
      const fair = `${prefix}:lh:fair:`;
      const watch = await watchCommands(redisUrl(), prefix);
      await submit('a');
      const taken = await take();
      if (!taken) throw new Error('nothing taken');
      await finish(taken.job);
      all = await watch.stop();
      return all.filter((command) => command.some((arg) => arg === `${fair}capped` || arg === `${fair}spares`));
    };
    // The admission takes back other tenants' spares (there are none); the start has none to drop.
    const lookForSpares = () => ['ZRANGE', `${prefix}:lh:fair:spares`, '0', '-1', 'WITHSCORES'];
    await setUp(2);
    expect(await run()).toEqual([lookForSpares()]);
    // The start takes the job's share and learns it held none in one command; the end gives it back.
    expect(
      all.filter(([, key]) => key === `${prefix}:lh:fair:running:a`).map(([name, , flag]) => `${name} ${flag}`),
    ).toEqual(['ZADD NX', expect.stringMatching(/^ZREM /)]);
    // BullMQ's add, the index entry and the place are one script (one EVALSHA names the keys of both).
    const index = `${prefix}:lh:tenant:a:index`;
    const meta = `${prefix}:analyses:meta`;
    expect(
      all.filter(([name = '', ...args]) => name.startsWith('EVAL') && args.includes(index) && args.includes(meta)),
    ).toHaveLength(1);
    // Into the solo band at its admission by one increment of its score, not a read and a write.
    const prioritized = `${prefix}:analyses:prioritized`;
    expect(all.filter(([name, key]) => key === prioritized && name === 'ZSCORE')).toEqual([]);
    expect(all.some(([name, key, ...rest]) => name === 'ZADD' && key === prioritized && rest.includes('INCR'))).toBe(
      true,
    );
    await cleanupPrefix(redisUrl(), prefix);
    await setUp(2, { a: 5 });
    // The admission asks whether a is set aside at its cap (it is not: the job takes its share at
    // once, and the start gate lets it pass), and so does the end, to bring a back when it was.
    const capped = (await run()).filter(([, key]) => key === `${prefix}:lh:fair:capped`);
    expect(capped.map(([name]) => name)).toEqual(['ZSCORE', 'ZSCORE']);
  });

  it('when a submission is admitted, then its admission and its add are one script when the add was built for the place admission chose, two when not, and each job lands in the place chosen', async () => {
    await setUp(1);
    /** The scripts a submission of `tenant` sends (EVALSHA), and whether its job was parked. */
    const submitWatched = async (tenant: string) => {
      const watch = await watchCommands(redisUrl(), prefix);
      const id = await submit(tenant);
      const scripts = (await watch.stop()).filter(([name]) => name === 'EVALSHA' || name === 'EVAL').length;
      return { id, scripts, parked: await parked(id) };
    };
    // a alone: into the queue, as built for a tenant with no job before.
    const a1 = await submitWatched('a');
    const a2 = await submitWatched('a');
    expect([a1, a2]).toMatchObject([
      { scripts: 1, parked: false },
      { scripts: 1, parked: false },
    ]);
    const running = await take();
    expect(running?.job.id).toBe(a1.id);
    // The one slot is a's, and a's next job waits: b's first job, built for the queue, is parked
    // by a second script.
    const b1 = await submitWatched('b');
    expect(b1).toMatchObject({ scripts: 2, parked: true });
    // b's next one is built parked, as its last one was: one script.
    const b2 = await submitWatched('b');
    expect(b2).toMatchObject({ scripts: 1, parked: true });
    if (!running) throw new Error('nothing taken');
    await finish(running.job);
    const rest: string[] = [];
    for (let taken = await take(); taken; taken = await take()) {
      rest.push(taken.job.id ?? '');
      await finish(taken.job);
    }
    expect(rest).toEqual([b1.id, a2.id, b2.id]);
    // b alone again: built parked, admitted into the queue, added there by a second script.
    const b3 = await submitWatched('b');
    expect(b3).toMatchObject({ scripts: 2, parked: false });
    expect((await take())?.job.id).toBe(b3.id);
  });

  it("when a tenant is at its cap, then its jobs wait as tenant_concurrency and others' jobs use the free slots", async () => {
    await setUp(4, { a: 2 });
    const flood = await submitMany('a', 5);
    const taken = [await take(), await take()];
    expect(taken.map((t) => t?.job.id)).toEqual(flood.slice(0, 2));
    // Two slots are free, but a is at its cap.
    expect(await take()).toBeUndefined();
    const snapshot = await store.snapshot('a', flood[2] ?? '');
    expect(snapshot.kind === 'job' && snapshot.snapshot.parked).toBe('tenant_concurrency');
    const b = await submit('b');
    expect((await take())?.job.id).toBe(b);
    const shares = (await runs.fair.shares()).tenants;
    expect(shares).toEqual(
      expect.arrayContaining([
        { tenant: 'a', running: 2, waiting: 3 },
        { tenant: 'b', running: 1, waiting: 0 },
      ]),
    );
    // One of a's jobs ends: the next of a's takes its place, and a stays at 2.
    const done = taken[0];
    if (!done) throw new Error('nothing taken');
    await finish(done.job);
    expect((await take())?.job.id).toBe(flood[2]);
    expect(await take()).toBeUndefined();
  });

  it('when a job reaches the wait list past the dispatcher while its tenant is at its cap, then the start gate parks it', async () => {
    await setUp(4, { a: 1 });
    const first = await submit('a');
    expect((await take())?.job.id).toBe(first);
    await takePastDispatcher('a', true);
    // The parked job took no share: the cap still counts the first job alone.
    expect(await connection.zrange(`${prefix}:lh:fair:running:a`, 0, -1)).toEqual([first]);
  });

  it('when a job reaches the wait list past the dispatcher while another tenant waits for a turn, then the start gate parks it and it takes no share', async () => {
    await setUp(1);
    const queued = await submitMany('a', 3, 1);
    expect((await take())?.job.id).toBe(queued[0]);
    // a holds the queue: b's job waits for its turn.
    expect(await parked(await submit('b'))).toBe(true);
    await takePastDispatcher('a', true);
    expect(await connection.zrange(`${prefix}:lh:fair:running:a`, 0, -1)).toEqual([queued[0]]);
  });

  it('when a cancelled job that holds no share reaches the start gate, then it passes and takes no share', async () => {
    await setUp(2);
    const id = await addPastDispatcher('a');
    expect(await store.cancel('a', id)).toBe('cancelled');
    expect((await take())?.job.id).toBe(id);
    expect(await connection.zscore(`${prefix}:lh:fair:running:a`, id)).toBeNull();
  });

  it('when a worker stops beating, then its slots stop counting', async () => {
    await setUp(1);
    await runs.fair.heartbeat('test-worker', 0);
    // b holds the queue, so a's job is parked until a slot counts.
    await submit('b');
    const id = await submit('a');
    expect(await parked(id)).toBe(true);
    expect((await runs.fair.shares()).tenants).toContainEqual({ tenant: 'a', running: 0, waiting: 1 });
    // A worker joins: its heartbeat dispatches (b's turn, then a's job as a spare).
    expect(await runs.fair.heartbeat('another', 1)).toBeGreaterThan(0);
    expect([(await take())?.job.id, (await take())?.job.id]).toContain(id);
  });

  it("when a lone tenant's jobs queue and another tenant's job is parked, then only the parked one counts as parked", async () => {
    await setUp(0);
    await submitMany('a', 3);
    const b = await submit('b');
    expect(await parked(b)).toBe(true);
    const shares = await runs.fair.shares();
    expect(shares.parked).toBe(1);
    expect(shares.laneHeads).toEqual([b]);
    expect(shares.tenants).toEqual(
      expect.arrayContaining([
        { tenant: 'a', running: 0, waiting: 3 },
        { tenant: 'b', running: 0, waiting: 1 },
      ]),
    );
  });

  it('when a parked job is cancelled, then it leaves its lane and is drained without running', async () => {
    await setUp(0);
    await submit('b');
    const id = await submit('a');
    expect(await parked(id)).toBe(true);
    expect(await store.cancel('a', id)).toBe('cancelled');
    expect(await connection.zcard(`${prefix}:lh:fair:lane:a`)).toBe(0);
    expect(await parked(id)).toBe(false);
  });
});
