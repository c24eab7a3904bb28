import { createLogger, createRedisConnection, type JobData } from '@longhaul/shared';
import { Job, type Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSse, type SseEvent } from '../../../../tests/clients/sse-reader.ts';
import { api } from '../../../../tests/support/http.ts';
import { redisUrl, uniquePrefix } from '../../../../tests/support/redis.ts';
import { waitFor } from '../../../../tests/support/wait.ts';
import { startEventsApp } from './events-test-app.ts';
import { compareStreamIds, createJobEventHub, type JobEventHub } from './job-event-hub.ts';

const KEY_A = 'sse-tenant-a-key-0123456789';
const KEY_B = 'sse-tenant-b-key-0123456789';

/** Active timers of this process (heartbeats are intervals: a leak shows here). */
const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('GET /v1/jobs/:id/events against createApp and a real Redis (no worker)', () => {
  const prefix = uniquePrefix();
  let queue: Queue<JobData>;
  let hub: JobEventHub;
  let base: string;

  let app: Awaited<ReturnType<typeof startEventsApp>>;

  beforeAll(async () => {
    app = await startEventsApp(
      prefix,
      { a: KEY_A, b: KEY_B },
      {
        SSE_HEARTBEAT_MS: '200',
        // The leak test holds 50 streams at a time, and closed ones are released a moment later.
        EVENTS_MAX_STREAMS_PER_TENANT: '1000',
        // Its 1,000 streams share this process with the app: on a loaded machine a 500 ms stall of
        // the event loop would read as a silent Redis, and every request would answer 503.
        REDIS_COMMAND_TIMEOUT_MS: '10000',
      },
    );
    ({ queue, hub, base } = app);
  });

  afterAll(async () => {
    await app.close();
  });

  const submit = async () => {
    const res = await api(base, KEY_A).post('/v1/jobs', { type: 'simulate', input: { durationMs: 10 } });
    expect(res.status).toBe(202);
    return res.body.id as string;
  };
  const progress = async (id: string, percent: number) => {
    const job = await Job.fromId(queue, id);
    await job?.updateProgress({ percent, step: 'running', message: `at ${percent}` });
  };

  it('when a stream opens, then it answers text/event-stream and the first event is the snapshot', async () => {
    const id = await submit();
    const sse = await openSse(`${base}/v1/jobs/${id}/events`, KEY_A);
    expect(sse.status).toBe(200);
    expect(sse.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const first = await sse.next();
    // Its id is the events-stream position it covers: a reconnect resumes from there.
    expect(first).toMatchObject({
      event: 'snapshot',
      id: expect.stringMatching(/^\d+-\d+$/),
      data: { id, status: 'queued' },
    });
    // Heartbeat comments keep idle streams open through proxies.
    await waitFor(() => sse.comments() >= 2, { timeoutMs: 3_000, what: 'heartbeats' });
    sse.close();
  });

  it("when another tenant or no key asks for a job's events, then it answers 404 or 401 like every route", async () => {
    const id = await submit();
    const other = await api(base, KEY_B).get(`/v1/jobs/${id}/events`);
    expect(other.status).toBe(404);
    expect(other.body.error.code).toBe('not_found');
    expect((await api(base).get(`/v1/jobs/${id}/events`)).status).toBe(401);
    expect((await api(base, KEY_A).get('/v1/jobs/job_01ARZ3NDEKTSV4RRFFQ69G5FAV/events')).status).toBe(404);
  });

  it('when a client resumes mid-job with Last-Event-ID, then the snapshot covers what it missed and progress never goes back', async () => {
    const id = await submit();
    const shown: number[] = [];
    const show = (e: SseEvent | null) => {
      if (e?.event === 'snapshot') shown.push(e.data.progress?.percent ?? 0);
      if (e?.event === 'progress') shown.push(e.data.progress.percent);
      return e;
    };
    const first = await openSse(`${base}/v1/jobs/${id}/events`, KEY_A);
    show(await first.next());
    await progress(id, 10);
    await progress(id, 20);
    show(await first.next());
    const e20 = show(await first.next());
    expect(e20?.data.progress.percent).toBe(20);
    first.close();

    // While nobody listens.
    await progress(id, 30);
    await progress(id, 40);

    const resumed = await openSse(`${base}/v1/jobs/${id}/events`, KEY_A, { lastEventId: e20?.id as string });
    const snapshot = show(await resumed.next());
    expect(snapshot).toMatchObject({ event: 'snapshot', data: { progress: { percent: 40 } } });
    // Past every event it covers, so a client that keeps its id never asks for them again.
    expect(compareStreamIds(snapshot?.id as string, e20?.id as string)).toBeGreaterThan(0);
    await progress(id, 50);
    // 30 and 40 are not sent again after the snapshot showed 40: the next event is the live one.
    expect(show(await resumed.next())).toMatchObject({ event: 'progress', id: expect.any(String) });
    expect(shown).toEqual([0, 10, 20, 40, 50]);

    // A queued job cancelled ends the stream with `cancelled`.
    expect((await api(base, KEY_A).delete(`/v1/jobs/${id}`)).status).toBe(202);
    const rest = await resumed.rest();
    expect(rest.map((e) => e.event)).toEqual(['cancelled']);
    expect(rest[0]?.data).toMatchObject({ id, status: 'cancelled' });
  });

  it("when a client resumes from the snapshot's own id, then it gets a snapshot and only what comes next", async () => {
    const id = await submit();
    const first = await openSse(`${base}/v1/jobs/${id}/events`, KEY_A);
    const snapshot = await first.next();
    first.close();
    await progress(id, 70);
    const resumed = await openSse(`${base}/v1/jobs/${id}/events`, KEY_A, { lastEventId: snapshot?.id as string });
    expect(await resumed.next()).toMatchObject({ event: 'snapshot', data: { progress: { percent: 70 } } });
    await progress(id, 80);
    expect((await resumed.next())?.data.progress.percent).toBe(80);
    resumed.close();
  });

  it('when a job is already finished, then the stream sends the snapshot and the final event, and ends', async () => {
    const id = await submit();
    await api(base, KEY_A).delete(`/v1/jobs/${id}`);
    const sse = await openSse(`${base}/v1/jobs/${id}/events`, KEY_A);
    const events = await sse.rest();
    expect(events.map((e) => e.event)).toEqual(['snapshot', 'cancelled']);
  });

  it('when 1,000 clients connect and disconnect, then no subscriber, listener or timer is left behind', async () => {
    const id = await submit();
    // One stream first, so that the hub's reader runs (it keeps running for a while after).
    const first = await openSse(`${base}/v1/jobs/${id}/events`, KEY_A);
    expect((await first.next())?.event).toBe('snapshot');
    first.close();
    const listenersBefore = hub.stats().queueEventListeners;
    expect(listenersBefore).toBeGreaterThan(0);
    const timersBefore = timers();
    for (let round = 0; round < 20; round++) {
      await Promise.all(
        Array.from({ length: 50 }, async () => {
          const sse = await openSse(`${base}/v1/jobs/${id}/events`, KEY_A);
          expect((await sse.next())?.event).toBe('snapshot');
          sse.close();
        }),
      );
    }
    await waitFor(() => hub.stats().subscribers === 0 && hub.stats().streams === 0, {
      timeoutMs: 10_000,
      what: 'every subscription to be released',
    });
    expect(hub.stats()).toEqual({
      subscribers: 0,
      jobs: 0,
      streams: 0,
      queueEventListeners: listenersBefore,
      reading: true,
    });
    // 1,000 leaked heartbeats would show as 1,000 timers; allow a few for sockets closing.
    await waitFor(() => timers() <= timersBefore + 5, { timeoutMs: 10_000, what: 'timers to be cleared' });
  }, 120_000);
});

describe('the job event hub reads the events stream only while a stream is open', () => {
  const prefix = uniquePrefix();
  let app: Awaited<ReturnType<typeof startEventsApp>>;

  beforeAll(async () => {
    app = await startEventsApp(prefix, { a: KEY_A, b: KEY_B }, {}, { idleMs: 300 });
  });

  afterAll(async () => {
    await app.close();
  });

  /** Redis clients of this process' QueueEvents: BullMQ names them after the prefix and queue. */
  const readers = async () =>
    String(await app.redis.call('CLIENT', 'LIST'))
      .split('\n')
      .filter((line) => line.includes(` name=${prefix}:`)).length;
  const progress = async (id: string, percent: number) => {
    const job = await Job.fromId(app.queue, id);
    await job?.updateProgress({ percent, step: 'running' });
  };

  it('when no stream is open, then no reader runs; a stream starts one, and it stops once streams stay closed', async () => {
    const res = await api(app.base, KEY_A).post('/v1/jobs', { type: 'simulate', input: { durationMs: 10 } });
    const id = res.body.id as string;
    await progress(id, 5);
    expect(app.hub.stats().reading).toBe(false);
    expect(await readers()).toBe(0);

    for (const percent of [10, 20]) {
      const sse = await openSse(`${app.base}/v1/jobs/${id}/events`, KEY_A);
      expect((await sse.next())?.event).toBe('snapshot');
      expect(app.hub.stats().reading).toBe(true);
      await waitFor(async () => (await readers()) === 1, { timeoutMs: 5_000, what: 'one events reader in Redis' });
      await progress(id, percent);
      const event = await sse.next();
      expect(event).toMatchObject({ event: 'progress', data: { progress: { percent } } });
      sse.close();
      // Written while nobody listens: the next stream's snapshot shows it, no reader reads it.
      await waitFor(async () => !app.hub.stats().reading && (await readers()) === 0, {
        timeoutMs: 10_000,
        what: 'the reader to stop once no stream is open',
      });
      await progress(id, percent + 5);
    }
  });
  it('when streams come and go faster than the reader stops, then each new stream still gets its events', async () => {
    const res = await api(app.base, KEY_A).post('/v1/jobs', { type: 'simulate', input: { durationMs: 10 } });
    const id = res.body.id as string;
    // No idle time: every unsubscription starts a stop, and the next subscription meets it.
    const hub = createJobEventHub({
      connection: createRedisConnection(redisUrl(), 'worker'),
      prefix,
      log: createLogger({ name: 't', level: 'silent', pretty: false }),
      idleMs: 0,
    });
    try {
      for (let round = 1; round <= 5; round++) {
        const seen: number[] = [];
        const unsubscribe = hub.subscribe(id, (event) => {
          if (event.name === 'progress') seen.push((event.fields.data as { percent: number }).percent);
        });
        await hub.reading();
        await progress(id, round * 10);
        await waitFor(() => seen.includes(round * 10), { timeoutMs: 5_000, what: `progress ${round * 10}` });
        unsubscribe();
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      await hub.close();
    }
    await waitFor(async () => (await readers()) === 0, { timeoutMs: 5_000, what: 'no reader left in Redis' });
  });
});
