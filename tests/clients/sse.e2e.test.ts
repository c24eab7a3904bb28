import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_A, type ProcessHandle, simulate, startSystem } from '../e2e/fixtures.ts';
import { startApi } from '../support/processes.ts';
import { redisUrl } from '../support/redis.ts';
import { openSse, type SseEvent } from './sse-reader.ts';

const compareIds = (a: string, b: string) => {
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return (am ?? 0) - (bm ?? 0) || (as ?? 0) - (bs ?? 0);
};

describe('live job events over SSE, real api and worker processes', () => {
  let system: Awaited<ReturnType<typeof startSystem>>;
  let replica: ProcessHandle;
  let redis: Redis;

  beforeAll(async () => {
    system = await startSystem({ WORKER_CONCURRENCY: '4', SSE_HEARTBEAT_MS: '1000' });
    // A second API replica: a stream works whichever replica the client reaches.
    replica = await startApi(system.env);
    redis = new Redis(redisUrl());
  });
  afterAll(async () => {
    await redis.quit();
    await replica?.stop().catch(() => undefined);
    await system?.stop();
  });

  it('when several jobs report progress at once, then each stream has every event of its job, in order, and ends after completed', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await system.a.post('/v1/jobs', simulate({ durationMs: 2_500, steps: 25 }));
      expect(res.status).toBe(202);
      ids.push(res.body.id);
    }
    const streams = await Promise.all(
      ids.flatMap((id) => [system.api.url, replica.url].map((url) => openSse(`${url}/v1/jobs/${id}/events`, KEY_A))),
    );
    const received = await Promise.all(streams.map((s) => s.rest(30_000)));

    const eventsKey = `${system.env.QUEUE_PREFIX}:analyses:events`;
    const entries = (await redis.xrange(eventsKey, '-', '+')) as [string, string[]][];
    received.forEach((events, i) => {
      const id = ids[Math.floor(i / 2)] as string;
      expect(events[0]).toMatchObject({ event: 'snapshot', data: { id } });
      const last = events.at(-1) as SseEvent;
      expect(last).toMatchObject({ event: 'completed', data: { id, status: 'completed' } });

      const live = events.slice(1).filter((e) => e.id);
      // Ordered: ids strictly increase, progress never goes back.
      for (let k = 1; k < live.length; k++)
        expect(compareIds(live[k]?.id ?? '', live[k - 1]?.id ?? '')).toBeGreaterThan(0);
      const percents = live.filter((e) => e.event === 'progress').map((e) => e.data.progress.percent as number);
      expect(percents).toEqual([...percents].sort((a, b) => a - b));
      expect(percents.at(-1)).toBe(100);

      // Complete: every event Redis recorded for this job after the first one the stream sent.
      const first = live[0]?.id as string;
      const expected = entries
        .filter(([entryId, f]) => compareIds(entryId, first) >= 0 && f[f.indexOf('jobId') + 1] === id)
        .filter(([, f]) => ['progress', 'active', 'completed', 'failed', 'waiting', 'delayed'].includes(f[1] ?? ''))
        .map(([entryId]) => entryId);
      expect(live.map((e) => e.id)).toEqual(expected);
    });
  }, 60_000);

  it('when a job fails for good, then the stream ends with failed and the reason', async () => {
    const res = await system.a.post('/v1/jobs', simulate({ durationMs: 50, fail: 'permanent' }));
    const events = await (await openSse(`${replica.url}/v1/jobs/${res.body.id}/events`, KEY_A)).rest();
    expect(events.at(-1)).toMatchObject({
      event: 'failed',
      data: { status: 'failed', error: { code: 'analysis_failed' } },
    });
  });

  it('when an active job is cancelled, then the stream ends with cancelled', async () => {
    const res = await system.a.post('/v1/jobs', simulate({ durationMs: 20_000, steps: 20 }));
    const sse = await openSse(`${system.api.url}/v1/jobs/${res.body.id}/events`, KEY_A);
    for (let e = await sse.next(); e?.event !== 'progress'; e = await sse.next()) {
      // wait for the job to run
    }
    expect((await system.a.delete(`/v1/jobs/${res.body.id}`)).status).toBe(202);
    const rest = await sse.rest();
    expect(rest.at(-1)).toMatchObject({
      event: 'cancelled',
      data: { status: 'cancelled', error: { code: 'cancelled' } },
    });
  });

  it('when an API replica stops with a stream open, then the stream ends and the process exits 0', async () => {
    const res = await system.a.post('/v1/jobs', simulate({ durationMs: 10 }, { delayMs: 60_000 }));
    const sse = await openSse(`${replica.url}/v1/jobs/${res.body.id}/events`, KEY_A);
    expect((await sse.next())?.event).toBe('snapshot');
    // The shutdown deadline exits 1: 0 means the open stream did not hold server.close().
    expect(await replica.stop()).toBe(0);
    expect(await sse.next(5_000)).toBeNull();
  });
});
