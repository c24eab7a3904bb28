import { setTimeout as sleep } from 'node:timers/promises';
import {
  createLogger,
  createRedisConnection,
  createScheduleRunStore,
  type JobData,
  layoutFor,
  loadConfig,
  type RedisConnection,
  type RunStart,
  SCHEDULER_RUN_ID,
} from '@longhaul/shared';
import { Worker } from 'bullmq';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../../../../tests/support/redis.ts';
import { waitFor } from '../../../../tests/support/wait.ts';
import { createApp } from '../app.ts';
import { createApiServices } from '../services.ts';

const A = 'Bearer tenant-a-key-0123456789';
const B = 'Bearer tenant-b-key-0123456789';
const sim = { type: 'simulate', input: { durationMs: 10 } };

describe('schedules over HTTP against a real Redis (no worker)', () => {
  const prefix = uniquePrefix();
  let redis: RedisConnection;
  let ctx: ReturnType<typeof build>;

  function build() {
    const config = loadConfig(
      {
        REDIS_URL: redisUrl(),
        API_KEYS: 'a:tenant-a-key-0123456789,b:tenant-b-key-0123456789',
        QUEUE_PREFIX: prefix,
        SCHEDULES_PER_TENANT: '3',
      },
      'api',
    );
    const log = createLogger({ name: 't', level: 'silent', pretty: false });
    const services = createApiServices({ config, log, redis });
    return { app: createApp({ config, log, redis, ...services }), services };
  }

  beforeAll(async () => {
    redis = createRedisConnection(redisUrl(), 'producer', { commandTimeoutMs: 1000 });
    redis.on('error', () => undefined);
    if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
    ctx = build();
  });
  afterAll(async () => {
    await ctx.services.close();
    await redis.quit().catch(() => redis.disconnect());
    await cleanupPrefix(redisUrl(), prefix);
  });

  const create = (body: object, auth = A) =>
    request(ctx.app).post('/v1/schedules').set('Authorization', auth).send(body);
  const get = (path: string, auth = A) => request(ctx.app).get(path).set('Authorization', auth);
  const patch = (id: string, body: object) =>
    request(ctx.app).patch(`/v1/schedules/${id}`).set('Authorization', A).send(body);

  /**
   * A real BullMQ worker takes the schedule's due run and starts it as ours does (`startRun`):
   * BullMQ makes the schedule's next run as it hands this one out. Other schedules' leftover runs
   * in the queue are completed untouched.
   */
  async function takeRun(scheduleId: string, tenant = 'a'): Promise<{ id: string; start: RunStart }> {
    const runs = createScheduleRunStore({ redis, prefix });
    const connection = createRedisConnection(redisUrl(), 'worker');
    connection.on('error', () => undefined);
    let taken: { id: string; start: RunStart } | undefined;
    const worker = new Worker<JobData>(
      'analyses',
      async (job) => {
        if (job.data?.scheduleId !== scheduleId || taken) return;
        const id = job.id ?? '';
        taken = { id, start: await runs.startRun(tenant, scheduleId, id) };
      },
      { connection, prefix },
    );
    try {
      return await waitFor(() => taken, { timeoutMs: 20_000, what: 'a worker to take the run' });
    } finally {
      await worker.close();
      await connection.quit().catch(() => connection.disconnect());
    }
  }

  /** Ids of the schedule's runs that are due and not yet taken (a run has a priority: BullMQ's prioritized set). */
  async function queuedRuns(scheduleId: string): Promise<string[]> {
    const layout = layoutFor(prefix);
    const ids = [
      ...(await redis.lrange(layout.wait('analyses'), 0, -1)),
      ...(await redis.zrange(layout.prioritized('analyses'), 0, -1)),
    ];
    return ids.filter((id) => id.startsWith(`repeat:${scheduleId}:`));
  }

  it('when a schedule is created, then it answers 201 with the view, and BullMQ holds its scheduler', async () => {
    const res = await create({ ...sim, everyMs: 60_000 });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      type: 'simulate',
      everyMs: 60_000,
      cron: null,
      overlap: 'skip',
      paused: false,
      runs: 0,
      skipped: 0,
      lastRun: null,
    });
    expect(res.body.id).toMatch(/^sch_[0-9A-Z]{26}$/);
    expect(res.headers.location).toBe(`/v1/schedules/${res.body.id}`);
    expect(Date.parse(res.body.nextRunAt)).toBeGreaterThan(0);
    const scheduler = await ctx.services.queue.getJobScheduler(res.body.id);
    expect(scheduler?.every).toBe(60_000);
    // The tenant first (the status script reads it there), then the parsed input and the schedule.
    const data = { ...scheduler?.template?.data };
    expect(Object.keys(data)).toEqual(['tenant', 'input', 'scheduleId']);
    expect(data).toMatchObject({ tenant: 'a', input: { durationMs: 10 }, scheduleId: res.body.id });
    // Layout assumptions (bullmq-layout.ts): the scheduler set's score is the next due time, and
    // the pending run is the job `repeat:{id}:{due}` whose hash names the scheduler in `rjk`.
    const layout = layoutFor(prefix);
    const due = await redis.zscore(layout.jobSchedulers('analyses'), res.body.id);
    expect(Number(due)).toBe(Date.parse(res.body.nextRunAt));
    const runId = `repeat:${res.body.id}:${due}`;
    expect(SCHEDULER_RUN_ID.test(runId)).toBe(true);
    expect(await redis.hget(layout.job('analyses', runId), 'rjk')).toBe(res.body.id);
    const pending = await get(`/v1/jobs/${runId}`);
    // With `everyMs`, BullMQ makes the first run due at once (queued); later ones wait as delayed.
    expect(pending.body).toMatchObject({ id: runId, status: 'queued', scheduleId: res.body.id });
    expect((await get(`/v1/jobs/${runId}`, B)).status).toBe(404);
    await request(ctx.app).delete(`/v1/schedules/${res.body.id}`).set('Authorization', A);
  });

  it('when a cron has a time zone, then nextRunAt is the next run in that zone', async () => {
    const res = await create({ ...sim, cron: '30 9 * * *', timezone: 'Asia/Kolkata' });
    expect(res.status).toBe(201);
    const next = new Date(res.body.nextRunAt);
    // 09:30 in Kolkata (UTC+05:30, no DST) is 04:00 UTC.
    expect([next.getUTCHours(), next.getUTCMinutes()]).toEqual([4, 0]);
    expect(next.getTime()).toBeGreaterThan(Date.now());
    expect(next.getTime() - Date.now()).toBeLessThanOrEqual(86_400_000);
    await request(ctx.app).delete(`/v1/schedules/${res.body.id}`).set('Authorization', A);
  });

  it('when the cron, interval, zone or input is wrong, then it answers 400 naming each field', async () => {
    const badCron = await create({ ...sim, cron: '61 * * * *' });
    expect(badCron.status).toBe(400);
    expect(badCron.body.error.details).toEqual([expect.objectContaining({ path: 'cron.minute' })]);
    const tooOften = await create({ ...sim, cron: '*/5 * * * * *' });
    expect(tooOften.status).toBe(400);
    expect(tooOften.body.error.details[0]).toMatchObject({ path: 'cron' });
    const fast = await create({ ...sim, everyMs: 500 });
    expect(fast.body.error.details[0]).toMatchObject({ path: 'everyMs' });
    const both = await create({ ...sim, everyMs: 60_000, cron: '0 * * * *' });
    expect(both.status).toBe(400);
    const zone = await create({ ...sim, cron: '0 9 * * *', timezone: 'Mars/Olympus' });
    expect(zone.body.error.details[0]).toMatchObject({ path: 'timezone' });
    const input = await create({ type: 'simulate', input: { durationMs: -1 }, everyMs: 60_000 });
    expect(input.status).toBe(400);
    expect(input.body.error.details[0].path).toMatch(/^input\./);
    const hook = await create({ ...sim, everyMs: 60_000, webhook: { url: 'https://example.com/h' } });
    expect(hook.status).toBe(400);
    expect(hook.body.error.message).toMatch(/webhooks are not supported on schedules/);
    expect((await get('/v1/schedules')).body.schedules).toEqual([]);
  });

  it('when another tenant asks for a schedule, then it answers 404 and lists none of it', async () => {
    const { body } = await create({ ...sim, everyMs: 60_000 });
    expect((await get(`/v1/schedules/${body.id}`, B)).status).toBe(404);
    expect((await get(`/v1/jobs?schedule=${body.id}`, B)).status).toBe(404);
    expect((await request(ctx.app).delete(`/v1/schedules/${body.id}`).set('Authorization', B)).status).toBe(404);
    expect(
      (await request(ctx.app).patch(`/v1/schedules/${body.id}`).set('Authorization', B).send({ paused: true })).status,
    ).toBe(404);
    expect((await get('/v1/schedules', B)).body.schedules).toEqual([]);
    expect((await get(`/v1/schedules/${body.id}`)).status).toBe(200);
    await request(ctx.app).delete(`/v1/schedules/${body.id}`).set('Authorization', A);
  });

  it('when a schedule is paused, then BullMQ holds no scheduler; resumed, it has one again', async () => {
    const { body } = await create({ ...sim, everyMs: 60_000 });
    const patch = (b: object) => request(ctx.app).patch(`/v1/schedules/${body.id}`).set('Authorization', A).send(b);
    const paused = await patch({ paused: true });
    expect(paused.body).toMatchObject({ paused: true, nextRunAt: null });
    expect(await ctx.services.queue.getJobScheduler(body.id)).toBeUndefined();
    const resumed = await patch({ paused: false, everyMs: 120_000, input: { durationMs: 20 } });
    expect(resumed.body).toMatchObject({ paused: false, everyMs: 120_000, input: { durationMs: 20, steps: 10 } });
    expect(resumed.body.nextRunAt).not.toBeNull();
    expect((await ctx.services.queue.getJobScheduler(body.id))?.every).toBe(120_000);
    const del = await request(ctx.app).delete(`/v1/schedules/${body.id}`).set('Authorization', A);
    expect(del.status).toBe(200);
    expect(await ctx.services.queue.getJobScheduler(body.id)).toBeUndefined();
    expect((await get(`/v1/schedules/${body.id}`)).status).toBe(404);
  });

  it('when the tenant has as many schedules as its quota, then the next one answers 429', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await create({ ...sim, everyMs: 60_000 })).body.id);
    const over = await create({ ...sim, everyMs: 60_000 });
    expect(over.status).toBe(429);
    expect(over.body.error.code).toBe('schedule_quota_exceeded');
    // Another tenant has its own quota.
    const other = await create({ ...sim, everyMs: 60_000 }, B);
    expect(other.status).toBe(201);
    for (const id of ids) await request(ctx.app).delete(`/v1/schedules/${id}`).set('Authorization', A);
    await request(ctx.app).delete(`/v1/schedules/${other.body.id}`).set('Authorization', B);
  });

  it('when a run starts while the previous run still holds its lock, then overlap skip skips and counts it', async () => {
    const { body } = await create({ ...sim, everyMs: 60_000 });
    const runs = createScheduleRunStore({ redis, prefix });
    const layout = layoutFor(prefix);
    const first = `repeat:${body.id}:1000000000000`;
    const second = `repeat:${body.id}:1000000060000`;
    expect(await runs.startRun('a', body.id, first)).toBe('run');
    // A retry of the same run is not a new run.
    expect(await runs.startRun('a', body.id, first)).toBe('run');
    await redis.set(layout.lock('analyses', first), 'token', 'PX', 60_000);
    expect(await runs.startRun('a', body.id, second)).toBe('skip');
    await redis.del(layout.lock('analyses', first));
    const third = `repeat:${body.id}:1000000120000`;
    expect(await runs.startRun('a', body.id, third)).toBe('run');
    const view = (await get(`/v1/schedules/${body.id}`)).body;
    expect(view).toMatchObject({ runs: 2, skipped: 1, lastRun: { id: third } });
    await request(ctx.app).delete(`/v1/schedules/${body.id}`).set('Authorization', A);
    expect(await runs.startRun('a', body.id, `repeat:${body.id}:1000000180000`)).toBe('gone');
  });

  it("when a run starts while the tenant's backlog quota is full, then it is skipped and counted, and takes a place otherwise", async () => {
    const { body } = await create({ ...sim, everyMs: 60_000 }, B);
    const runs = createScheduleRunStore({ redis, prefix, backlogQuota: 1, settleMs: 0 });
    const layout = layoutFor(prefix);
    // Tenant b's one unfinished job fills a quota of 1.
    const queued = await request(ctx.app)
      .post('/v1/jobs')
      .set('Authorization', B)
      .send({ ...sim, delayMs: 60_000 });
    expect(queued.status).toBe(202);
    expect(await runs.startRun('b', body.id, `repeat:${body.id}:1000000000000`)).toBe('full');
    expect((await get(`/v1/schedules/${body.id}`, B)).body).toMatchObject({ runs: 0, skipped: 1 });
    await request(ctx.app).delete(`/v1/jobs/${queued.body.id}`).set('Authorization', B);
    const next = `repeat:${body.id}:1000000060000`;
    expect(await runs.startRun('b', body.id, next)).toBe('run');
    expect(await redis.zscore(layout.backlog('b'), next)).not.toBeNull();
    await request(ctx.app).delete(`/v1/schedules/${body.id}`).set('Authorization', B);
  });

  it("when an everyMs schedule's endAt falls before its next slot, then the run BullMQ makes past endAt is refused at its start and nextRunAt is null", async () => {
    const endAt = Date.now() + 30_000;
    const { body } = await create({ ...sim, everyMs: 60_000, endAt: new Date(endAt).toISOString() });
    const first = await takeRun(body.id);
    expect(first.start).toBe('run');
    // BullMQ checks the end date against the time a run starts, not against the next run's due
    // time: it has made one more run, due after endAt.
    const extraDue = Number(await redis.zscore(layoutFor(prefix).jobSchedulers('analyses'), body.id));
    expect(extraDue).toBeGreaterThan(endAt);
    expect((await get(`/v1/schedules/${body.id}`)).body).toMatchObject({ runs: 1, nextRunAt: null });
    const runs = createScheduleRunStore({ redis, prefix });
    expect(await runs.startRun('a', body.id, `repeat:${body.id}:${extraDue}`)).toBe('ended');
    const view = (await get(`/v1/schedules/${body.id}`)).body;
    expect(view).toMatchObject({ runs: 1, skipped: 0, lastRun: { id: first.id }, nextRunAt: null });
    const listed = (await get(`/v1/jobs?schedule=${body.id}`)).body.jobs.map((j: { id: string }) => j.id);
    expect(listed).toEqual([first.id]);
    await request(ctx.app).delete(`/v1/schedules/${body.id}`).set('Authorization', A);
  });

  it('when a schedule has made its last run (limit reached), then nextRunAt is null', async () => {
    const { body } = await create({ ...sim, everyMs: 60_000, limit: 1 });
    expect((await takeRun(body.id)).start).toBe('run');
    // BullMQ leaves the scheduler at the due time of the run it made last.
    expect(await redis.zscore(layoutFor(prefix).jobSchedulers('analyses'), body.id)).not.toBeNull();
    expect((await get(`/v1/schedules/${body.id}`)).body).toMatchObject({ runs: 1, nextRunAt: null });
    await request(ctx.app).delete(`/v1/schedules/${body.id}`).set('Authorization', A);
  });

  it('when an everyMs schedule is paused and resumed again and again, then no run is made sooner than everyMs after the last', async () => {
    const { body } = await create({ ...sim, everyMs: 600_000 });
    const first = await takeRun(body.id);
    const firstDue = Number(SCHEDULER_RUN_ID.exec(first.id)?.[2]);
    for (let i = 0; i < 3; i++) {
      expect((await patch(body.id, { paused: true })).body.nextRunAt).toBeNull();
      const resumed = await patch(body.id, { paused: false });
      expect(resumed.status).toBe(200);
      // The next slot of the schedule's cadence, not a run at once.
      expect(Date.parse(resumed.body.nextRunAt)).toBe(firstDue + 600_000);
      expect(await queuedRuns(body.id)).toEqual([]);
    }
    await request(ctx.app).delete(`/v1/schedules/${body.id}`).set('Authorization', A);
  });

  it('when an everyMs schedule is paused while a run is due and resumed, then the next run is everyMs after that due run', async () => {
    const { body } = await create({ ...sim, everyMs: 600_000 });
    // The first run is due at once, waiting for a worker: pausing leaves it, and it will start.
    const [due] = await queuedRuns(body.id);
    const dueAt = Number(SCHEDULER_RUN_ID.exec(due ?? '')?.[2]);
    await patch(body.id, { paused: true });
    const resumed = await patch(body.id, { paused: false });
    expect(Date.parse(resumed.body.nextRunAt)).toBe(dueAt + 600_000);
    expect(await queuedRuns(body.id)).toEqual([due]);
    await request(ctx.app).delete(`/v1/schedules/${body.id}`).set('Authorization', A);
  });

  it("when a schedule's endAt has passed, then a PATCH that does not set endAt is accepted, and one that sets it in the past is not", async () => {
    const endAt = Date.now() + 1_000;
    const { body } = await create({ ...sim, everyMs: 60_000, endAt: new Date(endAt).toISOString() });
    await sleep(Math.max(0, endAt - Date.now()) + 50);
    const pause = await patch(body.id, { paused: true });
    expect(pause.status, JSON.stringify(pause.body)).toBe(200);
    expect((await patch(body.id, { input: { durationMs: 20 } })).status).toBe(200);
    // Resumed after its end: no run is left.
    const resumed = await patch(body.id, { paused: false });
    expect(resumed.status).toBe(200);
    expect(resumed.body.nextRunAt).toBeNull();
    const past = await patch(body.id, { endAt: new Date(Date.now() - 1_000).toISOString() });
    expect(past.status).toBe(400);
    expect(past.body.error.details).toEqual([{ path: 'endAt', message: 'must be in the future' }]);
    const later = await patch(body.id, { startAt: new Date(endAt + 60_000).toISOString() });
    expect(later.status).toBe(400);
    expect(later.body.error.details).toEqual([{ path: 'endAt', message: 'must be after startAt' }]);
    // A new endAt in the future brings the schedule back.
    const extended = await patch(body.id, { endAt: new Date(Date.now() + 3_600_000).toISOString() });
    expect(extended.status).toBe(200);
    expect(extended.body.nextRunAt).not.toBeNull();
    await request(ctx.app).delete(`/v1/schedules/${body.id}`).set('Authorization', A);
  });

  it('when a schedule is deleted, then its runs are still listed with ?schedule= for its tenant, and for no other', async () => {
    const { body } = await create({ ...sim, everyMs: 60_000 });
    const run = await takeRun(body.id);
    expect((await request(ctx.app).delete(`/v1/schedules/${body.id}`).set('Authorization', A)).status).toBe(200);
    const listed = await get(`/v1/jobs?schedule=${body.id}`);
    expect(listed.status).toBe(200);
    expect(listed.body.jobs).toEqual([expect.objectContaining({ id: run.id, scheduleId: body.id })]);
    expect((await get(`/v1/jobs?schedule=${body.id}`, B)).status).toBe(404);
    // The list expires once retention has removed every run it names.
    const layout = layoutFor(prefix);
    expect(await redis.ttl(layout.scheduleRuns(body.id))).toBeGreaterThan(0);
    expect(await redis.ttl(layout.deletedSchedule(body.id))).toBeGreaterThan(0);
  });

  it('when a schedule id or query is malformed, then it answers 404 or 400, never 5xx', async () => {
    for (const id of [
      'sch_x',
      'sch_01m93hzanvmgpac84jvmpz6xs2',
      '..%2F..%2Fetc',
      'sch_01M93HZANVMGPAC84JVMPZ6XS2%00',
      'a:b',
    ]) {
      expect((await get(`/v1/schedules/${id}`)).status).toBe(404);
    }
    expect((await get('/v1/jobs?schedule=nope')).status).toBe(400);
    expect((await get('/v1/jobs?cursor=repeat:sch_x:1')).status).toBe(400);
    const notJson = await request(ctx.app).post('/v1/schedules').set('Authorization', A).send('type=simulate');
    expect(notJson.status).toBe(415);
    expect((await create({ ...sim, everyMs: 60_000, extra: 1 })).status).toBe(400);
    for (const query of [
      'limit=0',
      'limit=101',
      'limit=two',
      'cursor=sch_01M93HZANVMGPAC84JVMPZ6XS2',
      'cursor=1:sch_x',
      'cursor=-1:sch_01M93HZANVMGPAC84JVMPZ6XS2',
      'page=2',
    ]) {
      const res = await get(`/v1/schedules?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
    }
  });

  it('when schedules are listed a page at a time, then each comes once, oldest first, even when the one a cursor names is deleted', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await create({ ...sim, everyMs: 60_000 })).body.id);
    const whole = await get('/v1/schedules');
    expect(whole.body.schedules.map((v: { id: string }) => v.id)).toEqual(ids);
    expect(whole.body.nextCursor).toBeNull();

    const first = await get('/v1/schedules?limit=1');
    expect(first.body.schedules.map((v: { id: string }) => v.id)).toEqual([ids[0]]);
    const second = await get(`/v1/schedules?limit=1&cursor=${first.body.nextCursor}`);
    expect(second.body.schedules.map((v: { id: string }) => v.id)).toEqual([ids[1]]);
    // The schedule the cursor names goes: the next page starts after its place all the same.
    await request(ctx.app).delete(`/v1/schedules/${ids[1]}`).set('Authorization', A);
    const third = await get(`/v1/schedules?limit=1&cursor=${second.body.nextCursor}`);
    expect(third.body.schedules.map((v: { id: string }) => v.id)).toEqual([ids[2]]);
    expect(third.body.nextCursor).toBeNull();
    // Another tenant's cursor shows nothing of this tenant's.
    expect((await get(`/v1/schedules?cursor=${first.body.nextCursor}`, B)).body).toEqual({
      schedules: [],
      nextCursor: null,
    });
    for (const id of [ids[0], ids[2]]) await request(ctx.app).delete(`/v1/schedules/${id}`).set('Authorization', A);
  });

  it('when schedules were created in the same millisecond, then the pages still list each once', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await create({ ...sim, everyMs: 60_000 })).body.id);
    // One score for all three, as a burst of creates in one millisecond gets: Redis orders them by id.
    const key = layoutFor(prefix).tenantSchedules('a');
    for (const id of ids) await redis.zadd(key, 'XX', 1_000, id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await get(`/v1/schedules?limit=1${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      seen.push(...res.body.schedules.map((v: { id: string }) => v.id));
      cursor = res.body.nextCursor;
    } while (cursor !== null && seen.length < 10);
    expect(seen).toEqual([...ids].sort());
    for (const id of ids) await request(ctx.app).delete(`/v1/schedules/${id}`).set('Authorization', A);
  });
});
