import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BadRequestError,
  ConflictError,
  createClient,
  type JobEvent,
  type LonghaulClient,
  NotFoundError,
  UnauthorizedError,
} from '../../packages/client/src/index.ts';
import { KEY_A, KEY_B, startSystem } from '../e2e/fixtures.ts';

/**
 * `res` with its event stream cut after the `count`-th progress event, as a proxy's idle timeout or a
 * restarted replica would: the body just ends, between two events.
 */
function cutAfterProgress(res: Response, count: number): Response {
  const upstream = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  let text = '';
  let seen = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await upstream.read();
      if (done) return controller.close();
      text += decoder.decode(value, { stream: true });
      for (let sep = text.indexOf('\n\n'); sep >= 0; sep = text.indexOf('\n\n')) {
        const block = text.slice(0, sep + 2);
        text = text.slice(sep + 2);
        controller.enqueue(encoder.encode(block));
        if (block.includes('event: progress') && ++seen === count) {
          controller.close();
          await upstream.cancel();
          return;
        }
      }
    },
  });
  return new Response(body, { status: res.status, headers: res.headers });
}

describe('the typed SDK against a real api and worker', () => {
  let system: Awaited<ReturnType<typeof startSystem>>;
  let client: LonghaulClient;

  beforeAll(async () => {
    system = await startSystem();
    client = createClient({ baseUrl: system.api.url, apiKey: KEY_A });
  });
  afterAll(async () => {
    await system?.stop();
  });

  it('when a job is followed with events(), then it yields the snapshot, ordered progress and completed, and ends', async () => {
    const job = await client.submit('simulate', { durationMs: 800, steps: 4 });
    const events: JobEvent[] = [];
    for await (const event of client.events(job.id)) events.push(event);
    expect(events[0]?.type).toBe('snapshot');
    expect(events.at(-1)).toMatchObject({ type: 'completed', data: { id: job.id, status: 'completed' } });
    const percents = events.flatMap((e) => (e.type === 'progress' ? [e.data.progress.percent] : []));
    expect(percents).toEqual([...percents].sort((a, b) => a - b));
    const { result } = await client.result<'simulate'>(job.id);
    expect(result.steps).toBe(4);
  });

  it('when the event stream drops mid-job, then events() resumes with Last-Event-ID and progress never goes back', async () => {
    let streams = 0;
    const resumes: (string | null)[] = [];
    const dropping = createClient({
      baseUrl: system.api.url,
      apiKey: KEY_A,
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        if (!String(input).endsWith('/events')) return res;
        resumes.push(new Headers(init?.headers).get('last-event-id'));
        return ++streams === 1 ? cutAfterProgress(res, 2) : res;
      },
    });
    // A step a second: progress goes on while the client waits out the server's retry hint.
    const job = await dropping.submit('simulate', { durationMs: 6_000, steps: 6 });
    const events: JobEvent[] = [];
    for await (const event of dropping.events(job.id)) events.push(event);

    expect(streams).toBe(2);
    expect(resumes[1]).toMatch(/^\d+-\d+$/);
    expect(events.filter((e) => e.type === 'snapshot')).toHaveLength(2);
    expect(events.at(-1)).toMatchObject({ type: 'completed', data: { status: 'completed' } });
    // What a progress bar shows, event after event, across the reconnect.
    const shown = events.flatMap((e) =>
      e.type === 'snapshot' ? [e.data.progress?.percent ?? 0] : e.type === 'progress' ? [e.data.progress.percent] : [],
    );
    expect(shown).toEqual([...shown].sort((a, b) => a - b));
  }, 30_000);

  it('when waitFor() follows a job, then it resolves with the final view', async () => {
    const job = await client.submit('simulate', { durationMs: 50, fail: 'permanent' });
    const seen: string[] = [];
    const final = await client.waitFor(job.id, { onEvent: (e) => seen.push(e.type) });
    expect(final).toMatchObject({ id: job.id, status: 'failed', error: { code: 'analysis_failed' } });
    expect(seen.at(-1)).toBe('failed');
  });

  it('when the event stream cannot be had (a proxy answers 503), then waitFor() falls back to polling and still resolves', async () => {
    // The transport, not the system, is faulty: every request to /events answers 503, as a proxy
    // that does not pass Server-Sent Events would; everything else reaches the real API.
    let streamAttempts = 0;
    const faultyFetch: typeof fetch = async (input, init) => {
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      if (url.endsWith('/events')) {
        streamAttempts++;
        return new Response(JSON.stringify({ error: { code: 'redis_unavailable', message: 'no streams here' } }), {
          status: 503,
          headers: { 'content-type': 'application/json', 'retry-after': '0' },
        });
      }
      return fetch(input, init);
    };
    const polling = createClient({ baseUrl: system.api.url, apiKey: KEY_A, fetch: faultyFetch });
    const job = await polling.submit('simulate', { durationMs: 300, steps: 2 });
    const seen: string[] = [];
    const final = await polling.waitFor(job.id, { pollIntervalMs: 100, onEvent: (e) => seen.push(e.type) });
    expect(final).toMatchObject({ id: job.id, status: 'completed' });
    expect(streamAttempts).toBeGreaterThan(1);
    expect(seen.every((t) => t === 'snapshot')).toBe(true);
  }, 30_000);

  it('when the API refuses, then the error is typed and carries the code and status', async () => {
    await expect(client.get('job_01ARZ3NDEKTSV4RRFFQ69G5FAV')).rejects.toMatchObject({
      constructor: NotFoundError,
      status: 404,
      code: 'not_found',
    });
    const bad = await client.submit('simulate', { durationMs: -1 }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(BadRequestError);
    expect((bad as BadRequestError).code).toBe('validation_failed');
    const queued = await client.submit('simulate', { durationMs: 10 }, { delayMs: 60_000 });
    await expect(client.result(queued.id)).rejects.toBeInstanceOf(ConflictError);
    await expect(createClient({ baseUrl: system.api.url, apiKey: 'not-a-key-00000000' }).list()).rejects.toBeInstanceOf(
      UnauthorizedError,
    );
    // Another tenant's job is a 404 on the event stream too.
    const other = createClient({ baseUrl: system.api.url, apiKey: KEY_B });
    await expect(other.waitFor(queued.id)).rejects.toBeInstanceOf(NotFoundError);
    expect((await client.cancel(queued.id)).status).toBe('cancelled');
    expect((await client.list({ status: 'cancelled' })).jobs.map((j) => j.id)).toContain(queued.id);
  });

  it('when schedules are created, listed, paused, resumed and deleted with the SDK, then each call answers the schedule view', async () => {
    const created = await client.schedules.create({
      type: 'simulate',
      input: { durationMs: 10 },
      cron: '0 9 * * 1-5',
      timezone: 'Europe/Paris',
    });
    expect(created).toMatchObject({ cron: '0 9 * * 1-5', timezone: 'Europe/Paris', paused: false, runs: 0 });
    expect((await client.schedules.list()).map((s) => s.id)).toContain(created.id);
    expect((await client.schedules.pause(created.id)).paused).toBe(true);
    expect((await client.schedules.resume(created.id)).nextRunAt).not.toBeNull();
    expect((await client.list({ schedule: created.id })).jobs).toEqual([]);
    const bad = await client.schedules
      .create({ type: 'simulate', input: { durationMs: 10 }, cron: '0 99 * * *' })
      .catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(BadRequestError);
    await client.schedules.delete(created.id);
    expect(await client.schedules.get(created.id).catch((e: unknown) => e)).toBeInstanceOf(NotFoundError);
  });

  it('when schedules span pages, then page() answers one page and list() follows them all, oldest first', async () => {
    // Tenant b's own schedules: the other tests' (tenant a) stay out of the pages.
    const b = createClient({ baseUrl: system.api.url, apiKey: KEY_B });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push((await b.schedules.create({ type: 'simulate', input: { durationMs: 10 }, everyMs: 60_000 })).id);
    const first = await b.schedules.page({ limit: 2 });
    expect(first.schedules.map((s) => s.id)).toEqual(ids.slice(0, 2));
    const rest = await b.schedules.page({ limit: 2, cursor: first.nextCursor ?? '' });
    expect(rest).toMatchObject({ schedules: [{ id: ids[2] }], nextCursor: null });
    // The transport asks for pages of one: list() must follow each nextCursor to the end.
    const pages: string[] = [];
    const onePerPage = createClient({
      baseUrl: system.api.url,
      apiKey: KEY_B,
      fetch: (input, init) => {
        const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
        if (url.pathname === '/v1/schedules' && (init?.method ?? 'GET') === 'GET') {
          url.searchParams.set('limit', '1');
          pages.push(url.search);
        }
        return fetch(url, init);
      },
    });
    expect((await onePerPage.schedules.list()).map((s) => s.id)).toEqual(ids);
    expect(pages).toHaveLength(3);
    expect(await b.schedules.page({ cursor: 'not-a-cursor' }).catch((e: unknown) => e)).toBeInstanceOf(BadRequestError);
    for (const id of ids) await b.schedules.delete(id);
  });
});
